"""Search results as map layers and exports: GeoJSON of hits, hits merged into regions, CSV, hit under a click.

Plain data in (``tiles.index.Hit`` lists), plain data out (GeoJSON dicts, CSV text), so the CLI, the app and
the benchmark share them. Chips without a georeference (``pixel_space``) cannot be drawn on a geographic map and
are left out of map layers (they stay in the ranked list and the CSV).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import shapely
from shapely.geometry import Point, mapping

from tiles.index import Chip, Hit

#: gap (degrees, ~1 m) closed when merging neighbouring footprints, so chips that only touch become one region
MERGE_TOLERANCE_DEG = 1e-5

CSV_COLUMNS = ("rank", "score", "chip_id", "scene_id", "scene_path", "level", "col_off", "row_off", "width",
               "height", "centroid_lon", "centroid_lat", "gsd_m", "footprint_wkt")


def chip_feature(chip: Chip, **properties: Any) -> dict[str, Any]:
    """A GeoJSON Feature of a chip's footprint, with its id, scene, level and any extra ``properties``."""
    return {
        "type": "Feature",
        "geometry": mapping(chip.footprint),
        "properties": {"chip_id": chip.chip_id, "scene": chip.scene_path.rsplit("/", 1)[-1],
                       "level": chip.level, **properties},
    }


def hits_geojson(hits: Sequence[Hit]) -> dict[str, Any]:
    """Georeferenced hits as a FeatureCollection with ``rank`` (1 = best) and ``score`` properties."""
    features = [chip_feature(hit, rank=rank, score=round(hit.score, 4))
                for rank, hit in enumerate(hits, start=1) if not hit.pixel_space]
    return {"type": "FeatureCollection", "features": features}


def merge_regions(hits: Sequence[Hit], tolerance_deg: float = MERGE_TOLERANCE_DEG) -> dict[str, Any]:
    """Neighbouring (touching or overlapping) hit footprints merged into regions, best region first.

    Each region Feature has ``hits`` (how many chips it joins), ``best_score`` and ``best_rank``.
    """
    located = [(rank, hit) for rank, hit in enumerate(hits, start=1) if not hit.pixel_space]
    if not located:
        return {"type": "FeatureCollection", "features": []}
    grown = [hit.footprint.buffer(tolerance_deg / 2, join_style="mitre") for _, hit in located]
    union = shapely.union_all(grown)
    parts = list(getattr(union, "geoms", [union]))
    tree = shapely.STRtree(grown)
    regions = []
    for part in parts:
        members = [located[i] for i in tree.query(part, predicate="intersects")]
        best_rank, best = min(members, key=lambda member: member[0])
        region = part.buffer(-tolerance_deg / 2, join_style="mitre")
        regions.append({
            "type": "Feature",
            "geometry": mapping(region if not region.is_empty else part),
            "properties": {"hits": len(members), "best_score": round(best.score, 4), "best_rank": best_rank},
        })
    regions.sort(key=lambda feature: feature["properties"]["best_rank"])
    return {"type": "FeatureCollection", "features": regions}


def hits_csv(hits: Sequence[Hit]) -> str:
    """The ranked hits as CSV text (one row per hit, footprint as WKT)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for rank, hit in enumerate(hits, start=1):
        centroid = hit.footprint.centroid
        writer.writerow([rank, f"{hit.score:.6f}", hit.chip_id, hit.scene_id, hit.scene_path, hit.level,
                         hit.col_off, hit.row_off, hit.width, hit.height, f"{centroid.x:.7f}",
                         f"{centroid.y:.7f}", "" if hit.gsd_m is None else f"{hit.gsd_m:.3f}",
                         hit.footprint.wkt])
    return buffer.getvalue()


def hit_at(hits: Sequence[Hit], lon: float, lat: float) -> Hit | None:
    """The best-ranked georeferenced hit whose footprint contains (lon, lat), if any (for map clicks)."""
    point = Point(lon, lat)
    return next((hit for hit in hits if not hit.pixel_space and hit.footprint.covers(point)), None)
