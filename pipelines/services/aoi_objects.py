"""Find objects in an AOI of the library with the object locator: each one a point, counted once.

:func:`locate_in_aoi` runs :func:`pipelines.services.locate.locate_objects` on every georeferenced scene
of the library whose extent meets the AOI, keeping the objects inside the AOI down to a low score floor
(:data:`pipelines.services.locate.MIN_SCORE`), so a page can move a threshold slider without locating again. :class:`AoiObjects` then
answers at any threshold at or above that floor: the objects (``at``, ``total``, ``rows`` for a table), the
objects as an export of points (``table``, written by :mod:`pipelines.services.export` in GeoJSON, CSV or
GeoPackage) and the number of objects in each chip of the library (``chip_counts``, and ``chips_table`` for a
choropleth or an export).

Where two scenes cover the same ground, an object seen in both is one object: objects of different scenes
closer than the locator's merge radius (:data:`pipelines.services.locate.MERGE_CELLS` output cells, in metres
at each scene's GSD) are merged, the better score kept, as within one image.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from shapely import STRtree
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from pipelines.services.export import ExportRow, ExportTable, chips_table, scene_name
from pipelines.services.locate import (
    DEFAULT_SPAN_PX,
    MERGE_CELLS,
    MIN_SCORE,
    locate_objects,
    object_query,
)
from pipelines.services.object_store import stored_in_aoi
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from remoteclip.locator import CHIP_PX, STRIDE, ObjectLocator
from tiles.errors import RasterReadError
from tiles.index.chip_index import Chip, ChipIndex

#: columns of the object export: the object, its score, lon/lat (EPSG:4326), its centre in its scene's pixels
OBJECT_COLUMNS = (
    "object",
    "score",
    "lon",
    "lat",
    "col",
    "row",
    "scene",
    "located_at",
    "scene_path",
    "scene_id",
)
#: metres per degree of latitude, and of longitude at the equator (enough for merge radii of a few metres)
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_320.0


@dataclass(frozen=True)
class AoiObject:
    """One object found in the AOI: its scene, its centre in that scene's pixels, its score and lon/lat."""

    scene_id: str
    scene_path: str
    col: float
    row: float
    score: float
    lon: float
    lat: float


@dataclass(frozen=True)
class ChipObjects:
    """How many objects (at one threshold) lie in one chip of the library."""

    chip: Chip
    count: int


@dataclass(frozen=True)
class AoiObjects:
    """The objects found in an AOI down to ``min_score``, best first, and the library's chips that meet it."""

    object_name: str
    model_id: str
    #: objects below this score were not kept: ``at`` refuses a lower threshold
    min_score: float
    #: the locator's held-out threshold (the default to count at)
    threshold: float
    #: set when the object is unlike every class the locator was trained on
    warning: str | None
    #: when the objects were found (ISO 8601, UTC)
    located_at: str
    aoi: BaseGeometry
    objects: tuple[AoiObject, ...]
    #: the library's georeferenced chips (every level) that meet the AOI
    chips: tuple[Chip, ...]
    #: the scenes searched, and those that could not be read (path, reason)
    scenes: tuple[str, ...]
    failed: tuple[tuple[str, str], ...] = ()

    def at(self, threshold: float) -> list[AoiObject]:
        """The objects scoring at least ``threshold``, best first."""
        if threshold < self.min_score - 1e-9:
            raise InputError(
                f"threshold {threshold:g} is below {self.min_score:g}, the lowest score the objects were "
                f"kept at; choose a threshold of at least {self.min_score:g}"
            )
        return [o for o in self.objects if o.score >= threshold]

    def total(self, threshold: float) -> int:
        """How many objects score at least ``threshold``."""
        return len(self.at(threshold))

    @property
    def levels(self) -> list[int]:
        """The chip levels of the library in the AOI."""
        return sorted({c.level for c in self.chips})

    def chip_counts(self, threshold: float, level: int = 1) -> list[ChipObjects]:
        """Every level-``level`` chip meeting the AOI with the number of objects in it (zeros included).

        Each object counts in one chip only (its own scene's, where chips of two scenes overlap), so the
        counts add up to the objects that lie in a chip of that level.
        """
        chips = [c for c in self.chips if c.level == level]
        counts = [0] * len(chips)
        objects = self.at(threshold)
        if chips and objects:
            tree = STRtree([c.footprint for c in chips])
            points = [Point(o.lon, o.lat) for o in objects]
            candidates: dict[int, list[int]] = defaultdict(list)
            for i, j in zip(*tree.query(points, predicate="intersects").tolist(), strict=True):
                candidates[i].append(j)
            for i, found in candidates.items():
                own = [j for j in sorted(found) if chips[j].scene_id == objects[i].scene_id]
                counts[(own or sorted(found))[0]] += 1
        return [ChipObjects(c, n) for c, n in zip(chips, counts, strict=True)]

    def chips_table(self, threshold: float, level: int = 1) -> ExportTable:
        """Per-chip object counts as an export of chip footprints (also the map's choropleth)."""
        counts = self.chip_counts(threshold, level)
        return chips_table(
            "chip_counts", [c.chip for c in counts], [{"count": c.count} for c in counts], ("count",)
        )

    def table(self, threshold: float) -> ExportTable:
        """The objects scoring at least ``threshold`` as an export of points (EPSG:4326), best first."""
        rows = tuple(
            ExportRow(
                {
                    "object": self.object_name,
                    "score": round(float(o.score), 4),
                    "lon": round(float(o.lon), 7),
                    "lat": round(float(o.lat), 7),
                    "col": round(float(o.col), 1),
                    "row": round(float(o.row), 1),
                    "scene": scene_name(o.scene_path),
                    "located_at": self.located_at,
                    "scene_path": o.scene_path,
                    "scene_id": o.scene_id,
                },
                Point(o.lon, o.lat),
            )
            for o in self.at(threshold)
        )
        return ExportTable("objects", OBJECT_COLUMNS, rows, geometry_type="Point")

    def rows(self, threshold: float) -> list[dict[str, Any]]:
        """One display row per object, best first."""
        return [
            {
                "scene": scene_name(o.scene_path),
                "score": round(o.score, 3),
                "lon": o.lon,
                "lat": o.lat,
                "col": round(o.col),
                "row": round(o.row),
            }
            for o in self.at(threshold)
        ]


def locate_in_aoi(
    index: ChipIndex,
    model: LoadedModel,
    locator: ObjectLocator,
    noun: str,
    aoi: BaseGeometry,
    *,
    min_score: float = MIN_SCORE,
    span_px: int = DEFAULT_SPAN_PX,
) -> AoiObjects:
    """Every ``noun`` the locator finds in ``aoi`` (EPSG:4326) in the library's georeferenced scenes.

    Objects scoring at least ``min_score`` are kept; a scene that can no longer be read is listed in
    ``failed`` and the others are still searched. When the library's ``objects`` table holds ``noun`` for
    every scene meeting the AOI (``ingest --objects``), the stored objects answer instead
    (:func:`pipelines.services.object_store.stored_in_aoi`).
    """
    query = object_query(model, locator, noun, threshold=min_score)
    index.check_model(model.model_id)
    scenes = [s for s in index.scenes() if not s.pixel_space and box(*s.extent).intersects(aoi)]
    found: list[AoiObject] = []
    failed: list[tuple[str, str]] = []
    stored = stored_in_aoi(index, model, locator, noun, aoi, scenes, min_score=min_score, span_px=span_px)
    if stored is not None:  # every scene was searched at ingest (`ingest --objects`)
        found = [AoiObject(o.scene_id, o.scene_path, o.col, o.row, o.score, o.lon, o.lat) for o in stored]
    for scene in scenes if stored is None else ():
        try:
            image = locate_objects(model, locator, scene.scene_path, query, span_px=span_px, aoi=aoi)
        except RasterReadError as exc:
            failed.append((scene.scene_path, str(exc)))
            continue
        found += [
            AoiObject(scene.scene_id, scene.scene_path, o.col, o.row, o.score, o.lon, o.lat)
            for o in image.objects
            if o.lon is not None and o.lat is not None
        ]
    cell_m = MERGE_CELLS * STRIDE * span_px / CHIP_PX
    radius_m = {s.scene_id: cell_m * (s.gsd_m or 0.0) for s in scenes}
    chips = index.search(query.embedding, k=None, aoi=aoi) if scenes else []
    return AoiObjects(
        object_name=query.noun,
        model_id=model.model_id,
        min_score=min_score,
        threshold=locator.threshold,
        warning=query.warning,
        located_at=datetime.now(UTC).isoformat(timespec="seconds"),
        aoi=aoi,
        objects=tuple(merge_across_scenes(found, radius_m)),
        chips=tuple(c for c in chips if not c.pixel_space),
        scenes=tuple(s.scene_path for s in scenes),
        failed=tuple(failed),
    )


def merge_across_scenes(objects: Iterable[AoiObject], radius_m: Mapping[str, float]) -> list[AoiObject]:
    """Objects best first, one per object: one closer than its scene's radius to a better object of another
    scene (the same ground seen twice) is dropped. Objects of one scene are never merged here."""
    ranked = sorted(objects, key=lambda o: -o.score)
    if len({o.scene_id for o in ranked}) < 2:
        return ranked
    radii = np.array([radius_m.get(o.scene_id, 0.0) for o in ranked])
    if not radii.max() > 0:
        return ranked
    xy = _metres([o.lon for o in ranked], [o.lat for o in ranked])
    better: dict[int, list[int]] = defaultdict(list)  # for each object, the better-ranked ones near it
    for i, j in cKDTree(xy).query_pairs(float(radii.max()), output_type="ndarray").tolist():
        better[max(i, j)].append(min(i, j))
    kept = np.ones(len(ranked), dtype=bool)
    for i in range(len(ranked)):
        for j in better.get(i, ()):
            same_ground = np.hypot(*(xy[i] - xy[j])) < max(radii[i], radii[j])
            if kept[j] and ranked[j].scene_id != ranked[i].scene_id and same_ground:
                kept[i] = False
                break
    return [o for o, keep in zip(ranked, kept, strict=True) if keep]


def _metres(lons: Sequence[float], lats: Sequence[float]) -> np.ndarray:
    """(N, 2) local east/north metres of lon/lat points (equirectangular about their mean latitude)."""
    lon, lat = np.asarray(lons, dtype=np.float64), np.asarray(lats, dtype=np.float64)
    scale = np.cos(np.radians(lat.mean()))
    return np.column_stack([lon * _M_PER_DEG_LON * scale, lat * _M_PER_DEG_LAT])
