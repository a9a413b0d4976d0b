"""``models``, ``embed``, ``classify`` and ``count`` through click's CliRunner, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from PIL import Image

from pipelines.cli.main import cli, main
from remoteclip.encode import encode_images
from remoteclip.factory import LoadedModel


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600 x 500 RGB PNG: 3 x 2 chips of 256 px, the last column and row clipped."""
    path = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (500, 600, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def geotiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512 x 512 RGB GeoTIFF in EPSG:4326 at 0.0001 degrees per pixel, origin (10 E, 50 N)."""
    path = tmp_path_factory.mktemp("rasters") / "scene.tif"
    data = np.random.default_rng(3).integers(1, 256, (3, 512, 512), dtype=np.uint8)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=512,
        height=512,
        count=3,
        dtype="uint8",
        crs="EPSG:4326",
        transform=Affine(0.0001, 0, 10.0, 0, -0.0001, 50.0),
    ) as dst:
        dst.write(data)
    return path


def run(*args: str) -> dict:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # notices (an ONNX export) go to stderr


def test_models_lists_registry_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    rows = {row["name"]: row for row in run("models", "--format", "json")}
    assert set(rows) >= {"RemoteCLIP-RN50", "RemoteCLIP-ViT-B-32", "RemoteCLIP-ViT-L-14", "explorer-small"}
    assert (
        rows["RemoteCLIP-ViT-B-32"]["alias"] == "ViT-B-32" and rows["RemoteCLIP-ViT-B-32"]["cached"] is None
    )
    assert rows["RemoteCLIP-RN50"]["source"].startswith("hf://chendelong/RemoteCLIP/RemoteCLIP-RN50.pt@")


def test_embed_prints_the_model_vectors(tiny_model: LoadedModel, tiny_checkpoint: Path, png: Path) -> None:
    out = run("embed", str(png), str(png), "--model", str(tiny_checkpoint), "--format", "json")
    assert out["model_id"] == tiny_model.model_id and out["dim"] == 32
    vectors = np.array([image["vector"] for image in out["images"]], dtype=np.float32)
    expected = encode_images(tiny_model, [Image.open(png).convert("RGB")])
    np.testing.assert_allclose(vectors, np.repeat(expected, 2, axis=0), atol=1e-6)


def test_classify_ranks_labels(tiny_checkpoint: Path, png: Path) -> None:
    out = run(
        "classify",
        str(png),
        "--labels",
        "forest, river,airport",
        "--top-k",
        "2",
        "--model",
        str(tiny_checkpoint),
        "--format",
        "json",
    )
    top = out["images"][0]["top"]
    assert out["labels"] == ["forest", "river", "airport"] and len(top) == 2
    assert top[0]["probability"] >= top[1]["probability"] and top[0]["label"] in out["labels"]
    result = CliRunner().invoke(
        cli, ["classify", str(png), "--labels", "forest", "--model", str(tiny_checkpoint)]
    )
    assert result.exit_code == 2 and "fewer than two labels" in result.output


def test_count_sums_non_overlapping_chips(tiny_checkpoint: Path, png: Path) -> None:
    out = run(
        "count",
        str(png),
        "--method",
        "remotecount",
        "--object",
        "airplane",
        "--chip-size",
        "256",
        "--batch-size",
        "4",  # two batches: 4 + 2 chips
        "--model",
        str(tiny_checkpoint),
        "--format",
        "json",
    )
    chips = out["images"][0]["chips"]
    assert [(c["col_off"], c["row_off"], c["width"], c["height"]) for c in chips] == [
        (0, 0, 256, 256),
        (256, 0, 256, 256),
        (512, 0, 88, 256),
        (0, 256, 256, 244),
        (256, 256, 256, 244),
        (512, 256, 88, 244),
    ]
    assert all(0 <= c["count"] <= 10 and c["inside_fraction"] == 1.0 for c in chips)
    assert out["total"] == out["images"][0]["total"] == sum(c["count"] for c in chips)


def test_count_weights_chips_by_aoi(tiny_checkpoint: Path, geotiff: Path, tmp_path: Path) -> None:
    # the AOI covers pixel columns 0..384 of every row: the right-hand chips are half inside
    aoi = {
        "type": "Polygon",
        "coordinates": [[[10.0, 50.0], [10.0384, 50.0], [10.0384, 49.9488], [10.0, 49.9488], [10.0, 50.0]]],
    }
    (tmp_path / "aoi.geojson").write_text(json.dumps(aoi))
    out = run(
        "count",
        str(geotiff),
        "--method",
        "remotecount",
        "--object",
        "ship",
        "--aoi",
        str(tmp_path / "aoi.geojson"),
        "--model",
        str(tiny_checkpoint),
        "--format",
        "json",
    )
    chips = out["images"][0]["chips"]
    assert [c["inside_fraction"] for c in chips] == pytest.approx([1.0, 0.5, 1.0, 0.5], abs=1e-3)
    assert out["total"] == pytest.approx(sum(c["count"] * c["inside_fraction"] for c in chips), abs=0.01)


def test_count_with_aoi_needs_a_georeferenced_image(
    tiny_checkpoint: Path, png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}))
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "count",
                str(png),
                "--object",
                "car",
                "--aoi",
                str(aoi),
                "--model",
                str(tiny_checkpoint),
                "--method",
                "remotecount",
            ]
        )
    assert exited.value.code == 1
    assert "has no georeference, so --aoi cannot be applied" in capsys.readouterr().err


def test_offline_model_is_one_line_error(
    png: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        main(["embed", str(png), "--model", "RN50"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1 and "--weights PATH" in err


def test_count_with_a_model_without_a_locator_says_how_to_count(
    tiny_checkpoint: Path, png: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["count", str(png), "--object", "car", "--model", str(tiny_checkpoint)])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: no object locator ships for tiny-clip") and "--method remotecount" in err


def test_embed_backends_give_the_same_vectors(tiny_checkpoint: Path, png: Path) -> None:
    vectors = {
        backend: np.array(
            [image["vector"] for image in run("embed", str(png), "--model", str(tiny_checkpoint),
                                              "--backend", backend, "--format", "json")["images"]]
        )
        for backend in ("torch", "onnx", "auto")
    }
    np.testing.assert_allclose(vectors["onnx"], vectors["torch"], atol=1e-5)
    np.testing.assert_array_equal(vectors["auto"], vectors["onnx"])  # auto is ONNX Runtime on the CPU
    result = CliRunner().invoke(cli, ["embed", str(png), "--backend", "tensorrt"])
    assert result.exit_code == 2 and "tensorrt" in result.output
