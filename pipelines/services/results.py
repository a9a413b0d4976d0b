"""Index contents for the map and tables: hits merged into regions, where to look, the hit under a click, scenes.

Plain data in (:mod:`tiles.index.chip_index` chips, hits and scenes), plain data out (GeoJSON dicts, rows), so
the CLI, the app and the benchmark share them; files to take elsewhere are :mod:`pipelines.services.export`'s.
Chips with no georeference (``pixel_space``) cannot go on a geographic map and are left out of map layers
(they stay in the ranked list and the exports).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import shapely
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from pipelines.services.export import feature, feature_collection, scene_name
from tiles.index.chip_index import Chip, ChipIndex, Hit, SceneSummary, sql_str

#: (minx, miny, maxx, maxy)
Bounds = tuple[float, float, float, float]

#: gap (degrees, ~1 m) closed when merging neighbouring footprints, so chips that only touch become one region
MERGE_TOLERANCE_DEG = 1e-5


def merge_regions(hits: Sequence[Hit], tolerance_deg: float = MERGE_TOLERANCE_DEG) -> dict[str, Any]:
    """Neighbouring (touching or overlapping) hit footprints merged into regions, best region first.

    Each region Feature has ``hits`` (how many chips it joins), ``best_score`` and ``best_rank``.
    """
    located = [(rank, hit) for rank, hit in enumerate(hits, start=1) if not hit.pixel_space]
    if not located:
        return feature_collection([])
    grown = [hit.footprint.buffer(tolerance_deg / 2, join_style="mitre") for _, hit in located]
    union = shapely.union_all(grown)
    parts = list(getattr(union, "geoms", [union]))
    tree = shapely.STRtree(grown)
    regions = []
    for part in parts:
        members = [located[i] for i in tree.query(part, predicate="intersects")]
        best_rank, best = min(members, key=lambda member: member[0])
        region = part.buffer(-tolerance_deg / 2, join_style="mitre")
        regions.append(
            feature(
                region if not region.is_empty else part,
                hits=len(members),
                best_score=round(best.score, 4),
                best_rank=best_rank,
            )
        )
    regions.sort(key=lambda feature: feature["properties"]["best_rank"])
    return feature_collection(regions)


def focus_bounds(hits: Sequence[Hit]) -> tuple[float, float, float, float] | None:
    """Where the map should open: around the best georeferenced hit's scene's hits (None without any).

    A library spans continents; fitting every hit would zoom out until the footprints vanish.
    """
    located = [hit for hit in hits if not hit.pixel_space]
    if not located:
        return None
    scene = located[0].scene_id
    return extent(hit.bbox for hit in located if hit.scene_id == scene)


def extent(boxes: Iterable[Bounds]) -> Bounds | None:
    """The box around all ``boxes`` (minx, miny, maxx, maxy), or None when there are none."""
    boxes = list(boxes)
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def hit_at(hits: Sequence[Hit], lon: float, lat: float) -> Hit | None:
    """The best-ranked georeferenced hit whose footprint contains (lon, lat), if any (for map clicks)."""
    point = Point(lon, lat)
    return next((hit for hit in hits if not hit.pixel_space and hit.footprint.covers(point)), None)


def scenes_geojson(scenes: Sequence[SceneSummary], index: ChipIndex | None = None) -> dict[str, Any]:
    """The georeferenced scenes as a FeatureCollection (scene name, chips, CRS, GSD).

    With ``index``, each scene's geometry is its true footprint: the union of the EPSG:4326 footprints of its
    chips at its coarsest level (the fewest chips that cover it; empty chips left out are left out here too),
    read in one query per level; without it (or for a scene with no such chips), its bbox.
    """
    located = [scene for scene in scenes if not scene.pixel_space]
    table = index.table if index is not None else None
    outlines: dict[str, BaseGeometry] = {}
    if table is not None:
        for level in sorted({max(scene.levels) for scene in located}):
            ids = ", ".join(sql_str(scene.scene_id) for scene in located if max(scene.levels) == level)
            where = f"level = {level} AND scene_id IN ({ids})"
            chips = table.count_rows(where)
            if not chips:
                continue
            found = table.search().where(where).select(["scene_id", "footprint"]).limit(chips).to_arrow()
            footprints = shapely.from_wkb(found["footprint"].to_numpy(zero_copy_only=False))
            grown = shapely.buffer(footprints, MERGE_TOLERANCE_DEG / 2, join_style="mitre")
            scene_ids = found["scene_id"].to_numpy(zero_copy_only=False)
            for scene_id in dict.fromkeys(scene_ids):
                union = shapely.union_all(grown[scene_ids == scene_id])
                outline = union.buffer(-MERGE_TOLERANCE_DEG / 2, join_style="mitre")
                outlines[scene_id] = outline.simplify(MERGE_TOLERANCE_DEG / 10)
    return feature_collection(
        feature(
            outlines.get(scene.scene_id, box(*scene.extent)),
            scene=scene_name(scene.scene_path),
            chips=scene.chips,
            crs=scene.crs,
            gsd_m=None if scene.gsd_m is None else round(scene.gsd_m, 3),
        )
        for scene in located
    )


def scenes_table(scenes: Sequence[SceneSummary]) -> list[dict[str, Any]]:
    """One display row per scene: file, chips, CRS, GSD, levels, extent and id."""
    return [
        {
            "scene": scene_name(scene.scene_path),
            "chips": scene.chips,
            "crs": scene.crs or "none (pixel space)",
            "gsd_m": scene.gsd_m,
            "levels": ", ".join(map(str, scene.levels)),
            "extent": ", ".join(f"{v:.5f}" for v in scene.extent),
            "scene_id": scene.scene_id,
            "path": scene.scene_path,
        }
        for scene in scenes
    ]


def chip_label(chip: Chip) -> str:
    """How a person names a chip: its scene file, level and place (lat, lon, or its pixel window)."""
    if chip.pixel_space:
        where = f"pixels {chip.col_off}–{chip.col_off + chip.width}, {chip.row_off}–{chip.row_off + chip.height}"
    else:
        centre = chip.footprint.centroid
        where = f"{centre.y:.5f}, {centre.x:.5f}"
    return f"{scene_name(chip.scene_path)} · level {chip.level} · {where}"


def pixel_map_footprint(chip: Chip) -> dict[str, Any]:
    """A pixel-space chip's window as a Feature in the (col, -row) plane that pixel-space maps draw."""
    window = box(chip.col_off, -(chip.row_off + chip.height), chip.col_off + chip.width, -chip.row_off)
    return feature_collection([feature(window, chip=chip_label(chip))])
