"""Areas of interest: read from GeoJSON and turned into a LanceDB bbox prefilter.

AOIs are EPSG:4326 (lon, lat) as RFC 7946 says; a GeoJSON that declares another CRS in the legacy ``crs``
member (as GDAL and QGIS write, e.g. ``urn:ogc:def:crs:EPSG::32616``) is reprojected to EPSG:4326. A polygon
drawn across the antimeridian (an edge jumping more than 180 degrees of longitude, as web maps draw it) is split
there into two parts, as RFC 7946 asks; self-intersecting polygons are repaired with ``make_valid``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely import make_valid
from shapely.affinity import translate
from shapely.errors import GeometryTypeError
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform, unary_union

from remoteclip.errors import InputError

#: largest AOI file read, in bytes (a country outline at full detail is a few MB)
MAX_AOI_BYTES = 16 * 1024 * 1024


def aoi_from_geojson(obj: dict[str, Any]) -> BaseGeometry:
    """The union of a GeoJSON FeatureCollection, Feature or bare geometry (lon/lat, EPSG:4326)."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "FeatureCollection":
        geometries = [f.get("geometry") for f in obj.get("features", [])]
    elif kind == "Feature":
        geometries = [obj.get("geometry")]
    else:
        geometries = [obj]
    try:
        shapes = [make_valid(split_antimeridian(shape(g))) for g in geometries if g]
    except (GeometryTypeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"AOI is not valid GeoJSON geometry ({exc}); give a Polygon or MultiPolygon"
        ) from exc
    aoi = unary_union(shapes) if shapes else None
    if aoi is None or aoi.is_empty or aoi.area == 0:
        raise InputError("AOI has no area; give a GeoJSON Polygon or MultiPolygon in EPSG:4326 (lon, lat)")
    crs = _declared_crs(obj)
    if crs is not None and not crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        aoi = _to_wgs84(aoi, crs)
    minx, miny, maxx, maxy = aoi.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InputError(
            f"AOI bounds {aoi.bounds} are not longitude/latitude; reproject the GeoJSON to EPSG:4326"
        )
    return aoi


def split_antimeridian(geometry: BaseGeometry) -> BaseGeometry:
    """``geometry`` split at +-180 degrees when one of its edges jumps more than 180 degrees of longitude."""
    rings = shapely.get_rings(geometry) if geometry.geom_type in ("Polygon", "MultiPolygon") else []
    if not any(_jumps(ring) for ring in rings):
        return geometry
    east = shapely.transform(geometry, lambda xy: xy + [[360.0, 0.0]] * (xy[:, :1] < 0))  # -170 -> 190
    east = make_valid(east)
    return unary_union([east.intersection(box(-180, -90, 180, 90)),
                        translate(east.intersection(box(180, -90, 540, 90)), xoff=-360)])


def _jumps(ring: BaseGeometry) -> bool:
    """Whether a ring has an edge spanning more than 180 degrees of longitude."""
    lons = shapely.get_coordinates(ring)[:, 0]
    if len(lons) < 2 or (abs(lons) > 180).any():  # projected coordinates are refused later, not split
        return False
    start, end = lons[:-1], lons[1:]
    # an edge along the map's border (from -180 to 180, as in a whole-world box) is not a crossing
    crossing = (abs(end - start) > 180) & (abs(start) != 180) & (abs(end) != 180)
    return bool(crossing.any())


def _declared_crs(obj: dict[str, Any]) -> CRS | None:
    """The CRS named by a legacy GeoJSON ``crs`` member, or None when there is none."""
    name = (obj.get("crs") or {}).get("properties", {}).get("name") if isinstance(obj, dict) else None
    if name is None:
        return None
    try:
        return CRS.from_user_input(name)
    except CRSError as exc:
        raise InputError(f"AOI declares an unknown CRS {name!r}; reproject the GeoJSON to EPSG:4326") from exc


def _to_wgs84(aoi: BaseGeometry, crs: CRS) -> BaseGeometry:
    """``aoi`` reprojected from ``crs`` to EPSG:4326, edges densified (100 segments across its extent)."""
    minx, miny, maxx, maxy = aoi.bounds
    dense = shapely.segmentize(aoi, max(maxx - minx, maxy - miny) / 100)
    return transform(Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform, dense)


def load_aoi(path: Path) -> BaseGeometry:
    """Read an AOI GeoJSON file (see :func:`aoi_from_geojson`)."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_AOI_BYTES:
            raise InputError(f"AOI file {path} has {size / 1e6:.0f} MB, over the {MAX_AOI_BYTES / 1e6:.0f} MB "
                             "limit; simplify it (e.g. ogr2ogr -simplify 0.0001) or draw the AOI")
        obj = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read AOI file {path}: {exc}; give a GeoJSON file in EPSG:4326") from exc
    return aoi_from_geojson(obj)


def bbox_where(
    bounds: tuple[float, float, float, float], max_chip_size: tuple[float, float] | None = None
) -> str:
    """SQL selecting georeferenced chips whose bbox intersects ``bounds`` (minx, miny, maxx, maxy).

    ``max_chip_size``: (width, height) of the largest chip in the table, in degrees. With it, the test starts
    with two narrow ranges, ``minx`` within ``[bounds.minx - width, bounds.maxx]`` and ``miny`` likewise,
    which BTree indexes answer with a few rows each; ``maxx >= ...`` alone matches half of any table.
    """
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    overlap = f"maxx >= {minx!r} AND minx <= {maxx!r} AND maxy >= {miny!r} AND miny <= {maxy!r}"
    if max_chip_size is not None:
        width, height = (float(v) for v in max_chip_size)
        overlap = (
            f"minx BETWEEN {minx - width!r} AND {maxx!r} AND miny BETWEEN {miny - height!r} AND {maxy!r} "
            f"AND maxx >= {minx!r} AND maxy >= {miny!r}"
        )
    return f"{overlap} AND NOT pixel_space"
