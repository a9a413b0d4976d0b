"""Hostile and broken inputs: each is read right or refused with one clear line, never a crash or a blow-up.

Rasters, AOIs, uploads, query text and model files are written here in tmp_path (no committed binaries). The
count of hostile inputs tried is reported in docs/RELIABILITY.md: keep it in step when cases are added.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import folium
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from PIL import Image
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from shapely.geometry import Point

from app.maps import add_geojson_layer
from pipelines.ingest.local import ingest_paths
from pipelines.services.uploads import store_upload
from remoteclip.encode import encode_texts
from remoteclip.errors import ExplorerError, InputError, WeightsError
from remoteclip.factory import read_state_dict
from remoteclip.pretrained import check_weights, get_entry
from tiles.aoi import MAX_AOI_BYTES, aoi_from_geojson, load_aoi
from tiles.errors import RasterReadError
from tiles.georef import chip_georef, pixels_to_lonlat
from tiles.grid import ChipSpec, ChipWindow
from tiles.index.chip_index import ChipIndex
from tiles.reader import MAX_STREAM_PIXELS, gdal_env, open_scene

WINDOW = ChipWindow(level=1, col_off=0, row_off=0, width=16, height=16, span_px=16)
UTM = "EPSG:32633"


def _tif(path: Path, data: np.ndarray, **profile: object) -> Path:
    """Write ``data`` (bands, rows, cols) as a GeoTIFF (UTM 33N, 1 m) with extra ``profile`` keys."""
    base = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype,
        "crs": UTM,
        "transform": from_origin(500_000, 5_000_000, 1, 1),
    }
    with rasterio.open(path, "w", **{**base, **profile}) as dst:
        dst.write(data)
    return path


def _one_line_error(exc: pytest.ExceptionInfo[ExplorerError], *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    assert all(word in message for word in words), message


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


# ---------------------------------------------------------------- broken files: one clear line each


def test_truncated_geotiff(tmp_path: Path) -> None:
    whole = _tif(
        tmp_path / "whole.tif", np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    )
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(RasterReadError) as exc, open_scene(cut) as scene:
        scene.read_chip(ChipWindow(1, 0, 48, 16, 16, 16), 16)
    _one_line_error(exc, "cut.tif")


@pytest.mark.parametrize("content", [b"", b"hello, I am text not an image\n" * 20, b"II*\x00" + b"\x00" * 12])
def test_zero_byte_text_and_header_only_files_named_tif(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "scene.tif"
    path.write_bytes(content)
    with pytest.raises(RasterReadError) as exc, open_scene(path):
        pass
    _one_line_error(exc, "scene.tif", "not a readable raster")


def test_ingest_reports_broken_files_and_goes_on(tmp_path: Path, tiny_model) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.tif").write_bytes(b"")
    (tmp_path / "in" / "notes.tif").write_text("not an image")
    _tif(tmp_path / "in" / "good.tif", np.random.default_rng(0).integers(1, 255, (3, 16, 16), dtype=np.uint8))
    summary = ingest_paths(
        [tmp_path / "in"],
        ChipIndex(tmp_path / "db"),
        tiny_model,
        ChipSpec(chip_px=16),
        workers=0,
        progress=False,
    )
    assert summary.scenes == 1 and summary.chips == 1
    assert sorted(Path(path).name for path, _ in summary.failed) == ["empty.tif", "notes.tif"]
    assert all("\n" not in reason for _, reason in summary.failed)


# ---------------------------------------------------------------- sizes that would blow memory up


def test_absurd_declared_size_reads_without_giant_allocation(tmp_path: Path) -> None:
    path = tmp_path / "huge.tif"
    for dtype, count in (("uint8", 3), ("uint16", 1)):  # uint16 also computes a stretch from samples
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=100_000,
            height=100_000,
            count=count,
            dtype=dtype,
            crs=UTM,
            transform=from_origin(0, 0, 1, 1),
            tiled=True,
            SPARSE_OK=True,
        ):
            pass  # declared 100,000 x 100,000, no data written
        assert path.stat().st_size < 5_000_000
        before = _rss_mb()
        with gdal_env(), open_scene(path) as scene:
            chip = scene.read_chip(ChipWindow(1, 50_000, 50_000, 256, 256, 256), 64)
        assert chip is not None and chip.shape == (64, 64, 3)
        assert _rss_mb() - before < 300  # a full read would be 10-30 GB


def test_decompression_bomb_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (10_000, 10_000)).save(path, optimize=True)  # 100 Mpx of zeros in a few hundred kB
    assert path.stat().st_size < 1_000_000 and 10_000 * 10_000 > MAX_STREAM_PIXELS
    with pytest.raises(RasterReadError) as exc, open_scene(path):
        pass
    _one_line_error(exc, "bomb.png", "decompression bomb", "TILED=YES")


# ---------------------------------------------------------------- odd but valid rasters are read right


def test_no_crs_gives_pixel_space_chips(tmp_path: Path) -> None:
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=3, dtype="uint8") as dst:
        dst.write(np.full((3, 32, 32), 7, np.uint8))
    with open_scene(path) as scene:
        assert not scene.georeferenced
        georef = chip_georef(WINDOW, scene.transform, scene.crs)
    assert georef.pixel_space and georef.bbox == (0, 0, 16, 16) and georef.gsd_m is None


@pytest.mark.parametrize(
    "transform",
    [
        Affine.translation(500_000, 5_000_000)
        @ Affine.rotation(30)
        @ Affine.scale(1, -1),  # rotated 30 degrees
        Affine(1.0, 0.5, 500_000, 0.0, -1.0, 5_000_000),  # sheared
    ],
)
def test_rotated_and_sheared_geotransforms_give_true_footprints(tmp_path: Path, transform: Affine) -> None:
    path = _tif(tmp_path / "skew.tif", np.full((3, 32, 32), 50, np.uint8), transform=transform)
    with open_scene(path) as scene:
        georef = chip_georef(WINDOW, scene.transform, scene.crs)
        lon, lat = pixels_to_lonlat(np.array([0, 16, 16, 0]), np.array([0, 0, 16, 16]), transform, scene.crs)
    corners = np.column_stack([lon, lat])
    footprint = np.array(georef.footprint.exterior.coords)
    for corner in corners:  # every corner of the skewed window is a vertex of the footprint
        assert np.min(np.hypot(*(footprint - corner).T)) < 1e-9
    assert georef.footprint.is_valid and 0.9 < georef.gsd_m < 1.6


@pytest.mark.parametrize("dtype", ["uint16", "int16", "float32"])
def test_16_bit_and_float_rasters_are_stretched(tmp_path: Path, dtype: str) -> None:
    ramp = np.linspace(-500 if dtype != "uint16" else 0, 3000, 32 * 32).reshape(1, 32, 32).astype(dtype)
    if dtype == "float32":
        ramp[0, 0, :4] = np.nan  # NaN pixels are not data
    with open_scene(_tif(tmp_path / "deep.tif", ramp)) as scene:
        chip = scene.read_chip(ChipWindow(1, 0, 0, 32, 32, 32), 32)
    assert chip.dtype == np.uint8 and chip.shape == (32, 32, 3)
    assert chip.min() == 0 and chip.max() == 255  # a 2-98 % stretch fills the range


def test_all_nodata_scene_has_no_chips_and_no_error(tmp_path: Path, tiny_model) -> None:
    path = _tif(tmp_path / "void.tif", np.zeros((3, 32, 32), np.uint8), nodata=0)
    with open_scene(path) as scene:
        assert scene.read_chip(WINDOW, 16, min_valid=0.5) is None
    summary = ingest_paths(
        [path], ChipIndex(tmp_path / "db"), tiny_model, ChipSpec(chip_px=16), workers=0, progress=False
    )
    assert (summary.scenes, summary.chips, summary.skipped, summary.failed) == (1, 0, 4, [])


@pytest.mark.parametrize("bands", [1, 2, 4, 5, 8])
def test_any_band_count_gives_rgb(tmp_path: Path, bands: int) -> None:
    data = np.stack([np.full((16, 16), 10 * (b + 1), np.uint8) for b in range(bands)])
    with open_scene(_tif(tmp_path / f"b{bands}.tif", data)) as scene:
        chip = scene.read_chip(WINDOW, 16)
    assert chip.shape == (16, 16, 3)
    expected = [10, 20, 30] if bands >= 3 else [10, 10, 10]  # first three bands, else grey from the first
    assert chip[0, 0].tolist() == expected


def test_palette_image_uses_its_colours(tmp_path: Path) -> None:
    path = _tif(tmp_path / "pal.tif", np.array([[[0, 1] * 8] * 16], np.uint8), photometric="palette")
    with rasterio.open(path, "r+") as dst:
        dst.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 0, 255, 255)})
        dst.colorinterp = [ColorInterp.palette]
    with open_scene(path) as scene:
        chip = scene.read_chip(WINDOW, 16)
    assert chip[0, 0].tolist() == [255, 0, 0] and chip[0, 1].tolist() == [0, 0, 255]


def test_exif_rotated_jpeg_is_read_as_stored(tmp_path: Path) -> None:
    """GDAL reads JPEG pixels as stored; the EXIF orientation tag is not applied (documented behaviour)."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif)
    with open_scene(path) as scene:
        assert (scene.width, scene.height) == (40, 24) and not scene.georeferenced
        chip = scene.read_chip(ChipWindow(1, 0, 0, 40, 24, 40), 40)
    assert chip.shape == (40, 40, 3) and chip[24:].max() == 0  # stored landscape, padded below


# ---------------------------------------------------------------- AOIs


@pytest.mark.parametrize(
    "obj, words",
    [
        ({"type": "Polygon", "coordinates": "nonsense"}, "not valid GeoJSON"),
        ({"type": "Feature"}, "no area"),
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "no area"),
        (
            {"type": "Polygon", "coordinates": [[[500000, 0], [501000, 0], [501000, 1000], [500000, 0]]]},
            "EPSG:4326",
        ),
    ],
)
def test_invalid_aoi_is_one_clear_line(obj: dict, words: str) -> None:
    with pytest.raises(InputError) as exc:
        aoi_from_geojson(obj)
    _one_line_error(exc, words)


def test_aoi_file_not_json_or_too_big(tmp_path: Path) -> None:
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "Polygon", "coordinates": [[[0, 0], [1')
    with pytest.raises(InputError) as exc:
        load_aoi(broken)
    _one_line_error(exc, "broken.geojson")
    huge = tmp_path / "huge.geojson"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_AOI_BYTES + 1)
    with pytest.raises(InputError) as exc:
        load_aoi(huge)
    _one_line_error(exc, "huge.geojson", "limit")


def test_self_intersecting_aoi_is_repaired() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    aoi = aoi_from_geojson(bowtie)
    assert aoi.is_valid and aoi.area == pytest.approx(2.0)


def test_aoi_across_the_antimeridian_is_split() -> None:
    pacific = {
        "type": "Polygon",
        "coordinates": [[[170, -20], [-170, -20], [-170, -10], [170, -10], [170, -20]]],
    }
    aoi = aoi_from_geojson(pacific)
    assert aoi.geom_type == "MultiPolygon" and aoi.area == pytest.approx(
        200.0
    )  # 20 x 10 degrees, not 340 x 10
    assert aoi.intersects(Point(179.5, -15)) and aoi.intersects(Point(-179.5, -15))
    assert not aoi.intersects(Point(0, -15))


def test_huge_aoi_many_vertices_and_whole_world(tmp_path: Path) -> None:
    angles = np.linspace(0, 2 * np.pi, 200_000)
    ring = np.column_stack([10 + 5 * np.cos(angles), 50 + 5 * np.sin(angles)]).tolist()
    path = tmp_path / "detailed.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    assert path.stat().st_size < MAX_AOI_BYTES
    assert load_aoi(path).area == pytest.approx(np.pi * 25, rel=1e-3)
    world = aoi_from_geojson(
        {"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}
    )
    assert world.area == pytest.approx(360 * 180)


# ---------------------------------------------------------------- uploads


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_over_the_size_limit(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        store_upload(_png_bytes(), "big.png", tmp_path, max_bytes=100)
    _one_line_error(exc, "big.png", "limit")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "content",
    [
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"<html><script>alert(1)</script></html>",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    ],
)
def test_upload_of_the_wrong_type_by_content(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(InputError) as exc:
        store_upload(content, "photo.png", tmp_path)  # named .png; the content decides
    _one_line_error(exc, "GeoTIFF, JPEG or PNG")
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.png",
        "..\\..\\evil.png",
        "/abs/path.png",
        "<img src=x onerror=alert(1)>.png",
        "naïve name\x00.png",
        "....png",
        "   ",
    ],
)
def test_upload_names_are_stored_safely(tmp_path: Path, name: str) -> None:
    upload_dir = tmp_path / "uploads"
    stored = store_upload(_png_bytes(), name, upload_dir)
    assert stored.parent == upload_dir and stored.is_file()
    assert all(c.isalnum() or c in "-_." for c in stored.name) and ".." not in stored.name
    assert [p.name for p in tmp_path.iterdir()] == ["uploads"]  # nothing written outside the upload folder


# ---------------------------------------------------------------- query text


def test_html_in_user_text_is_escaped_in_map_tooltips() -> None:
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    fmap = folium.Map(tiles=None)
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [0, 0]},
        "properties": {"rank": 1, "score": 0.5, "scene_path": evil},
    }
    add_geojson_layer(
        fmap,
        {"type": "FeatureCollection", "features": [feature]},
        name=f"Hits for {evil}",
        tooltip_fields=("rank", "score", "scene_path"),
    )
    page = fmap.get_root().render()
    assert "<script>alert(2)</script>" not in page and 'onerror="alert(1)"' not in page
    assert "\\u0026lt;script\\u0026gt;alert(2)" in page  # HTML-escaped, inside the layer's JSON


def test_very_long_and_odd_queries_encode(tiny_model) -> None:
    queries = ["ship " * 5_000, "", "🛰️🚢 <script>alert(1)</script> \x00\u202e", "a" * 100_000]
    vectors = encode_texts(tiny_model, queries)
    assert vectors.shape == (4, tiny_model.embed_dim) and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- model files


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_unsafe_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "RemoteCLIP-ViT-B-32.pt"
    with open(path, "wb") as handle:
        pickle.dump({"visual.proj": torch.zeros(2), "payload": _RunsCode(marker)}, handle)
    with pytest.raises(WeightsError) as exc:
        read_state_dict(path)
    _one_line_error(exc, "refused")
    assert not marker.exists()


def test_official_weights_are_checked_against_size_and_hash(tmp_path: Path) -> None:
    official = get_entry("ViT-B-32")
    assert len(official.source.revision) == 40 and official.size_bytes and len(official.sha256) == 64
    path = tmp_path / official.source.filename
    path.write_bytes(b"\x00" * 1000)  # truncated download
    with pytest.raises(WeightsError) as exc:
        check_weights(path, official)
    _one_line_error(exc, "1000 bytes", str(official.size_bytes))
    with open(path, "wb") as handle:  # right size, wrong content (sparse file of zeros)
        handle.truncate(official.size_bytes)
    with pytest.raises(WeightsError) as exc:
        check_weights(path, official)
    _one_line_error(exc, "SHA-256")
