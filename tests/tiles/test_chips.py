"""tiles.chips on tiny GeoTIFFs and PNGs written here: grid, skipped windows, AOI shares; the empty-chip rule on
synthetic chips, a bordered GeoTIFF and real scenes."""

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
from tests.bordered_scene import FILL, FLAT, TEXTURED, write_bordered_scene
from tiles.chips import FLAT_STD_DN, SkipReason, empty_reason, iter_chips
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
        read.clear()  # the scene's corner pixels, read as it opens (Scene.fill_colors)
        chips = list(iter_chips(scene, SPEC, aoi=aoi))
    assert [(c.window.col_off, c.window.row_off) for c in chips] == [(0, 0), (16, 0)]
    assert [c.inside for c in chips] == pytest.approx([1.0, 0.5])
    assert read == [c.window for c in chips]


def test_aoi_needs_a_georeferenced_scene(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.fromarray(np.random.default_rng(0).integers(1, 255, (24, 40, 3), dtype=np.uint8)).save(path)
    with open_scene(path) as scene:
        assert len(list(iter_chips(scene, SPEC))) == 6
        with pytest.raises(InputError, match="has no georeference, so --aoi cannot be applied"):
            next(iter_chips(scene, SPEC, aoi=box(0, 0, 1, 1)))


def test_import_loads_no_model_code() -> None:
    code = "import sys, tiles.chips; print('torch' in sys.modules or 'open_clip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- the empty-chip rule ---------------------------------------------------------------------------------

BLACK, WHITE = (0, 0, 0), (255, 255, 255)


def textured(rows: int = 32, cols: int = 32, low: int = 1, high: int = 255, seed: int = 0) -> np.ndarray:
    """A uint8 (rows, cols, 3) chip of random texture in [low, high), never exactly black or white."""
    return np.random.default_rng(seed).integers(low, high, (rows, cols, 3), dtype=np.uint8)


def test_a_black_or_white_border_over_half_the_chip_is_fill() -> None:
    for color in (BLACK, WHITE):
        chip = textured()
        chip[:, :17] = color  # 17 of 32 columns: 53 % border
        assert empty_reason(chip, 0.5) is SkipReason.FILL
        chip = textured()
        chip[:, :15] = color  # 47 %: the chip stays
        assert empty_reason(chip, 0.5) is None
        assert empty_reason(chip, 0.6) is SkipReason.FILL  # a stricter min_valid


def test_only_the_scenes_fill_colours_count_as_no_data() -> None:
    chip = textured()
    chip[:24] = WHITE  # a saturated roof over 75 % of a scene whose corners are not white
    assert empty_reason(chip, 0.5, fill_colors=(BLACK,)) is None
    assert empty_reason(chip, 0.5, fill_colors=(BLACK, WHITE)) is SkipReason.FILL
    almost = textured()
    almost[:24] = (0, 0, 1)  # not exactly black in all three bands: data
    assert empty_reason(almost, 0.5) is None


def test_all_nodata_and_flat_chips_are_empty() -> None:
    assert empty_reason(np.zeros((32, 32, 3), np.uint8), 0.5) is SkipReason.FILL  # all black
    assert empty_reason(np.zeros((32, 32, 3), np.uint8), 0.0) is SkipReason.FLAT  # nothing but fill is left
    grey = np.full((32, 32, 3), (90, 110, 130), np.uint8)
    assert empty_reason(grey, 0.5) is SkipReason.FLAT
    noisy_grey = grey + np.random.default_rng(0).integers(0, 2, grey.shape, dtype=np.uint8)  # std 0.5 DN
    assert empty_reason(noisy_grey, 0.5) is SkipReason.FLAT
    half = grey.copy()
    half[:, :12] = BLACK  # a flat chip behind a border under half of it: flat, not fill
    assert empty_reason(half, 0.5) is SkipReason.FLAT


def test_a_dark_textured_chip_stays() -> None:
    water = textured(low=14, high=26)  # dark water / shadow: mean 20 DN, std 3.5 DN
    assert empty_reason(water, 0.5) is None
    calm = np.full((32, 32, 3), (20, 30, 40), np.uint8)
    calm[::2] += 3  # a ripple of 3 DN: std 1.5 DN, above FLAT_STD_DN
    assert calm.reshape(-1, 3).std(axis=0).max() > FLAT_STD_DN
    assert empty_reason(calm, 0.5) is None


def test_the_border_of_a_scene_without_nodata_flag_is_skipped_and_counted(tmp_path: Path) -> None:
    skipped: list[tuple[ChipWindow, SkipReason]] = []
    with open_scene(write_bordered_scene(tmp_path / "bordered.tif")) as scene:
        assert scene.fill_colors == (BLACK,)  # its corners are black, none white
        chips = list(iter_chips(scene, SPEC, on_skip=lambda w, reason: skipped.append((w, reason))))
    assert [(w.col_off // 16, w.row_off // 16, reason) for w, reason in skipped] == [
        *((col, row, SkipReason.FILL) for col, row in FILL), *((col, row, SkipReason.FLAT) for col, row in FLAT)
    ]
    assert [(c.window.col_off // 16, c.window.row_off // 16) for c in chips] == TEXTURED


def test_real_border_chips_go_and_dark_chips_stay(shared_data: Path) -> None:
    spec = ChipSpec(chip_px=256)
    drone = shared_data / "scenes/deepforest/5b90f92da0d7280005fab355_4310.tif"  # EPSG:3395, no nodata flag
    skipped: list[SkipReason] = []
    with open_scene(drone) as scene:
        kept = list(iter_chips(scene, spec, on_skip=lambda _, reason: skipped.append(reason)))
    assert (len(kept), skipped) == (52, [SkipReason.FILL] * 12)  # its black corner, 0-49.7 % imagery each
    # the flattest real chips measured: open sea (std 1.66 DN) and dark water (mean 20 DN), kept
    for name in ("boat174.jpg", "boat114.jpg"):
        with open_scene(shared_data / "ships-google-earth/images" / name) as scene:
            first = ChipWindow(level=1, col_off=0, row_off=0, width=256, height=256, span_px=256)
            assert len(list(iter_chips(scene, spec, windows=[first]))) == 1, name
