"""A common grid on the ground: square cells of one size in one metric CRS, laid over an area.

Scenes of any CRS and ground resolution are resampled onto it (:func:`tiles.reader.open_scene` with
``onto=grid``), so two dates of a place are compared cell by cell on the same ground, not chip id by chip id.
The grid's pixels are ``gsd_m`` metres of its CRS; a cell is ``cell_px`` of them on a side, and cell edges lie
on multiples of the cell size (from an alignment point, by default the CRS's origin), so two grids of one CRS,
cell size and alignment over overlapping areas share their cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from shapely.geometry.base import BaseGeometry

from remoteclip.errors import InputError
from tiles.georef import WGS84, ChipGeoref, chip_georef
from tiles.grid import ChipWindow

#: most cells a grid may hold (a 100 x 100 km area at 0.6 m and 256 px cells is about 422,000)
MAX_CELLS = 1_000_000


@dataclass(frozen=True)
class GridCell:
    """One cell of a :class:`GroundGrid`: its place in the grid, its window of grid pixels and where it lies."""

    row: int
    col: int
    window: ChipWindow
    georef: ChipGeoref


@dataclass(frozen=True)
class GroundGrid:
    """A raster grid in a metric CRS (``transform``: grid pixel -> CRS metres) cut into square cells."""

    crs: CRS
    transform: Affine
    #: size of the grid in pixels
    width: int
    height: int
    #: side of a cell in grid pixels
    cell_px: int

    @property
    def gsd_m(self) -> float:
        """Metres of the grid's CRS per grid pixel."""
        return float(self.transform.a)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of cells."""
        return self.height // self.cell_px, self.width // self.cell_px

    def cell(self, row: int, col: int) -> GridCell:
        """The cell at (``row``, ``col``)."""
        window = ChipWindow(
            level=1,
            col_off=col * self.cell_px,
            row_off=row * self.cell_px,
            width=self.cell_px,
            height=self.cell_px,
            span_px=self.cell_px,
        )
        return GridCell(row, col, window, chip_georef(window, self.transform, self.crs))

    def cells(self, area: BaseGeometry | None = None) -> list[GridCell]:
        """Every cell, row-major, or the cells whose footprint meets ``area`` (EPSG:4326)."""
        rows, cols = self.shape
        every = (self.cell(row, col) for row in range(rows) for col in range(cols))
        if area is None:
            return list(every)
        return [cell for cell in every if cell.georef.footprint.intersects(area)]


def metric_crs(area: BaseGeometry, preferred: CRS | None = None) -> CRS:
    """``preferred`` when it is projected in metres, else the UTM zone (WGS84) of ``area``'s centre."""
    if preferred is not None and preferred.is_projected and preferred.linear_units_factor[1] == 1.0:
        return preferred
    lon, lat = area.centroid.x, area.centroid.y
    infos = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
    )
    if not infos:
        raise InputError(f"no UTM zone covers ({lon:.4f}, {lat:.4f}); is the area in longitude/latitude?")
    return CRS.from_wkt(ProjCRS.from_authority(infos[0].auth_name, infos[0].code).to_wkt())


def ground_grid(
    area: BaseGeometry,
    gsd_m: float,
    cell_px: int,
    crs: CRS | None = None,
    align: tuple[float, float] | None = None,
) -> GroundGrid:
    """The grid of ``cell_px``-pixel cells at ``gsd_m`` metres per pixel that covers ``area`` (EPSG:4326).

    The grid's CRS is :func:`metric_crs` (``crs`` if it is metric). Its edges are ``area``'s bounds in that CRS
    snapped outwards to whole cells, counted from ``align`` (a point of that CRS, e.g. a scene's corner, whose
    pixels then are the grid's) or from the CRS's origin.
    """
    if not gsd_m > 0 or cell_px < 8:
        raise InputError(f"a ground grid needs a positive GSD and cells of at least 8 px (got {gsd_m}, {cell_px})")
    crs = metric_crs(area, crs)
    minx, miny, maxx, maxy = transform_bounds(WGS84, crs, *area.bounds, densify_pts=21)
    cell_m = gsd_m * cell_px
    ax, ay = align or (0.0, 0.0)
    x0, y0 = ax + math.floor((minx - ax) / cell_m) * cell_m, ay + math.floor((miny - ay) / cell_m) * cell_m
    cols = max(1, math.ceil((maxx - x0) / cell_m))
    rows = max(1, math.ceil((maxy - y0) / cell_m))
    if rows * cols > MAX_CELLS:
        raise InputError(
            f"the area needs {rows * cols:,} cells of {cell_m:.0f} m, over the {MAX_CELLS:,} limit; "
            "draw a smaller area of interest or use larger cells"
        )
    top = y0 + rows * cell_m
    return GroundGrid(
        crs=crs,
        transform=Affine(gsd_m, 0.0, x0, 0.0, -gsd_m, top),
        width=cols * cell_px,
        height=rows * cell_px,
        cell_px=cell_px,
    )
