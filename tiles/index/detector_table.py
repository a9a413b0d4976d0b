"""Saved detectors: a LanceDB table ``detectors`` beside ``chips``, one row per named detector.

A detector is a probe on the chip embeddings (``P(right) = sigmoid(scale * score(chip) + bias)``, the score
its cosine with ``direction`` plus ``exemplar_weight`` times its best cosine with an exemplar, see
:mod:`pipelines.services.refine`) kept with what made it: the query, the chips marked right and wrong, the
model whose embeddings it reads, and the probability its detections start at. Names are unique: saving a name
again replaces that detector. The ``direction`` column (and each exemplar) is a fixed-size list as long as the
library's vectors; a table left empty by deletes takes the next detector's length. A table saved before
detectors had exemplars gains their columns (empty for its detectors: their score is the direction's cosine).
"""

from __future__ import annotations

import builtins  # the method DetectorTable.list shadows list in the class body
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from lancedb.table import Table

from tiles.index.chip_index import ChipIndex, sql_str
from tiles.index.errors import ChipIndexError
from tiles.index.schema import DATA_STORAGE_VERSION

DETECTORS_TABLE = "detectors"
#: the columns a listing reads: every one but the vectors (``direction``, ``exemplars``) and the probe's numbers
SUMMARY_COLUMNS = ("name", "query", "positive_ids", "negative_ids", "threshold", "model_id", "created_at")


def detectors_schema(dim: int) -> pa.Schema:
    """The ``detectors`` table's schema for ``dim``-dimensional embeddings."""
    return pa.schema(
        [
            pa.field("name", pa.string(), nullable=False),
            pa.field("query", pa.string()),
            pa.field("positive_ids", pa.list_(pa.string())),
            pa.field("negative_ids", pa.list_(pa.string())),
            pa.field("direction", pa.list_(pa.float32(), dim)),
            pa.field("scale", pa.float64()),
            pa.field("bias", pa.float64()),
            pa.field("threshold", pa.float64()),
            pa.field("model_id", pa.string()),
            pa.field("created_at", pa.string()),
            *exemplar_fields(dim),
        ]
    )


def exemplar_fields(dim: int) -> list[pa.Field]:
    """The columns of a detector's exemplars (``dim``-d unit vectors) and of their weight in its score."""
    return [
        pa.field("exemplars", pa.list_(pa.list_(pa.float32(), dim))),
        pa.field("exemplar_weight", pa.float64()),
    ]


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool
class StoredDetector:
    """One row of the ``detectors`` table."""

    name: str
    query: str
    positive_ids: tuple[str, ...]
    negative_ids: tuple[str, ...]
    #: unit vector (D,) in the model's embedding space
    direction: np.ndarray
    scale: float
    bias: float
    #: the probability (0..1) a chip's detection starts at
    threshold: float
    model_id: str
    #: when it was made (ISO 8601, UTC)
    created_at: str
    #: unit vectors (P, D) of chips marked right, and their weight in the score (0: none)
    exemplars: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    exemplar_weight: float = 0.0


@dataclass(frozen=True)
class DetectorSummary:
    """A saved detector as :meth:`DetectorTable.list` shows it: what it finds, from how many marks."""

    name: str
    query: str
    model_id: str
    positives: int
    negatives: int
    threshold: float
    created_at: str


class DetectorTable:
    """The ``detectors`` table in the library of ``index`` (a :class:`ChipIndex`, or its folder)."""

    def __init__(self, index: ChipIndex | str | Path) -> None:
        self.index = index if isinstance(index, ChipIndex) else ChipIndex(index)
        self._table: Table | None = None

    @property
    def table(self) -> Table | None:
        """The LanceDB table, or None before the first detector is saved."""
        if self._table is None:
            try:
                self._table = self.index.db.open_table(DETECTORS_TABLE)
            except ValueError:  # not created yet
                return None
            except OSError as exc:
                raise ChipIndexError(
                    f"cannot open the {DETECTORS_TABLE} table in {self.index.uri}: {exc}"
                ) from exc
        return self._table

    def _table_for(self, dim: int) -> Table:
        """The table, created for ``dim``-d directions, or made again for them when it holds no detector."""
        table = self.table
        if table is not None:
            stored = table.schema.field("direction").type.list_size
            if stored == dim:
                if "exemplars" not in table.schema.names:  # saved before detectors had exemplars
                    table.add_columns(exemplar_fields(dim))
                return table
            if table.count_rows():
                raise ChipIndexError(
                    f"{self.index.uri} keeps detectors of {stored}-d embeddings, this one is {dim}-d (another "
                    "model); delete those (`remoteclip-explorer detector delete NAME`) or use another --db"
                )
        try:
            self._table = self.index.db.create_table(
                DETECTORS_TABLE,
                schema=detectors_schema(dim),
                data_storage_version=DATA_STORAGE_VERSION,
                # a new table (or the one another process just made), or the empty one made again
                mode="create" if table is None else "overwrite",
                exist_ok=table is None,
            )
        except (OSError, ValueError) as exc:
            raise ChipIndexError(
                f"cannot create the {DETECTORS_TABLE} table in {self.index.uri}: {exc}"
            ) from exc
        return self._table

    def save(self, detector: StoredDetector) -> None:
        """Store ``detector``, replacing any detector of the same name (one commit)."""
        direction = np.asarray(detector.direction, dtype=np.float32).reshape(-1)
        table = self._table_for(direction.shape[0])
        row: dict[str, Any] = {f.name: getattr(detector, f.name) for f in fields(StoredDetector)}
        row.update(
            positive_ids=list(detector.positive_ids),
            negative_ids=list(detector.negative_ids),
            direction=direction.tolist(),
            exemplars=np.asarray(detector.exemplars, dtype=np.float32).reshape(-1, direction.shape[0]).tolist(),
        )
        data = pa.Table.from_pylist([row], schema=table.schema)
        try:
            table.merge_insert("name").when_matched_update_all().when_not_matched_insert_all().execute(data)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ChipIndexError(
                f"cannot save detector {detector.name!r} in {self.index.uri}: {exc}"
            ) from exc

    def list(self) -> builtins.list[DetectorSummary]:
        """Every saved detector, by name."""
        rows = self._rows(None, list(SUMMARY_COLUMNS))
        return sorted(
            (
                DetectorSummary(
                    name=r["name"],
                    query=r["query"],
                    model_id=r["model_id"],
                    positives=len(r["positive_ids"]),
                    negatives=len(r["negative_ids"]),
                    threshold=r["threshold"],
                    created_at=r["created_at"],
                )
                for r in rows
            ),
            key=lambda s: s.name,
        )

    def get(self, name: str) -> StoredDetector:
        """The detector called ``name``; a missing one raises :class:`ChipIndexError` naming the saved ones."""
        table = self.table
        present = table.schema.names if table is not None else []
        rows = self._rows(f"name = {sql_str(name)}", [f.name for f in fields(StoredDetector) if f.name in present])
        if not rows:
            raise self._missing(name)
        row = rows[0]
        direction = np.asarray(row["direction"], dtype=np.float32)
        return StoredDetector(
            **{
                **row,
                "positive_ids": tuple(row["positive_ids"]),
                "negative_ids": tuple(row["negative_ids"]),
                "direction": direction,
                "exemplars": np.asarray(row.get("exemplars") or [], dtype=np.float32).reshape(-1, len(direction)),
                "exemplar_weight": float(row.get("exemplar_weight") or 0.0),
            }
        )

    def delete(self, name: str) -> None:
        """Delete the detector called ``name`` (a missing one raises as :meth:`get` does)."""
        table = self.table
        where = f"name = {sql_str(name)}"
        if table is None or not table.count_rows(where):
            raise self._missing(name)
        try:
            table.delete(where)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ChipIndexError(f"cannot delete detector {name!r} in {self.index.uri}: {exc}") from exc

    def _missing(self, name: str) -> ChipIndexError:
        known = [s.name for s in self.list()]
        if not known:
            return ChipIndexError(
                f"no detector {name!r}: {self.index.uri} has none yet; save one with "
                "`remoteclip-explorer detector save NAME QUERY --positive CHIP_ID`"
            )
        return ChipIndexError(
            f"no detector {name!r} in {self.index.uri}; saved detectors: {', '.join(known)}"
        )

    def _rows(self, where: str | None, columns: builtins.list[str]) -> builtins.list[dict[str, Any]]:
        """The rows matching ``where`` (all when None), these columns only."""
        table = self.table
        if table is None:
            return []
        try:
            query = table.search().select(columns)
            if where is not None:
                query = query.where(where, prefilter=True)
            return query.limit(None).to_arrow().to_pylist()
        except (OSError, ValueError, RuntimeError) as exc:
            raise ChipIndexError(
                f"cannot read the {DETECTORS_TABLE} table in {self.index.uri}: {exc}"
            ) from exc
