"""Which scenes an ingest has finished, so a rerun after a crash skips them without reading or hashing them.

The log is a small LanceDB table (:data:`LOG_TABLE`) next to ``chips``, one row per scene path. A row is
written only after the scene's chips are committed (``ChipIndex.replace_scenes``), so a crash between the two
makes the rerun redo those scenes (idempotently), never skip a scene whose chips are missing. A logged scene
counts as done only while its file is unchanged (size, mtime), it was cut with the same chip settings and
model, and the index still holds exactly the number of chips logged (a deleted scene is ingested again).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
from lancedb.table import Table

from tiles.index.chip_index import ChipIndex
from tiles.index.schema import TABLE_NAME

LOG_TABLE = "ingested_scenes"
LOG_SCHEMA = pa.schema(
    [
        pa.field("scene_path", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("settings", pa.string()),
        pa.field("model_id", pa.string()),
        pa.field("scene_id", pa.string()),
        pa.field("chips", pa.int64()),
    ]
)


@dataclass(frozen=True)
class SceneStamp:
    """What must be unchanged for a logged scene to count as done."""

    scene_path: str
    size: int
    mtime_ns: int
    #: the chip settings the scene was cut with (chip size, overlap, levels, ...), as one string
    settings: str
    model_id: str

    @classmethod
    def of(cls, path: Path, settings: str, model_id: str) -> SceneStamp:
        """The stamp of the file at ``path`` now."""
        stat = os.stat(path)
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns, settings, model_id)


class SceneLog:
    """The finished-scenes log of the chip index ``index``."""

    def __init__(self, index: ChipIndex) -> None:
        self.index = index
        self._db = index.db
        #: one log per chip table: a model's own table (``chips-<model id>``) has ``ingested_scenes-<model id>``
        self.name = LOG_TABLE + index.table_name.removeprefix(TABLE_NAME)
        try:
            self._table: Table | None = self._db.open_table(self.name)
        except ValueError:  # no log yet
            self._table = None
        rows = self._table.to_arrow().to_pylist() if self._table is not None else []
        self._logged = {row["scene_path"]: row for row in rows}

    def finished(
        self, stamps: Sequence[SceneStamp], scene_ids: Sequence[str | None] | None = None
    ) -> list[bool]:
        """Whether each scene was finished with its stamp and its chips are all still in the index.

        ``scene_ids`` (where known before reading, as for remote files; None where not) must match the logged
        ones too. The index's chips per scene are read once for all the stamps (not a count per scene: a rerun
        over thousands of files would scan the table thousands of times), and only if some stamp is logged.
        """
        rows = [self._logged.get(stamp.scene_path) for stamp in stamps]
        ids = scene_ids if scene_ids is not None else [None] * len(stamps)
        logged = [
            row is not None
            and all(row[key] == value for key, value in asdict(stamp).items())
            and scene_id in (None, row["scene_id"])
            for stamp, row, scene_id in zip(stamps, rows, ids, strict=True)
        ]
        if not any(logged):
            return logged
        chips = self.index.chips_per_scene()
        return [
            is_logged and row is not None and chips.get(row["scene_id"], 0) == row["chips"]
            for is_logged, row in zip(logged, rows, strict=True)
        ]

    def mark_done(self, scenes: Sequence[tuple[SceneStamp, str, int]]) -> None:
        """Record in one commit that these (stamp, scene_id, chips) scenes' rows are committed."""
        if not scenes:
            return
        logged = [
            {**asdict(stamp), "scene_id": scene_id, "chips": chips} for stamp, scene_id, chips in scenes
        ]
        rows = pa.Table.from_pylist(logged, schema=LOG_SCHEMA)
        if self._table is None:
            # another ingest into this library may create it first: then this opens that one
            self._table = self._db.create_table(self.name, schema=LOG_SCHEMA, exist_ok=True)
        self._table.merge_insert("scene_path").when_matched_update_all().when_not_matched_insert_all().execute(rows)
        self._logged.update((row["scene_path"], row) for row in logged)

    def forget_chips(self, removed: Mapping[str, int]) -> None:
        """Record that ``removed[scene_id]`` chips of these finished scenes were deleted on purpose (pruned), so a
        rerun does not take the smaller count for a crash and ingest them again."""
        changed = [
            {**row, "chips": row["chips"] - removed[row["scene_id"]]}
            for row in self._logged.values()
            if removed.get(row["scene_id"])
        ]
        if not changed or self._table is None:
            return
        rows = pa.Table.from_pylist(changed, schema=LOG_SCHEMA)
        self._table.merge_insert("scene_path").when_matched_update_all().execute(rows)
        self._logged.update((row["scene_path"], row) for row in changed)
