"""What leaves the app and the CLI: GeoJSON Features and FeatureCollections, hits as JSON records and CSV.

:func:`feature` and :func:`feature_collection` are the one GeoJSON builder: every layer the map draws and every
export is made with them. Chips with no georeference (``pixel_space``) keep their place in JSON and CSV
(``geometry: null`` in GeoJSON, since their footprint is in pixel space, not EPSG:4326).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from tiles.index.chip_index import Chip, Hit

CSV_COLUMNS = (
    "rank",
    "score",
    "chip_id",
    "scene_id",
    "scene_path",
    "level",
    "col_off",
    "row_off",
    "width",
    "height",
    "centroid_lon",
    "centroid_lat",
    "gsd_m",
    "footprint_wkt",
)


def scene_name(scene_path: str) -> str:
    """The file name of a scene, as tables, tooltips and layer names show it."""
    return Path(scene_path).name


def feature(
    geometry: BaseGeometry | dict[str, Any] | None, feature_id: str | None = None, **properties: Any
) -> dict[str, Any]:
    """A GeoJSON Feature of a shapely geometry (or an already mapped one, or None) with ``properties``."""
    if isinstance(geometry, BaseGeometry):
        geometry = mapping(geometry)
    out: dict[str, Any] = {"type": "Feature", "geometry": geometry, "properties": properties}
    if feature_id is not None:
        out["id"] = feature_id
    return out


def feature_collection(features: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of ``features``."""
    return {"type": "FeatureCollection", "features": list(features)}


def chip_feature(chip: Chip, **properties: Any) -> dict[str, Any]:
    """A GeoJSON Feature of a chip's footprint, with its id, scene, level and any extra ``properties``."""
    return feature(
        chip.footprint, chip_id=chip.chip_id, scene=scene_name(chip.scene_path), level=chip.level, **properties
    )


def hit_record(hit: Hit, rank: int) -> dict[str, Any]:
    """A JSON-ready dict of one hit (no thumbnail bytes; footprint as a GeoJSON geometry)."""
    return {
        "rank": rank,
        "score": round(hit.score, 6),
        "chip_id": hit.chip_id,
        "scene_id": hit.scene_id,
        "scene_path": hit.scene_path,
        "level": hit.level,
        "window": {"col_off": hit.col_off, "row_off": hit.row_off, "width": hit.width, "height": hit.height},
        "crs": hit.crs,
        "gsd_m": hit.gsd_m,
        "pixel_space": hit.pixel_space,
        "bbox": list(hit.bbox),
        "footprint": mapping(hit.footprint),
    }


def hits_geojson(hits: Sequence[Hit]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of hit footprints (EPSG:4326); pixel-space hits get no geometry."""
    features = []
    for rank, hit in enumerate(hits, start=1):
        properties = hit_record(hit, rank)
        geometry = properties.pop("footprint")
        features.append(feature(None if hit.pixel_space else geometry, hit.chip_id, **properties))
    return feature_collection(features)


def hits_csv(hits: Sequence[Hit]) -> str:
    """The ranked hits as CSV text (one row per hit, footprint as WKT)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for rank, hit in enumerate(hits, start=1):
        centroid = hit.footprint.centroid
        writer.writerow(
            [
                rank,
                f"{hit.score:.6f}",
                hit.chip_id,
                hit.scene_id,
                hit.scene_path,
                hit.level,
                hit.col_off,
                hit.row_off,
                hit.width,
                hit.height,
                f"{centroid.x:.7f}",
                f"{centroid.y:.7f}",
                "" if hit.gsd_m is None else f"{hit.gsd_m:.3f}",
                hit.footprint.wkt,
            ]
        )
    return buffer.getvalue()
