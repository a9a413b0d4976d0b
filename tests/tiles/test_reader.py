"""tiles.reader on the fixture rasters of tests/data/rasters and on every real scene in shared data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.enums import Resampling

from tiles.errors import RasterReadError
from tiles.georef import chip_georef
from tiles.grid import ChipSpec, ChipWindow, iter_windows
from tiles.reader import open_scene

RASTERS = Path(__file__).resolve().parents[1] / "data" / "rasters"
SPEC = ChipSpec(chip_px=16)


def window(col: int, row: int, width: int = 16, height: int = 16, level: int = 1) -> ChipWindow:
    return ChipWindow(level=level, col_off=col, row_off=row, width=width, height=height, span_px=16 * level)


def source_rgb(path: Path, win: ChipWindow) -> np.ndarray:
    """Bands 1-3 of ``win`` read directly with rasterio, as (rows, cols, 3)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            return np.moveaxis(src.read([1, 2, 3], window=win.window), 0, -1)


@pytest.mark.parametrize(
    "name", ["rgb_4326.tif", "cog_4326.tif", "rgb_4326.vrt", "plain.png", "rgbn_3395.tif"]
)
def test_uint8_chips_are_the_source_pixels(name: str) -> None:
    with open_scene(RASTERS / name) as scene:
        assert scene.bands == (1, 2, 3)
        chip = scene.read_chip(window(16, 0), 16)
    assert chip is not None and chip.dtype == np.uint8 and chip.shape == (16, 16, 3)
    np.testing.assert_array_equal(chip, source_rgb(RASTERS / name, window(16, 0)))


def test_edge_chip_is_padded_black() -> None:
    with open_scene(RASTERS / "rgb_4326.tif") as scene:
        chip = scene.read_chip(window(32, 16, width=8, height=8), 16)
    assert chip is not None and chip.shape == (16, 16, 3)
    np.testing.assert_array_equal(chip[:8, :8], source_rgb(RASTERS / "rgb_4326.tif", window(32, 16, 8, 8)))
    assert not chip[8:].any() and not chip[:, 8:].any()


def test_level_2_chip_is_a_bilinear_decimated_read() -> None:
    win = window(0, 0, width=32, height=24, level=2)
    with open_scene(RASTERS / "cog_4326.tif") as scene:
        chip = scene.read_chip(win, 16)
    with rasterio.open(RASTERS / "cog_4326.tif") as src:
        expected = src.read(
            [1, 2, 3], window=win.window, out_shape=(3, 12, 16), resampling=Resampling.bilinear
        )
    assert chip is not None
    np.testing.assert_array_equal(chip[:12], np.moveaxis(expected, 0, -1))
    assert not chip[12:].any()


def test_uint16_pan_is_stretched_to_grey() -> None:
    path = RASTERS / "pan_uint16_32616.tif"
    with rasterio.open(path) as src:
        values = src.read(1).astype(np.float64)
    with open_scene(path) as scene:
        assert scene.bands == (1,)
        assert scene.stretch is not None
        np.testing.assert_allclose(scene.stretch.lo, np.percentile(values, 2))
        np.testing.assert_allclose(scene.stretch.hi, np.percentile(values, 98))
        chips = [scene.read_chip(w, 16) for w in iter_windows(scene.width, scene.height, SPEC)]
    stacked = np.stack([c for c in chips if c is not None])
    assert stacked.dtype == np.uint8
    assert (stacked[..., 0] == stacked[..., 1]).all() and (stacked[..., 1] == stacked[..., 2]).all()
    assert stacked.min() == 0 and stacked.max() == 255


def test_nodata_chips_are_skipped_and_blacked_out() -> None:
    with open_scene(RASTERS / "nodata_32618.tif") as scene:
        kept = {
            (w.col_off, w.row_off)
            for w in iter_windows(40, 24, SPEC)
            if scene.read_chip(w, 16, 0.5) is not None
        }
        partial = scene.read_chip(window(16, 0), 16, min_valid=0.2)  # columns 16-19 valid: 25 %
    assert kept == {(0, 0), (0, 16)}
    assert partial is not None
    assert partial[:, :4].any(axis=2).all() and not partial[:, 4:].any()


def test_transparent_chips_are_skipped() -> None:
    with open_scene(RASTERS / "alpha_32750.tif") as scene:
        assert scene.bands == (1, 2, 3)
        kept = [w for w in iter_windows(40, 24, SPEC) if scene.read_chip(w, 16, 0.5) is not None]
    assert [(w.col_off, w.row_off) for w in kept] == [(0, 0)]


def test_plain_image_is_in_pixel_space_without_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_scene(RASTERS / "plain.png") as scene:
            assert not scene.georeferenced and scene.crs is None
            assert scene.transform.is_identity
            assert scene.read_chip(window(0, 0), 16) is not None
    assert not [w for w in caught if issubclass(w.category, rasterio.errors.NotGeoreferencedWarning)]


def test_corrupt_file_names_the_file_and_gdal_reason() -> None:
    path = RASTERS / "corrupt.tif"
    with (
        pytest.raises(RasterReadError, match=r"corrupt\.tif.*(IReadBlock|TIFFRead)"),
        open_scene(path) as scene,
    ):
        for w in iter_windows(scene.width, scene.height, SPEC):
            scene.read_chip(w, 16)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(RasterReadError, match="notes.tif: not a readable raster"), open_scene(text):
        pass
    with pytest.raises(RasterReadError, match="missing.tif: no such file"), open_scene(tmp_path / "missing.tif"):
        pass


def test_every_real_scene_reads(shared_data: Path) -> None:
    """All scene types: RGB, RGB+NIR, uint16 pan, float MS, alpha, nodata, EPSG:4326/3395/UTM."""
    paths = sorted((shared_data / "scenes").rglob("*.tif"))
    assert len(paths) >= 25
    seen: dict[str, tuple[int, int, tuple[int, ...]]] = {}
    for path in paths:
        with open_scene(path) as scene:
            assert scene.georeferenced
            chips = [
                scene.read_chip(w, 256, 0.5) for w in iter_windows(scene.width, scene.height, ChipSpec())
            ]
        kept = [c for c in chips if c is not None]
        assert kept, path
        assert all(c.dtype == np.uint8 and c.shape == (256, 256, 3) for c in kept)
        assert any(c.std() > 1 for c in kept), f"{path.name}: chips are flat"
        seen[path.name] = (len(kept), len(chips) - len(kept), scene.bands)
    assert seen["pan1.tif"][2] == (1,)  # 1-band uint16 panchromatic
    assert seen["m_4709963_se_14_1_20200831.tif"][2] == (1, 2, 3)  # RGB+NIR -> RGB
    assert seen["RGB.byte.tif"][1] > 0  # nodata collar skipped


def test_palette_image_is_expanded_through_its_colour_table(tmp_path: Path) -> None:
    path = tmp_path / "palette.tif"
    index = np.arange(16 * 16, dtype=np.uint8).reshape(1, 16, 16)
    profile = {
        "driver": "GTiff",
        "width": 16,
        "height": 16,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32618",
        "transform": Affine(30.0, 0.0, 101985.0, 0.0, -30.0, 2826915.0),
        "photometric": "palette",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(index)
        dst.write_colormap(1, {i: (i, 255 - i, 7, 255) for i in range(256)})
    with open_scene(path) as scene:
        chip = scene.read_chip(window(0, 0), 16)
    assert chip is not None
    np.testing.assert_array_equal(chip[..., 0], index[0])
    np.testing.assert_array_equal(chip[..., 1], 255 - index[0])
    assert (chip[..., 2] == 7).all()


def test_gcp_only_raster_is_georeferenced_through_its_gcps(tmp_path: Path) -> None:
    path = tmp_path / "gcps.tif"
    corners = ((0, 0), (0, 40), (24, 40), (24, 0))
    gcps = [GroundControlPoint(row=r, col=c, x=-94.5 + c * 1e-5, y=37.07 - r * 1e-5) for r, c in corners]
    profile = {
        "driver": "GTiff",
        "width": 40,
        "height": 24,
        "count": 3,
        "dtype": "uint8",
        "gcps": gcps,
        "crs": "EPSG:4326",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((3, 24, 40), 90, dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", rasterio.errors.NotGeoreferencedWarning)
        with open_scene(path) as scene:
            assert scene.georeferenced and scene.crs == "EPSG:4326"
            geo = chip_georef(window(32, 16, 8, 8), scene.transform, scene.crs)
    assert geo.bbox == pytest.approx((-94.5 + 32e-5, 37.07 - 24e-5, -94.5 + 40e-5, 37.07 - 16e-5), abs=1e-9)


def write_rgb(path: Path, data: np.ndarray, **profile: object) -> Path:
    """A 3-band uint8 GeoTIFF of ``data`` (3, rows, cols) in UTM 18N."""
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=3,
                       dtype="uint8", crs="EPSG:32618", transform=Affine(1, 0, 300000, 0, -1, 2800000),
                       **profile) as dst:
        dst.write(data)
    return path


@pytest.mark.parametrize(
    ("corner", "nodata", "expected"),
    [
        (None, None, ()),  # textured corners: black and white are imagery
        (0, None, ((0, 0, 0),)),  # a black border reaches a corner
        (255, None, ((255, 255, 255),)),  # a white one
        (None, 0, ((0, 0, 0),)),  # nodata pixels are read as black
    ],
)
def test_fill_colours_come_from_the_corners_and_the_nodata_flag(
    tmp_path: Path, corner: int | None, nodata: int | None, expected: tuple[tuple[int, int, int], ...]
) -> None:
    data = np.random.default_rng(0).integers(1, 255, (3, 20, 30), dtype=np.uint8)
    data[:, 5:10, 5:10] = 0  # black and white inside the scene do not make fill colours
    data[:, 10:15, 10:15] = 255
    if corner is not None:
        data[:, 18:, :] = corner  # a border along the bottom
    path = write_rgb(tmp_path / "scene.tif", data, **({"nodata": nodata} if nodata is not None else {}))
    with open_scene(path) as scene:
        assert scene.fill_colors == expected
    with open_scene(RASTERS / "alpha_32750.tif") as scene:
        assert scene.fill_colors == ((0, 0, 0),)  # transparent pixels are read as black too
