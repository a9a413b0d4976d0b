"""Georeference of a chip: its footprint in EPSG:4326, bbox, centroid and ground sample distance in metres.

The footprint is exact: the window's outline (corners plus ``densify_pts`` points per edge, like
``rasterio.warp.transform_bounds``) goes through the scene's affine transform and then pyproj with
``always_xy=True``, so coordinates are always (lon, lat). GSD is geodesic (WGS84 ellipsoid) for every CRS,
which also corrects projections whose units are not metres on the ground (EPSG:4326 degrees, EPSG:3395 scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from shapely import make_valid
from shapely.affinity import translate
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from tiles.grid import ChipWindow

WGS84 = "EPSG:4326"
#: the whole globe in (lon, lat)
WORLD = box(-180.0, -90.0, 180.0, 90.0)
#: points added along each edge of a footprint before reprojection
DENSIFY_PTS = 21
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class ChipGeoref:
    """Where a chip lies: EPSG:4326 (lon, lat), or pixel (col, row) space without a georeference."""

    #: a Polygon, or a MultiPolygon split at the antimeridian (EPSG:4326 ones lie within [-180, 180])
    footprint: BaseGeometry
    #: (minx, miny, maxx, maxy) of the footprint
    bbox: tuple[float, float, float, float]
    #: (x, y) of the footprint's centroid
    centroid: tuple[float, float]
    #: metres on the ground per chip pixel (source GSD x level); None in pixel space
    gsd_m: float | None
    pixel_space: bool


@lru_cache(maxsize=64)
def _to_wgs84(crs_wkt: str) -> Transformer:
    """A cached Transformer from ``crs_wkt`` to EPSG:4326 in (x, y) = (lon, lat) order."""
    return Transformer.from_crs(crs_wkt, WGS84, always_xy=True)


def window_outline(window: ChipWindow, densify_pts: int = DENSIFY_PTS) -> tuple[np.ndarray, np.ndarray]:
    """(cols, rows) of the window's closed outline, clockwise from the top-left corner, densified."""
    steps = np.linspace(0.0, 1.0, densify_pts + 2)[:-1]
    c0, r0 = float(window.col_off), float(window.row_off)
    c1, r1 = c0 + window.width, r0 + window.height
    cols = np.concatenate(
        [
            c0 + steps * (c1 - c0),
            np.full_like(steps, c1),
            c1 - steps * (c1 - c0),
            np.full_like(steps, c0),
            [c0],
        ]
    )
    rows = np.concatenate(
        [
            np.full_like(steps, r0),
            r0 + steps * (r1 - r0),
            np.full_like(steps, r1),
            r1 - steps * (r1 - r0),
            [r0],
        ]
    )
    return cols, rows


def pixels_to_lonlat(
    cols: np.ndarray, rows: np.ndarray, transform: Affine, crs: CRS
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (col, row) coordinates -> (lon, lat) in EPSG:4326."""
    xs, ys = transform @ (np.asarray(cols, dtype=np.float64), np.asarray(rows, dtype=np.float64))  # type: ignore[operator]  # affine maps arrays too
    return _to_wgs84(crs.to_wkt()).transform(xs, ys)


def ground_sample_distance_m(col: float, row: float, transform: Affine, crs: CRS) -> float:
    """Geodesic metres per source pixel at (col, row): the mean of the along-row and along-column steps."""
    lon, lat = pixels_to_lonlat(np.array([col, col + 1, col]), np.array([row, row, row + 1]), transform, crs)
    _, _, dists = _GEOD.inv(lon[[0, 0]], lat[[0, 0]], lon[1:], lat[1:])
    return float(np.mean(dists))


def chip_georef(
    window: ChipWindow, transform: Affine, crs: CRS | None, densify_pts: int = DENSIFY_PTS
) -> ChipGeoref:
    """Footprint, bbox, centroid and GSD of ``window``; in pixel space when ``crs`` is None."""
    cols, rows = window_outline(window, densify_pts)
    if crs is None:
        footprint: BaseGeometry = Polygon(np.column_stack((cols, rows)))
        gsd_m = None
        centroid = (footprint.centroid.x, footprint.centroid.y)
    else:
        lon, lat = pixels_to_lonlat(cols, rows, transform, crs)
        footprint, centroid = lonlat_footprint(lon, lat)
        centre = (window.col_off + window.width / 2, window.row_off + window.height / 2)
        gsd_m = ground_sample_distance_m(*centre, transform, crs) * window.level
    return ChipGeoref(
        footprint=footprint,
        bbox=tuple(footprint.bounds),
        centroid=centroid,
        gsd_m=gsd_m,
        pixel_space=crs is None,
    )


def lonlat_footprint(lon: np.ndarray, lat: np.ndarray) -> tuple[BaseGeometry, tuple[float, float]]:
    """A valid EPSG:4326 footprint, and its centroid, from a closed outline's (lon, lat) anywhere on Earth.

    The outline is unwrapped (no edge jumps 180 degrees or more); one that circles a pole (its longitudes go
    once round the globe) is closed along that pole; the polygon is then split at +-180 degrees into a
    MultiPolygon whose parts lie within [-180, 180], as RFC 7946 asks. The centroid is the unwrapped polygon's,
    its longitude brought back into [-180, 180).
    """
    lon = np.degrees(np.unwrap(np.radians(np.asarray(lon, dtype=np.float64))))
    lat = np.asarray(lat, dtype=np.float64)
    turn = lon[-1] - lon[0]
    if abs(turn) > 180:  # it circles a pole: the ring goes once round, so close it along the pole
        pole = 90.0 if lat.mean() > 0 else -90.0
        lon, lat = np.append(lon, [lon[-1], lon[0]]), np.append(lat, [pole, pole])
    lon -= 360.0 * np.floor((lon.min() + 180.0) / 360.0)  # the westmost point in [-180, 180)
    polygon = make_valid(Polygon(np.column_stack((lon, lat))))
    centre = polygon.centroid
    centroid = ((centre.x + 180.0) % 360.0 - 180.0, centre.y)
    if lon.max() <= 180.0:
        return polygon, centroid
    east = polygon.intersection(box(180.0, -90.0, 540.0, 90.0))
    footprint = unary_union([polygon.intersection(WORLD), translate(east, xoff=-360.0)])
    return footprint, centroid
