"""tiles.chips.iter_chips on tiny GeoTIFFs and PNGs written here: grid, skipped windows, AOI shares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box

from remoteclip.errors import InputError
from tiles.chips import iter_chips
from tiles.georef import chip_georef
from tiles.grid import ChipSpec, ChipWindow, iter_windows
from tiles.reader import Scene, open_scene

#: 40 x 24 px chips of 16 px: 3 x 2 windows, the last column and row clipped
SPEC = ChipSpec(chip_px=16)
#: 0.001 degrees per pixel from (10 E, 50 N)
PIXEL_DEG = 0.001


def write_tif(path: Path, nodata_cols: int = 0) -> Path:
    """A 40 x 24 RGB uint8 GeoTIFF in EPSG:4326 with nodata 0 in its first ``nodata_cols`` columns."""
    data = np.random.default_rng(0).integers(1, 256, (3, 24, 40), dtype=np.uint8)
    data[:, :, :nodata_cols] = 0
    profile = {
        "driver": "GTiff",
        "width": 40,
        "height": 24,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": from_origin(10.0, 50.0, PIXEL_DEG, PIXEL_DEG),
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def lonlat_box(col0: float, row0: float, col1: float, row1: float) -> Polygon:
    """The EPSG:4326 box over pixel columns ``col0..col1`` and rows ``row0..row1`` of :func:`write_tif`."""
    return box(
        10.0 + col0 * PIXEL_DEG, 50.0 - row1 * PIXEL_DEG, 10.0 + col1 * PIXEL_DEG, 50.0 - row0 * PIXEL_DEG
    )


def test_every_window_of_the_grid_is_read_and_georeferenced(tmp_path: Path) -> None:
    with open_scene(write_tif(tmp_path / "scene.tif")) as scene:
        chips = list(iter_chips(scene, SPEC))
        windows = list(iter_windows(scene.width, scene.height, SPEC))
        assert [c.window for c in chips] == windows
        for chip in chips:
            np.testing.assert_array_equal(chip.pixels, scene.read_chip(chip.window, 16))
            assert chip.pixels.shape == (16, 16, 3) and chip.pixels.dtype == np.uint8
            assert chip.georef == chip_georef(chip.window, scene.transform, scene.crs)
            assert chip.inside == 1.0


def test_mostly_empty_windows_are_skipped(tmp_path: Path) -> None:
    # columns 0-11 are nodata: the first column of windows is 25 % valid, below min_valid 0.5
    with open_scene(write_tif(tmp_path / "scene.tif", nodata_cols=12)) as scene:
        assert [c.window.col_off for c in iter_chips(scene, SPEC)] == [16, 32, 16, 32]
        lenient = ChipSpec(chip_px=16, min_valid=0.2)
        assert [c.window.col_off for c in iter_chips(scene, lenient)] == [0, 16, 32, 0, 16, 32]


def test_only_the_given_windows_are_read(tmp_path: Path) -> None:
    with open_scene(write_tif(tmp_path / "scene.tif", nodata_cols=12)) as scene:
        windows = list(iter_windows(scene.width, scene.height, SPEC))[:2]
        chips = list(iter_chips(scene, SPEC, windows=windows))
        assert [c.window for c in chips] == windows[1:]  # the first is mostly empty: skipped


def test_aoi_gives_shares_and_leaves_outside_windows_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[ChipWindow] = []
    real_read_chip = Scene.read_chip

    def counting_read_chip(
        self: Scene, window: ChipWindow, out_px: int, min_valid: float = 0.0
    ) -> np.ndarray | None:
        read.append(window)
        return real_read_chip(self, window, out_px, min_valid)

    monkeypatch.setattr(Scene, "read_chip", counting_read_chip)
    aoi = lonlat_box(0, 0, 24, 16)  # the first row of windows: the first whole, the second half inside
    with open_scene(write_tif(tmp_path / "scene.tif")) as scene:
        chips = list(iter_chips(scene, SPEC, aoi=aoi))
    assert [(c.window.col_off, c.window.row_off) for c in chips] == [(0, 0), (16, 0)]
    assert [c.inside for c in chips] == pytest.approx([1.0, 0.5])
    assert read == [c.window for c in chips]


def test_aoi_needs_a_georeferenced_scene(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.fromarray(np.full((24, 40, 3), 128, np.uint8)).save(path)
    with open_scene(path) as scene:
        assert len(list(iter_chips(scene, SPEC))) == 6
        with pytest.raises(InputError, match="has no georeference, so --aoi cannot be applied"):
            next(iter_chips(scene, SPEC, aoi=box(0, 0, 1, 1)))


def test_import_loads_no_model_code() -> None:
    code = "import sys, tiles.chips; print('torch' in sys.modules or 'open_clip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
