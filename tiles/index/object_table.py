"""Objects found at ingest: a LanceDB table ``objects`` beside ``chips``, one row per object (a point).

Object names are stored as given: the caller normalises them (lower case, singular:
:func:`pipelines.services.object_store.object_name`; this layer may not import the model library's prompts).
An AOI count over a whole library is then a spatial query: the ``lon``/``lat`` columns are filtered inside
LanceDB (``BETWEEN`` the AOI's bounds, as a prefilter) and the candidates tested exactly with shapely.

Which scenes were searched for which object, with which model, locator, chip span and score floor, is kept in
a second small table (:data:`LOCATED_TABLE`): a scene where nothing was found has no object rows, yet its
count is known (zero). Its row is written after the scene's objects, so a crash between the two leaves the
scene looking unsearched (searched again on demand), never searched with objects missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import shapely
from lancedb.table import Table
from shapely.geometry.base import BaseGeometry

from tiles.index.chip_index import ChipIndex, sql_str
from tiles.index.errors import ChipIndexError
from tiles.index.schema import DATA_STORAGE_VERSION, ID_HEX

OBJECTS_TABLE = "objects"
LOCATED_TABLE = "object_scenes"
#: pixel positions are rounded to this many decimals in the object id
ID_DECIMALS = 1

OBJECTS_SCHEMA = pa.schema(
    [
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("object", pa.string(), nullable=False),
        pa.field("scene_id", pa.string(), nullable=False),
        pa.field("scene_path", pa.string()),
        pa.field("col", pa.float64()),
        pa.field("row", pa.float64()),
        pa.field("lon", pa.float64()),
        pa.field("lat", pa.float64()),
        pa.field("score", pa.float32()),
        pa.field("model_id", pa.string()),
        pa.field("threshold_floor", pa.float32()),
    ]
)
LOCATED_SCHEMA = pa.schema(
    [
        pa.field("located_id", pa.string(), nullable=False),
        pa.field("object", pa.string(), nullable=False),
        pa.field("scene_id", pa.string(), nullable=False),
        pa.field("scene_path", pa.string()),
        pa.field("model_id", pa.string()),
        pa.field("locator_id", pa.string()),
        pa.field("span_px", pa.int32()),
        pa.field("threshold_floor", pa.float32()),
        pa.field("objects", pa.int64()),
        pa.field("located_at", pa.string()),
    ]
)


def object_id_for(scene_id: str, obj: str, col: float, row: float) -> str:
    """Id of an object from its scene, class and rounded pixel position (a rerun gives the same ids)."""
    key = f"{scene_id}/{obj}/{round(col, ID_DECIMALS):.{ID_DECIMALS}f}/{round(row, ID_DECIMALS):.{ID_DECIMALS}f}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()[:ID_HEX]


def _located_id(scene_id: str, obj: str) -> str:
    return hashlib.blake2b(f"{scene_id}/{obj}".encode(), digest_size=16).hexdigest()[:ID_HEX]


@dataclass(frozen=True)
class ObjectPoint:
    """One object as the locator found it in a scene: pixel centre, lon/lat (EPSG:4326), score."""

    col: float
    row: float
    lon: float
    lat: float
    score: float


@dataclass(frozen=True)
class StoredObject:
    """One row of the ``objects`` table."""

    object_id: str
    object: str
    scene_id: str
    scene_path: str
    col: float
    row: float
    lon: float
    lat: float
    score: float
    model_id: str
    threshold_floor: float


@dataclass(frozen=True)
class LocatedScene:
    """How one scene was searched for one object (a row of :data:`LOCATED_TABLE`)."""

    object: str
    scene_id: str
    scene_path: str
    model_id: str
    locator_id: str
    span_px: int
    threshold_floor: float
    objects: int
    located_at: str


class ObjectTable:
    """The ``objects`` table (and its searched-scenes table) in the database of ``index``."""

    def __init__(self, index: ChipIndex) -> None:
        self.index = index
        self._tables: dict[str, Table | None] = {}

    def _table(self, name: str) -> Table | None:
        if self._tables.get(name) is None:
            try:
                self._tables[name] = self.index.db.open_table(name)
            except ValueError:  # not created yet
                return None
            except OSError as exc:
                raise ChipIndexError(f"cannot open the {name} table in {self.index.uri}: {exc}") from exc
        return self._tables[name]

    def _table_for_write(self, name: str, schema: pa.Schema) -> Table:
        table = self._table(name)
        if table is None:
            try:
                table = self.index.db.create_table(
                    name, schema=schema, data_storage_version=DATA_STORAGE_VERSION, exist_ok=True
                )
            except (OSError, ValueError) as exc:
                raise ChipIndexError(f"cannot create the {name} table in {self.index.uri}: {exc}") from exc
            self._tables[name] = table
        return table

    def replace_scene(
        self,
        scene_id: str,
        object: str,
        rows: Sequence[ObjectPoint],
        *,
        scene_path: str,
        model_id: str,
        threshold_floor: float,
        locator_id: str = "",
        span_px: int = 0,
    ) -> int:
        """Make ``rows`` the scene's ``object`` objects in one commit (its earlier ones deleted), then record
        that the scene was searched. Returns how many objects were stored (duplicate ids kept once)."""
        obj = object
        by_id: dict[str, dict[str, Any]] = {}
        for p in sorted(rows, key=lambda p: -p.score):
            object_id = object_id_for(scene_id, obj, p.col, p.row)
            by_id.setdefault(
                object_id,
                {
                    "object_id": object_id,
                    "object": obj,
                    "scene_id": scene_id,
                    "scene_path": scene_path,
                    "col": float(p.col),
                    "row": float(p.row),
                    "lon": float(p.lon),
                    "lat": float(p.lat),
                    "score": float(p.score),
                    "model_id": model_id,
                    "threshold_floor": float(threshold_floor),
                },
            )
        data = pa.Table.from_pylist(list(by_id.values()), schema=OBJECTS_SCHEMA)
        where = f"scene_id = {sql_str(scene_id)} AND object = {sql_str(obj)}"
        table = self._table_for_write(OBJECTS_TABLE, OBJECTS_SCHEMA)
        try:
            if data.num_rows:
                (
                    table.merge_insert("object_id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .when_not_matched_by_source_delete(where)
                    .execute(data)
                )
            elif table.count_rows(where):
                table.delete(where)
            located = LocatedScene(
                obj, scene_id, scene_path, model_id, locator_id, span_px, float(threshold_floor),
                data.num_rows, datetime.now(UTC).isoformat(timespec="seconds"),
            )
            marker = pa.Table.from_pylist(
                [{"located_id": _located_id(scene_id, obj), **located.__dict__}], schema=LOCATED_SCHEMA
            )
            log = self._table_for_write(LOCATED_TABLE, LOCATED_SCHEMA)
            log.merge_insert("located_id").when_matched_update_all().when_not_matched_insert_all().execute(marker)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ChipIndexError(f"cannot write the objects of scene {scene_id}: {exc}") from exc
        return data.num_rows

    def located(self, object: str, scene_ids: Sequence[str] | None = None) -> dict[str, LocatedScene]:
        """How each scene (of ``scene_ids``, or all) was searched for ``object``, by scene id."""
        table = self._table(LOCATED_TABLE)
        if table is None:
            return {}
        where = f"object = {sql_str(object)}"
        if scene_ids is not None:
            if not scene_ids:
                return {}
            where += f" AND scene_id IN ({', '.join(sql_str(s) for s in scene_ids)})"
        rows = _scan(table, where, [f.name for f in LOCATED_SCHEMA if f.name != "located_id"])
        return {r["scene_id"]: LocatedScene(**r) for r in rows.to_pylist()}

    def in_aoi(self, object: str, aoi: BaseGeometry, min_score: float = 0.0) -> list[StoredObject]:
        """The stored ``object`` objects scoring at least ``min_score`` inside ``aoi`` (EPSG:4326), best
        first: a ``lon``/``lat`` prefilter in LanceDB, then an exact point-in-polygon test."""
        table = self._table(OBJECTS_TABLE)
        if table is None or aoi.is_empty:
            return []
        minx, miny, maxx, maxy = aoi.bounds
        where = (
            f"object = {sql_str(object)} AND score >= {float(min_score)!r} "
            f"AND lon BETWEEN {minx!r} AND {maxx!r} AND lat BETWEEN {miny!r} AND {maxy!r}"
        )
        rows = _scan(table, where, OBJECTS_SCHEMA.names)
        if not rows.num_rows:
            return []
        points = shapely.points(rows["lon"].to_numpy(), rows["lat"].to_numpy())
        shapely.prepare(aoi)
        rows = rows.filter(pa.array(shapely.covers(aoi, points)))
        rows = rows.sort_by([("score", "descending"), ("object_id", "ascending")])
        return [StoredObject(**r) for r in rows.to_pylist()]

    def objects(self) -> dict[str, int]:
        """Every stored object name with its number of objects (names searched but never found: 0)."""
        counts: dict[str, int] = {}
        for name, column in ((LOCATED_TABLE, "object"), (OBJECTS_TABLE, "object")):
            table = self._table(name)
            if table is not None and table.count_rows():
                values = pc.value_counts(_scan(table, None, [column])[column]).to_pylist()
                for c in values:
                    counts[c["values"]] = c["counts"] if name == OBJECTS_TABLE else counts.get(c["values"], 0)
        return dict(sorted(counts.items()))

    def count_rows(self, where: str | None = None) -> int:
        """Number of stored objects (matching the SQL ``where`` when given)."""
        table = self._table(OBJECTS_TABLE)
        return 0 if table is None else table.count_rows(where)


def _scan(table: Table, where: str | None, columns: list[str]) -> pa.Table:
    """Every row matching ``where`` (all rows when None), these columns only."""
    try:
        query = table.search().select(columns)
        if where is not None:
            query = query.where(where, prefilter=True)
        return query.limit(None).to_arrow()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ChipIndexError(f"cannot read the {table.name} table: {exc}") from exc
