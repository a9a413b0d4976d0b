"""The opt-in int8 image tower (``backend="onnx-int8"``): quantised once and reused from the cache, close to the
fp32 tower's vectors on real images, re-quantised when its file is damaged, fp32 where there is nothing to
quantise.

Calibrated on training-side RSSCN7 images and checked on held-out ones (``pipelines/datasets/splits.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.datasets.splits import rsscn7
from remoteclip.encode import encode_images, encode_texts
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel, load_model
from remoteclip.onnx_backend import ENV_BACKEND, ENV_INT8_CALIBRATION, resolve_backend

#: calibration (training-side) and check (held-out) images per RSSCN7 class
CALIBRATION_PER_CLASS, CHECK_PER_CLASS = 4, 2
#: mean and least cosine of int8 to fp32 vectors on the 14 held-out check images (measured with these 28
#: calibration images: mean 0.995, least 0.988; on all 84 held-out images, mean 0.996, least 0.987)
MIN_MEAN_COSINE, MIN_COSINE = 0.99, 0.97


def _per_class(paths: tuple[Path, ...], count: int) -> list[Path]:
    by_class: dict[str, list[Path]] = {}
    for path in paths:
        by_class.setdefault(path.parent.name, []).append(path)
    return [path for _, group in sorted(by_class.items()) for path in group[:count]]


@pytest.fixture(scope="module")
def rsscn7_images(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """A calibration folder of training-side RSSCN7 images, and held-out images (arrays) to check on."""
    split = rsscn7(shared_data)
    folder = tmp_path_factory.mktemp("int8-calibration")
    for path in _per_class(split.train, CALIBRATION_PER_CLASS):
        (folder / f"{path.parent.name}-{path.name}").symlink_to(path)
    check = [np.asarray(Image.open(path).convert("RGB")) for path in _per_class(split.test, CHECK_PER_CLASS)]
    return folder, check


@pytest.fixture
def calibrated(rsscn7_images: tuple[Path, list[np.ndarray]], monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    monkeypatch.setenv(ENV_INT8_CALIBRATION, str(rsscn7_images[0]))
    return rsscn7_images[1]


def _notices(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The backend's one-line notices on stderr (not the text tower's "Loading weights" progress)."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("remoteclip: ")]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)  # both L2-normalised


def test_int8_is_opt_in(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path) -> None:
    cpu = torch.device("cpu")
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    assert resolve_backend("auto", cpu, "fp32") == "onnx"
    assert resolve_backend("onnx-int8", cpu, "fp32") == "onnx-int8"
    with pytest.raises(InputError, match="runs on the CPU"):
        resolve_backend("onnx-int8", torch.device("cuda"), "fp32")
    monkeypatch.delenv(ENV_INT8_CALIBRATION, raising=False)
    with pytest.raises(InputError, match=ENV_INT8_CALIBRATION):
        load_model(tiny_checkpoint, backend="onnx-int8")


def test_int8_is_quantised_once_and_close_to_fp32(
    default_model: LoadedModel, calibrated: list[np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    first = load_model(None, backend="onnx-int8")
    assert first.model_id == default_model.model_id and first.backend == "onnx-int8"
    vectors = encode_images(first, calibrated, 8)
    assert first.onnx is not None and first.onnx.image_int8
    (notice,) = _notices(capsys)  # the fp32 export is cached already
    assert "quantising the image tower of explorer-small to int8, once" in notice
    path = first.onnx.int8_path()
    assert path.is_file() and path.stat().st_size < 0.6 * first.onnx.path("image").stat().st_size
    cosines = _cosines(vectors, encode_images(default_model, calibrated, 8))
    assert cosines.mean() > MIN_MEAN_COSINE and cosines.min() > MIN_COSINE, cosines
    # the text tower stays fp32
    texts = ["a satellite photo of a river.", "parking lot"]
    np.testing.assert_array_equal(encode_texts(first, texts), encode_texts(default_model, texts))
    stamp = path.stat().st_mtime_ns
    again = load_model(None, backend="onnx-int8")
    np.testing.assert_array_equal(encode_images(again, calibrated, 8), vectors)
    assert _notices(capsys) == []  # read from the cache: no notice
    assert path.stat().st_mtime_ns == stamp


def test_corrupt_int8_file_is_quantised_again(
    default_model: LoadedModel, calibrated: list[np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    first = load_model(None, backend="onnx-int8")
    expected = encode_images(first, calibrated[:3], 3)
    assert first.onnx is not None
    path = first.onnx.int8_path()
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    capsys.readouterr()
    again = load_model(None, backend="onnx-int8")
    np.testing.assert_allclose(encode_images(again, calibrated[:3], 3), expected, atol=1e-5)
    (notice,) = _notices(capsys)
    assert "cannot be read by ONNX Runtime" in notice and "quantising the image tower again" in notice
    assert again.onnx is not None and again.onnx.image_int8 and path.stat().st_size > 1000


def test_tower_without_convolutions_runs_in_fp32(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    for index in range(4):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    monkeypatch.setenv(ENV_INT8_CALIBRATION, str(tmp_path))
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    plain = encode_images(load_model(tiny_checkpoint, backend="onnx"), images)
    capsys.readouterr()
    model = load_model(tiny_checkpoint, backend="onnx-int8")  # a ViT: its only Conv is the patch embedding
    np.testing.assert_allclose(encode_images(model, images), plain, atol=1e-5)
    assert model.onnx is not None and not model.onnx.image_int8
    notices = _notices(capsys)
    assert "does not quantise to int8 (it has no convolutions to quantise" in notices[-1]
