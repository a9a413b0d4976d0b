"""The common ground grid, and scenes of two CRSs resampled onto it (``open_scene(path, onto=grid)``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject, transform_bounds
from scipy import ndimage
from shapely.geometry import box

from remoteclip.errors import InputError
from tiles.grid import ChipWindow
from tiles.ground_grid import MAX_CELLS, ground_grid, metric_crs
from tiles.reader import open_scene

#: a 0.6 m scene in EPSG:26915 (Joplin, Missouri) and the marker squares planted in it: (row, col) of centres
UTM_ORIGIN = (362_400.0, 4_103_100.0)
MARKERS = [(40, 50), (100, 300), (250, 120), (330, 370)]


def _marked_scene(path: Path) -> Path:
    """A 400 x 400 grey scene in EPSG:26915 with 5 x 5 px white squares at :data:`MARKERS`."""
    data = np.full((3, 400, 400), 60, dtype=np.uint8)
    for row, col in MARKERS:
        data[:, row - 2 : row + 3, col - 2 : col + 3] = 255
    with rasterio.open(
        path, "w", driver="GTiff", width=400, height=400, count=3, dtype="uint8", crs="EPSG:26915",
        transform=from_origin(*UTM_ORIGIN, 0.6, 0.6),
    ) as dst:
        dst.write(data)
    return path


def _reprojected(source: Path, path: Path, crs: str, resolution: float | None = None) -> Path:
    """``source`` warped (bilinear) into ``crs``, at its default resolution or ``resolution`` (CRS units)."""
    with rasterio.open(source) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds, resolution=resolution
        )
        out = np.zeros((3, height, width), dtype=np.uint8)
        reproject(src.read(), out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs=crs, resampling=Resampling.bilinear)
        profile = dict(src.profile, crs=crs, transform=transform, width=width, height=height)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(out)
    return path


def _centres(pixels: np.ndarray) -> list[tuple[float, float]]:
    """(row, col) centroids of the bright blobs of a grid read."""
    bright = pixels[:, :, 0] > 150
    labels, count = ndimage.label(bright)
    return [tuple(c) for c in ndimage.center_of_mass(bright, labels, range(1, count + 1))]


def test_two_crs_land_on_the_same_ground_to_within_a_pixel(tmp_path: Path) -> None:
    before = _marked_scene(tmp_path / "before_26915.tif")
    # the after date in degrees, at a finer resolution than the before (0.45 m against 0.6 m)
    after = _reprojected(before, tmp_path / "after_4326.tif", "EPSG:4326", resolution=4.5e-6)
    with rasterio.open(before) as src:
        area = box(*transform_bounds(src.crs, "EPSG:4326", *src.bounds))
    grid = ground_grid(area, gsd_m=0.6, cell_px=64, crs=CRS.from_epsg(26915))
    whole = ChipWindow(1, 0, 0, grid.width, grid.height, max(grid.width, grid.height))
    with open_scene(before, onto=grid) as one, open_scene(after, onto=grid) as two:
        first, valid_first = one.read_pixels(whole, whole.span_px)
        second, valid_second = two.read_pixels(whole, whole.span_px)
    assert valid_first is not None and valid_second is not None
    assert 0 < valid_first.mean() < 1  # the grid is snapped outwards to whole cells, beyond the scene
    found_first, found_second = _centres(first), _centres(second)
    assert len(found_first) == len(found_second) == len(MARKERS)
    for (r1, c1), (r2, c2) in zip(sorted(found_first), sorted(found_second), strict=True):
        assert abs(r1 - r2) <= 1.0 and abs(c1 - c2) <= 1.0


def test_a_grid_in_degrees_is_laid_in_the_areas_utm_zone() -> None:
    area = box(-94.50, 37.06, -94.48, 37.08)
    assert metric_crs(area) == CRS.from_epsg(32615)
    assert metric_crs(area, CRS.from_epsg(4326)) == CRS.from_epsg(32615)
    assert metric_crs(area, CRS.from_epsg(26915)) == CRS.from_epsg(26915)
    grid = ground_grid(area, gsd_m=0.5, cell_px=256)
    rows, cols = grid.shape
    cell_m = 0.5 * 256
    # edges on multiples of the cell size, and the area inside the grid
    assert grid.transform.c % cell_m == pytest.approx(0) and grid.transform.f % cell_m == pytest.approx(0)
    assert rows * cols == len(grid.cells())
    assert box(*grid.cells()[0].georef.bbox).intersects(area)
    assert grid.gsd_m == 0.5


def test_cells_meet_the_area_and_huge_grids_are_refused() -> None:
    area = box(-94.50, 37.06, -94.48, 37.08)
    grid = ground_grid(area, gsd_m=1.0, cell_px=256)
    corner = box(-94.50, 37.06, -94.499, 37.061)
    inside = grid.cells(corner)
    assert 0 < len(inside) < len(grid.cells())
    assert all(cell.georef.footprint.intersects(corner) for cell in inside)
    with pytest.raises(InputError, match="cells"):
        ground_grid(box(-95, 30, -85, 40), gsd_m=0.3, cell_px=8)
    assert MAX_CELLS >= 100_000


def test_a_grid_aligned_on_a_scene_reads_its_pixels_unresampled(tmp_path: Path) -> None:
    scene = _marked_scene(tmp_path / "scene_26915.tif")
    with rasterio.open(scene) as src:
        area = box(*transform_bounds(src.crs, "EPSG:4326", *src.bounds))
        source = np.moveaxis(src.read(), 0, -1)
        origin = (src.transform.c, src.transform.f)
    grid = ground_grid(area, gsd_m=0.6, cell_px=64, crs=CRS.from_epsg(26915), align=origin)
    # the grid's edges lie on the scene's pixel lattice, a whole number of pixels from its corner
    col, row = ~grid.transform * origin
    assert col == pytest.approx(round(col)) and row == pytest.approx(round(row))
    col, row = round(col), round(row)
    with open_scene(scene, onto=grid) as warped:
        pixels, valid = warped.read_pixels(ChipWindow(1, col, row, 400, 400, 400), 400)
    assert valid is not None and valid.all()
    np.testing.assert_array_equal(pixels, source)
