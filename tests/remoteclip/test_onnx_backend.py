"""The ONNX Runtime backend: embeddings equal PyTorch's, exports are cached by weights and re-exported when
the file is missing, corrupt or the weights change; ``auto`` picks ONNX on the CPU.

Random-weight RN50 and ViT-B-32 through ONNX Runtime are compared with open_clip in ``test_pretrained``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from remoteclip.encode import encode_images, encode_texts
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel, load_model
from remoteclip.onnx_backend import (
    ENV_BACKEND,
    ENV_ONNX_CACHE,
    KEPT_EXPORTS,
    STALE_PART_S,
    resolve_backend,
    trim_padding,
)

TEXTS = ["a satellite photo of a river.", "airport", "", "many cars parked in rows next to a shopping mall"]
#: embeddings of both backends agree to this (the issue's bound)
ATOL = 1e-5


def _images(size: int, count: int = 5) -> list[np.ndarray]:
    """The same ``count`` random images on every call."""
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (size + 7 * i, size, 3), dtype=np.uint8) for i in range(count)]


def _agree(onnx: LoadedModel, torch_model: LoadedModel, size: int) -> None:
    images = _images(size)
    for batch_size in (1, 3):  # the batch axis is dynamic
        np.testing.assert_allclose(
            encode_images(onnx, images, batch_size), encode_images(torch_model, images, batch_size), atol=ATOL
        )
    np.testing.assert_allclose(encode_texts(onnx, TEXTS), encode_texts(torch_model, TEXTS), atol=ATOL)
    np.testing.assert_allclose(encode_texts(onnx, TEXTS[:1]), encode_texts(torch_model, TEXTS[:1]), atol=ATOL)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "onnx"
    monkeypatch.setenv(ENV_ONNX_CACHE, str(folder))
    return folder


def test_auto_is_onnx_on_the_cpu_and_the_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    assert resolve_backend(None, cpu, "fp32") == "onnx"
    assert resolve_backend("auto", torch.device("cuda"), "fp32") == "torch"
    assert resolve_backend("auto", cpu, "bf16") == "torch"
    monkeypatch.setenv(ENV_BACKEND, "torch")
    assert resolve_backend(None, cpu, "fp32") == "torch"
    assert resolve_backend("onnx", cpu, "fp32") == "onnx"  # an explicit choice beats the environment
    with pytest.raises(InputError, match="runs on the CPU"):
        resolve_backend("onnx", torch.device("cuda"), "fp32")
    with pytest.raises(InputError, match="not one of"):
        resolve_backend("tensorrt", cpu, "fp32")
    monkeypatch.setenv(ENV_BACKEND, "bogus")
    with pytest.raises(InputError, match="REMOTECLIP_BACKEND"):
        resolve_backend(None, cpu, "fp32")


def test_tiny_model_embeddings_equal_pytorch(tiny_checkpoint: Path) -> None:
    onnx, plain = load_model(tiny_checkpoint, backend="onnx"), load_model(tiny_checkpoint, backend="torch")
    assert (onnx.backend, plain.backend, plain.onnx) == ("onnx", "torch", None)
    assert onnx.model_id == plain.model_id  # one library, either backend
    _agree(onnx, plain, 64)
    assert onnx.onnx is not None and not onnx.onnx.on_torch
    assert onnx.onnx.text_pad == 0  # an OpenCLIP text tower runs a query cut to its length


def test_default_model_embeddings_equal_pytorch(default_model: LoadedModel) -> None:
    assert default_model.backend == "onnx"  # auto, on the CPU
    _agree(default_model, load_model(None, backend="torch"), 192)
    assert default_model.onnx is not None and default_model.onnx.text_pad == 0  # queries cut to their length


def test_cached_export_is_reused(tiny_checkpoint: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = load_model(tiny_checkpoint, backend="onnx")
    expected = encode_texts(first, TEXTS)
    assert "exporting the text tower" in capsys.readouterr().err
    path = first.onnx.path("text")  # type: ignore[union-attr]
    assert path.parent == cache and path.is_file()
    stamp = path.stat().st_mtime_ns
    again = load_model(tiny_checkpoint, backend="onnx")
    np.testing.assert_array_equal(encode_texts(again, TEXTS), expected)
    assert capsys.readouterr().err == ""  # no export, no notice
    assert path.stat().st_mtime_ns == stamp


def test_changed_checkpoint_is_exported_again(tiny_checkpoint: Path, tmp_path: Path, cache: Path) -> None:
    folder = tmp_path / "tiny-clip"
    shutil.copytree(tiny_checkpoint, folder)
    first = load_model(folder, backend="onnx")
    before = encode_images(first, _images(64, 2))
    weights = folder / "open_clip_pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    state["visual.proj"] = state["visual.proj"] * -1.0
    torch.save(state, weights)
    changed = load_model(folder, backend="onnx")
    assert changed.onnx.key != first.onnx.key  # type: ignore[union-attr]
    after = encode_images(changed, _images(64, 2))
    np.testing.assert_allclose(after, -before, atol=ATOL)  # the new weights' vectors, not the cached ones
    assert len(list(cache.glob("tiny-clip-image-*.onnx"))) == 2


def test_superseded_exports_are_removed(tiny_checkpoint: Path, tmp_path: Path, cache: Path) -> None:
    folder = tmp_path / "tiny-clip"
    shutil.copytree(tiny_checkpoint, folder)
    cache.mkdir()
    now = time.time()
    planted = {  # file -> seconds old
        f"tiny-clip-image-{'1' * 16}.onnx": 300,  # the oldest other export: removed, with its int8 file
        f"tiny-clip-image-{'1' * 16}-int8-{'a' * 12}.onnx": 300,
        f"tiny-clip-image-{'2' * 16}.onnx": 200,  # the newest other one: kept (KEPT_EXPORTS is 2)
        f"tiny-clip-text-{'1' * 16}.onnx": 300,  # another tower: pruned when that tower exports
        f"tiny-clip-x-image-{'1' * 16}.onnx": 300,  # another model
        f"tiny-clip-image-{'3' * 16}dead.onnx.part": STALE_PART_S + 60,  # an export that died
        f"tiny-clip-image-{'4' * 16}live.onnx.part": 10,  # an export under way
    }
    for name, age in planted.items():
        (cache / name).write_bytes(b"planted")
        os.utime(cache / name, (now - age, now - age))
    model = load_model(folder, backend="onnx")
    encode_images(model, _images(64, 1))
    current = model.onnx.path("image").name  # type: ignore[union-attr]
    assert KEPT_EXPORTS == 2
    kept = [f"tiny-clip-image-{'2' * 16}.onnx", f"tiny-clip-text-{'1' * 16}.onnx",
            f"tiny-clip-x-image-{'1' * 16}.onnx", f"tiny-clip-image-{'4' * 16}live.onnx.part"]
    assert sorted(file.name for file in cache.iterdir()) == sorted([current, *kept])


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_corrupt_or_missing_file_is_exported_again(
    tiny_checkpoint: Path, cache: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    first = load_model(tiny_checkpoint, backend="onnx")
    expected = encode_images(first, _images(64, 2))
    path = first.onnx.path("image")  # type: ignore[union-attr]
    capsys.readouterr()
    if damage == "corrupt":
        path.write_bytes(path.read_bytes()[:1000])  # truncated
    else:
        path.unlink()
    again = load_model(tiny_checkpoint, backend="onnx")
    np.testing.assert_allclose(encode_images(again, _images(64, 2)), expected, atol=ATOL)
    notices = capsys.readouterr().err.strip().splitlines()
    assert len(notices) == 1
    assert ("cannot be read by ONNX Runtime" if damage == "corrupt" else "exporting the image tower") in notices[0]
    assert path.stat().st_size > 1000


def test_tower_that_does_not_export_stays_on_pytorch(
    tiny_checkpoint: Path, cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", broken)
    model = load_model(tiny_checkpoint, backend="onnx")
    np.testing.assert_allclose(
        encode_texts(model, TEXTS), encode_texts(load_model(tiny_checkpoint, backend="torch"), TEXTS), atol=ATOL
    )
    assert "it runs on PyTorch" in capsys.readouterr().err
    assert model.onnx is not None and model.onnx.on_torch == {"text"}


def test_trim_padding_keeps_every_used_column() -> None:
    tokens = np.array([[5, 6, 0, 0, 0], [5, 6, 7, 0, 0]])
    np.testing.assert_array_equal(trim_padding(tokens, 0), tokens[:, :3])
    np.testing.assert_array_equal(trim_padding(np.zeros((1, 4), np.int64), 0), np.zeros((1, 1)))
