"""The chip index: a LanceDB table of georeferenced chip embeddings (schema in :mod:`tiles.index.schema`).

Writes are upserts keyed by ``chip_id`` (``merge_insert``), so re-ingesting a scene never duplicates rows; a
table holds the vectors of one model only. The Ray engine appends a whole Ray dataset instead
(:meth:`ChipIndex.append_dataset`), the index alone knowing where and how the table is stored. AOI search
filters on the bbox columns inside LanceDB (``prefilter=True``) and then tests the exact footprints with
shapely.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from lancedb.table import Table
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from tiles.aoi import bbox_where
from tiles.index.ann import AnnPolicy, ensure_ann_index, tune_query
from tiles.index.errors import ChipIndexError
from tiles.index.location import is_object_store_uri
from tiles.index.schema import (
    DATA_STORAGE_VERSION,
    ITEM_FIELDS,
    METADATA_COLUMNS,
    TABLE_NAME,
    chips_schema,
)

if TYPE_CHECKING:
    from ray.data import Dataset

T = TypeVar("T")

#: over-fetch factor (first, then again each round) when an exact AOI test may drop some bbox candidates
AOI_OVERFETCH = 4
#: rows read per batch by :meth:`ChipIndex.scan`
SCAN_BATCH = 8192


@dataclass(frozen=True)
class Chip:
    """One row of the index, without its vector."""

    chip_id: str
    scene_id: str
    scene_path: str
    level: int
    col_off: int
    row_off: int
    width: int
    height: int
    crs: str | None
    #: (minx, miny, maxx, maxy) in EPSG:4326, or pixels when ``pixel_space``
    bbox: tuple[float, float, float, float]
    footprint: BaseGeometry
    gsd_m: float | None
    pixel_space: bool
    thumbnail: bytes
    model_id: str
    #: the catalog item of the chip's scene (:data:`tiles.index.schema.ITEM_FIELDS`), None without one
    item_id: str | None = field(default=None, kw_only=True)
    collection: str | None = field(default=None, kw_only=True)
    datetime: datetime | None = field(default=None, kw_only=True)
    item_url: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Hit(Chip):
    """A search result: a chip and its cosine similarity to the query."""

    score: float


@dataclass(frozen=True)
class SceneSummary:
    """One ingested scene, as listed by :meth:`ChipIndex.scenes`."""

    scene_id: str
    scene_path: str
    chips: int
    crs: str | None
    #: metres per source pixel (None for images without a georeference)
    gsd_m: float | None
    #: (minx, miny, maxx, maxy) of all its chips, EPSG:4326 or pixels
    extent: tuple[float, float, float, float]
    pixel_space: bool
    levels: tuple[int, ...]


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: Sequence[str]) -> str:
    """SQL string literals, comma-separated (the inside of an ``IN (...)``)."""
    return ", ".join(sql_str(value) for value in values)


class ChipIndex:
    """The LanceDB table ``chips`` in a local folder or an object-store URI (created by the first write).

    ``storage_options`` go to Lance for object stores (keys, ``aws_endpoint``, ``aws_region``, ...); Lance
    also reads the usual variables (``AWS_ACCESS_KEY_ID``, ``GOOGLE_SERVICE_ACCOUNT``,
    ``AZURE_STORAGE_ACCOUNT_NAME``).
    """

    def __init__(
        self,
        db: str | Path,
        table_name: str = TABLE_NAME,
        ann: AnnPolicy = AnnPolicy(),
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        #: the LanceDB location: a folder path, or a URI such as ``s3://bucket/library``
        self.uri = str(db).rstrip("/") if is_object_store_uri(db) else str(Path(db).expanduser())
        self.table_name = table_name
        #: when a vector index is built and how queries use it (:mod:`tiles.index.ann`)
        self.ann = ann
        self.storage_options = dict(storage_options or {})
        self._table: Table | None = None
        #: values read from the table (its model, its largest chip), each with the table and version read at
        self._per_version: dict[str, tuple[Table, int, Any]] = {}

    @cached_property
    def db(self) -> lancedb.DBConnection:
        """The LanceDB connection (opened on first use)."""
        try:
            # interval 0: every read sees writes made since by other processes (e.g. the app during an ingest)
            return lancedb.connect(
                self.uri, read_consistency_interval=timedelta(0), storage_options=self.storage_options or None
            )
        except (OSError, ValueError) as exc:
            raise ChipIndexError(f"cannot open the chip index at {self.uri}: {_store_error(exc)}") from exc

    @property
    def table(self) -> Table | None:
        """The LanceDB table, or None before the first write."""
        if self._table is None:
            try:
                self._table = self.db.open_table(self.table_name)
            except ValueError:
                return None
        return self._table

    def _require_table(self) -> Table:
        table = self.table
        if table is None:
            raise ChipIndexError(
                f"no chip index in {self.uri}; "
                f"run `remoteclip-explorer ingest PATH --db {self.uri}` first"
            )
        return table

    @property
    def dim(self) -> int | None:
        """Embedding dimension of the table, or None before the first write."""
        table = self.table
        return None if table is None else table.schema.field("vector").type.list_size

    @property
    def model_id(self) -> str | None:
        """The model whose vectors the table holds, or None while it is empty (cached per table version)."""
        table = self.table
        return None if table is None else self._read_per_version("model_id", table, _model_id)

    def check_model(self, model_id: str) -> None:
        """Refuse a model other than the one whose vectors the table already holds."""
        existing = self.model_id
        if existing is not None and existing != model_id:
            raise ChipIndexError(
                f"{self.uri} holds vectors of model {existing!r}, not {model_id!r}; use the model it was "
                "built with (--model/--weights), embed the library for this model with `remoteclip-explorer "
                "ingest SCENES --db DB --model NAME` (a table beside the old), or use another --db"
            )

    def count_rows(self, where: str | None = None) -> int:
        """Number of chips (matching the SQL ``where`` when given)."""
        table = self.table
        return 0 if table is None else table.count_rows(where)

    def upsert(self, rows: pa.Table) -> None:
        """Insert or update ``rows`` (schema :func:`tiles.index.schema.chips_schema`) by ``chip_id``."""
        self._merge(rows, replace_scenes=None)

    def replace_scenes(self, scene_ids: Sequence[str], rows: pa.Table) -> None:
        """Make ``rows`` these scenes' chips in one commit: upsert them, delete the scenes' other chips."""
        if not scene_ids:
            raise ChipIndexError("replace_scenes() needs at least one scene id")
        if rows.num_rows and not pc.all(pc.is_in(rows["scene_id"], pa.array(list(scene_ids)))).as_py():
            raise ChipIndexError(f"replace_scenes({list(scene_ids)[:3]}...) was given rows of other scenes")
        self._merge(rows, replace_scenes=scene_ids)

    def _merge(self, rows: pa.Table, replace_scenes: Sequence[str] | None) -> None:
        table = self._table_for(rows)
        if table is None:
            return
        builder = table.merge_insert("chip_id").when_matched_update_all().when_not_matched_insert_all()
        if replace_scenes is not None:
            builder = builder.when_not_matched_by_source_delete(f"scene_id IN ({_sql_list(replace_scenes)})")
        builder.execute(rows.select(table.schema.names))

    def _table_for(self, rows: pa.Table) -> Table | None:
        """The table ``rows`` can go into (created on first use); refuses a second model or dimension."""
        models = set(pc.unique(rows["model_id"]).to_pylist()) if rows.num_rows else set()
        if len(models) > 1:
            raise ChipIndexError(
                f"rows mix vectors of several models {sorted(models)}; write one model at a time"
            )
        dim = rows.schema.field("vector").type.list_size
        table = self.table
        if table is None:
            if not rows.num_rows:
                return None
            table = self._create_empty(dim)
        elif missing := [f for f in ITEM_FIELDS if f.name not in table.schema.names]:
            table.add_columns(missing)  # a library made before these columns: all null for its chips
        if models:
            self.check_model(models.pop())
        if rows.num_rows and dim != self.dim:
            raise ChipIndexError(f"{self.uri} holds {self.dim}-d vectors, these rows have {dim}-d vectors")
        return table

    def _create_empty(self, dim: int) -> Table:
        """Create the table empty, or open it when another writer has just created it."""
        self._table = self.db.create_table(
            self.table_name, schema=chips_schema(dim), exist_ok=True, data_storage_version=DATA_STORAGE_VERSION
        )
        return self._table

    def create(self, rows: pa.Table | pa.RecordBatchReader) -> Table:
        """Create the table from ``rows`` in one commit (for bulk loads; it must not exist yet)."""
        self._table = self.db.create_table(
            self.table_name, data=rows, schema=rows.schema, data_storage_version=DATA_STORAGE_VERSION
        )
        return self._table

    def append_dataset(self, dataset: Dataset, dim: int) -> None:
        """Append a Ray dataset of ``chips_schema(dim)`` rows in one commit, written by the Ray workers.

        A missing table is created empty first, so a writer creating it meanwhile cannot fail the run at its end.
        The rows are not checked against the table's model: call :meth:`check_model` first.
        """
        import lance_ray  # only the Ray engine needs it

        if self.table is None:
            self._create_empty(dim)
        lance_ray.write_lance(dataset, f"{self.uri}/{self.table_name}.lance", schema=chips_schema(dim),
                              mode="append", storage_options=self.storage_options or None)
        # written around LanceDB: open the table again and forget what was read from it
        self._table = None
        self._per_version.clear()

    def search(
        self,
        vector: np.ndarray,
        k: int | None = 20,
        aoi: BaseGeometry | None = None,
        where: str | None = None,
    ) -> list[Hit]:
        """The ``k`` chips nearest to ``vector`` (cosine), intersecting ``aoi`` (EPSG:4326) when given.

        ``k=None``: every chip the filters leave, nearest first (an ``aoi`` or ``where`` is then required).
        """
        table = self._require_table()
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise ChipIndexError(f"query vector has {vector.shape[0]} dimensions, the index {self.dim}")
        filters = [f"({where})"] if where else []
        if aoi is not None:
            filters.append(self.aoi_where(aoi.bounds))
        where_sql = " AND ".join(filters) if filters else None
        candidates = table.count_rows(where_sql) if where_sql else None
        if k is None:
            if candidates is None:
                raise ChipIndexError("a search for every match needs an AOI or a where filter")
            if not candidates:
                return []
            k = candidates
        limit = k * AOI_OVERFETCH if aoi is not None else k
        prepared = prep(aoi) if aoi is not None else None
        while True:
            query = table.search(vector, vector_column_name="vector")
            # a vector makes search() a LanceVectorQueryBuilder; LanceDB types it as the base builder
            query = query.distance_type("cosine")  # type: ignore[attr-defined]
            query = tune_query(query, self.ann, candidates)
            query = query.select([*_stored(table, METADATA_COLUMNS), "_distance"]).limit(limit)
            if where_sql:
                query = query.where(where_sql, prefilter=True)
            found = query.to_arrow()
            distances = found["_distance"].to_pylist()
            hits = [Hit(**kw, score=1.0 - d) for kw, d in zip(_chip_fields(found), distances, strict=True)]
            if prepared is None:
                return hits
            inside = [hit for hit in hits if prepared.intersects(hit.footprint)]
            if len(inside) >= k or found.num_rows < limit:
                return inside[:k]
            limit *= AOI_OVERFETCH

    def aoi_where(self, bounds: tuple[float, float, float, float]) -> str:
        """SQL selecting the georeferenced chips whose bbox meets ``bounds`` (EPSG:4326), index-friendly."""
        return bbox_where(bounds, self.max_chip_size())

    def max_chip_size(self) -> tuple[float, float] | None:
        """(width, height) in degrees of the largest georeferenced chip, or None (cached per version)."""
        table = self.table
        return None if table is None else self._read_per_version("max_chip_size", table, _max_chip_size)

    def _read_per_version(self, name: str, table: Table, read: Callable[[Table], T]) -> T:
        """``read(table)``, read again once the table has a new version (a write, here or elsewhere) or was
        dropped and created again."""
        version = table.version
        cached = self._per_version.get(name)
        if cached is None or cached[0] is not table or cached[1] != version:
            cached = (table, version, read(table))
            self._per_version[name] = cached
        return cached[2]

    def get(self, chip_ids: Sequence[str]) -> list[Chip]:
        """The chips with these ids, in the order given; unknown ids raise :class:`ChipIndexError`."""
        found = self._rows_by_id(chip_ids, _stored(self._require_table(), METADATA_COLUMNS))
        by_id = {kw["chip_id"]: Chip(**kw) for kw in _chip_fields(found)}
        return [by_id[chip_id] for chip_id in chip_ids]

    def vectors(self, chip_ids: Sequence[str]) -> np.ndarray:
        """float32 ``(N, D)`` embeddings of these chips, in the order given."""
        found = self._rows_by_id(chip_ids, ["chip_id", "vector"])
        position = {chip_id: i for i, chip_id in enumerate(found["chip_id"].to_pylist())}
        matrix = found["vector"].combine_chunks().flatten().to_numpy().reshape(found.num_rows, -1)
        return matrix[[position[chip_id] for chip_id in chip_ids]].astype(np.float32)

    def sample_vectors(self, n: int, seed: int = 0, exclude: Sequence[str] = ()) -> np.ndarray:
        """float32 ``(<= n, D)`` embeddings of chips drawn at random (seeded), leaving out ``exclude``."""
        table = self._require_table()
        rows = table.count_rows()
        take = np.random.default_rng(seed).choice(rows, size=min(n + len(exclude), rows), replace=False)
        found = table.to_lance().take(np.sort(take).tolist(), columns=["chip_id", "vector"])
        keep = ~np.isin(np.asarray(found["chip_id"].to_pylist(), dtype=object), list(exclude))
        matrix = found["vector"].combine_chunks().flatten().to_numpy().reshape(found.num_rows, -1)
        return matrix[keep][:n].astype(np.float32)

    def scan(
        self, where: str | None = None, batch_size: int = SCAN_BATCH
    ) -> Iterator[tuple[list[Chip], np.ndarray]]:
        """Every chip matching the SQL ``where`` (all when None) and its float32 vector ``(N, D)``, read
        ``batch_size`` rows at a time. Thumbnails are not read (``b""``): a whole library's would not fit."""
        table = self._require_table()
        columns = [name for name in _stored(table, METADATA_COLUMNS) if name != "thumbnail"]
        for batch in table.to_lance().to_batches(
            columns=[*columns, "vector"], filter=where, batch_size=batch_size
        ):
            if not batch.num_rows:
                continue
            rows = pa.Table.from_batches([batch])
            vectors = rows["vector"].combine_chunks().flatten().to_numpy().reshape(rows.num_rows, -1)
            metadata = rows.select(columns).append_column(
                "thumbnail", pa.array([b""] * rows.num_rows, pa.binary())
            )
            yield [Chip(**kw) for kw in _chip_fields(metadata)], vectors.astype(np.float32)

    def _rows_by_id(self, chip_ids: Sequence[str], columns: list[str]) -> pa.Table:
        table = self._require_table()
        if not chip_ids:
            return table.schema.empty_table().select(columns)
        found = (
            table.search()
            .where(f"chip_id IN ({_sql_list(chip_ids)})")
            .select(columns)
            .limit(len(chip_ids))
            .to_arrow()
        )
        missing = set(chip_ids) - set(found["chip_id"].to_pylist())
        if missing:
            raise ChipIndexError(f"chip ids not in {self.uri}: {sorted(missing)[:5]}")
        return found

    def chips_per_scene(self) -> dict[str, int]:
        """How many chips each scene id has in the index (one read of the ``scene_id`` column)."""
        table = self.table
        rows = table.count_rows() if table is not None else 0
        if table is None or not rows:
            return {}
        ids = table.search().select(["scene_id"]).limit(rows).to_arrow()["scene_id"]
        return {count["values"]: count["counts"] for count in pc.value_counts(ids).to_pylist()}

    def scene_paths(self, scene_ids: Sequence[str]) -> dict[str, str]:
        """The stored path of each of ``scene_ids`` that the index holds (one filtered read of two columns)."""
        table = self.table
        if table is None or not scene_ids:
            return {}
        rows = table.to_lance().to_table(
            columns=["scene_id", "scene_path"], filter=f"scene_id IN ({_sql_list(scene_ids)})"
        )
        return dict(zip(rows["scene_id"].to_pylist(), rows["scene_path"].to_pylist(), strict=True))

    def scenes_added_since(self, when: datetime) -> list[str]:
        """Ids of the scenes with chips now that had none at ``when`` (the table's last version before then,
        read by Lance's time travel): the scenes ingested since, sorted. Every scene when the table is newer."""
        table = self._require_table()
        dataset = table.to_lance()
        # Lance stamps versions in naive local time
        local = when.astimezone().replace(tzinfo=None) if when.tzinfo is not None else when
        before = [
            v["version"] for v in dataset.versions() if isinstance(v["timestamp"], datetime) and v["timestamp"] <= local
        ]
        now = set(pc.unique(dataset.to_table(columns=["scene_id"])["scene_id"]).to_pylist())
        if not before:
            return sorted(now)
        then = dataset.checkout_version(max(before)).to_table(columns=["scene_id"])["scene_id"]
        return sorted(now - set(pc.unique(then).to_pylist()))

    def scenes(self) -> list[SceneSummary]:
        """Every scene in the index with its chip count, CRS, GSD and extent, sorted by path."""
        table = self.table
        rows_in_table = table.count_rows() if table is not None else 0
        if table is None or not rows_in_table:
            return []
        columns = [
            "scene_id",
            "scene_path",
            "crs",
            "gsd_m",
            "level",
            "minx",
            "miny",
            "maxx",
            "maxy",
            "pixel_space",
        ]
        rows = table.search().select(columns).limit(rows_in_table).to_arrow()
        rows = rows.append_column(
            "source_gsd", pc.divide(pc.cast(rows["gsd_m"], pa.float64()), rows["level"])
        )
        grouped = rows.group_by("scene_id", use_threads=False).aggregate(
            [
                ("scene_id", "count"),
                ("scene_path", "first"),
                ("crs", "first"),
                ("source_gsd", "min"),
                ("minx", "min"),
                ("miny", "min"),
                ("maxx", "max"),
                ("maxy", "max"),
                ("pixel_space", "first"),
                ("level", "distinct"),
            ]
        )
        summaries = [
            SceneSummary(
                scene_id=g["scene_id"],
                scene_path=g["scene_path_first"],
                chips=g["scene_id_count"],
                crs=g["crs_first"],
                gsd_m=g["source_gsd_min"],
                extent=(g["minx_min"], g["miny_min"], g["maxx_max"], g["maxy_max"]),
                pixel_space=g["pixel_space_first"],
                levels=tuple(sorted(g["level_distinct"])),
            )
            for g in grouped.to_pylist()
        ]
        return sorted(summaries, key=lambda s: s.scene_path)

    def stored_windows(self, scene_id: str) -> pa.Table:
        """``chip_id``, ``level``, ``col_off``, ``row_off``, ``width`` and ``height`` of a scene's chips."""
        table = self._require_table()
        where = f"scene_id = {sql_str(scene_id)}"
        columns = ["chip_id", "level", "col_off", "row_off", "width", "height"]
        return table.search().where(where).select(columns).limit(max(1, table.count_rows(where))).to_arrow()

    def delete_chips(self, chip_ids: Sequence[str]) -> int:
        """Delete these chips in one commit (no commit if none is in the index); returns how many were deleted."""
        return self._delete_where("chip_id", chip_ids)

    def build_ann(self) -> str:
        """Build or refresh the vector index as ``self.ann`` says (see :func:`tiles.index.ann.ensure_ann_index`)."""
        table = self.table
        return "none" if table is None else ensure_ann_index(table, self.ann)

    def drop(self) -> None:
        """Remove the whole chips table (every scene must then be ingested again)."""
        if self.table is not None:
            self.db.drop_table(self.table_name)
            self._table = None

    def delete_scene(self, scene_id: str) -> int:
        """Delete a scene's chips; returns how many were deleted."""
        self._require_table()
        return self.delete_scenes([scene_id])

    def delete_scenes(self, scene_ids: Sequence[str]) -> int:
        """Delete these scenes' chips in one commit (no commit if they have none); returns how many."""
        return self._delete_where("scene_id", scene_ids)

    def _delete_where(self, column: str, values: Sequence[str]) -> int:
        """Delete the rows whose ``column`` is one of ``values``, in one commit (none if no row matches)."""
        table = self.table
        if table is None or not values:
            return 0
        where = f"{column} IN ({_sql_list(values)})"
        if not table.count_rows(where):
            return 0
        # DeleteResult.num_deleted_rows exists at run time; LanceDB's stub lacks it
        return table.delete(where).num_deleted_rows  # type: ignore[attr-defined]


def model_table_name(model_id: str) -> str:
    """The chip table of ``model_id`` beside a library's first one: ``chips-<model id>`` (in LanceDB's characters)."""
    return f"{TABLE_NAME}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', model_id)}"


def index_for_model(
    db: str | Path, model_id: str, storage_options: Mapping[str, str] | None = None
) -> ChipIndex:
    """The chip index of ``model_id``'s vectors in the library at ``db``: the ``chips`` table while it is empty
    or holds them, else a table of the model's own beside it, so two models' vectors of one library coexist."""
    first = ChipIndex(db, storage_options=storage_options)
    if first.model_id in (None, model_id):
        return first
    return ChipIndex(db, table_name=model_table_name(model_id), storage_options=storage_options)


def library_models(db: str | Path, storage_options: Mapping[str, str] | None = None) -> list[str]:
    """The models whose vectors the library at ``db`` holds (the ``chips`` table's first, then the others')."""
    first = ChipIndex(db, storage_options=storage_options)
    names: list[str] = []
    token: str | None = None
    while True:
        page = first.db.list_tables(page_token=token)
        names += [name for name in page.tables if name.startswith(f"{TABLE_NAME}-")]
        token = page.page_token
        if not token:
            break
    indexes = [first, *(ChipIndex(db, table_name=name, storage_options=storage_options) for name in sorted(names))]
    return [model for model in (index.model_id for index in indexes) if model is not None]


def _model_id(table: Table) -> str | None:
    """The ``model_id`` of the table's first row (a table holds one model), None when it is empty."""
    rows = table.search().select(["model_id"]).limit(1).to_arrow()
    return rows["model_id"][0].as_py() if rows.num_rows else None


def _max_chip_size(table: Table) -> tuple[float, float] | None:
    """(width, height) in degrees of the table's largest georeferenced chip, None without any."""
    rows = (
        table.search()
        .where("NOT pixel_space")
        .select(["minx", "miny", "maxx", "maxy"])
        .limit(max(1, table.count_rows()))
        .to_arrow()
    )
    if not rows.num_rows:
        return None
    width = pc.max(pc.subtract(rows["maxx"], rows["minx"])).as_py()
    height = pc.max(pc.subtract(rows["maxy"], rows["miny"])).as_py()
    return (width, height)


def _store_error(exc: Exception) -> str:
    """The object store's own error code and message in a Lance error, else its first line."""
    text = str(exc)
    code, message = re.search(r"<Code>(.*?)</Code>", text), re.search(r"<Message>(.*?)</Message>", text)
    if code and message:
        return f"{code.group(1)}: {message.group(1)}"
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _stored(table: Table, columns: Sequence[str]) -> list[str]:
    """The ``columns`` the table has (a library made before :data:`ITEM_FIELDS` lacks those until written)."""
    names = set(table.schema.names)
    return [name for name in columns if name in names]


def _chip_fields(rows: pa.Table) -> list[dict[str, Any]]:
    """Keyword arguments of :class:`Chip` for each row of ``rows`` (which holds ``METADATA_COLUMNS``, or all
    but :data:`ITEM_FIELDS`)."""
    footprints = shapely.from_wkb(rows["footprint"].to_numpy(zero_copy_only=False)) if rows.num_rows else []
    names = set(rows.schema.names)
    chip_fields = [f.name for f in fields(Chip) if f.name not in ("bbox", "footprint") and f.name in names]
    return [
        {
            **{name: row[name] for name in chip_fields},
            "footprint": footprint,
            "bbox": (row["minx"], row["miny"], row["maxx"], row["maxy"]),
        }
        for row, footprint in zip(rows.to_pylist(), footprints, strict=True)
    ]
