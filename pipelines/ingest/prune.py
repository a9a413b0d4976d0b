"""Chips already in a library that ingest now leaves out as empty: find them, and delete them.

A library ingested before the empty-chip rule (:func:`tiles.chips.empty_reason`) holds the black borders of
scenes without a nodata flag, and flat chips, which come back as hits for any query. :func:`prune_empty_chips`
reads each scene's stored windows again from its file, exactly as ingest read them, and puts them through the
same rule (:func:`tiles.chips.iter_chips` on those windows); the chips the rule skips are deleted in one
commit. A scene whose file is gone, or has changed since it was ingested (its content id differs), is not
checked. The scene log still counts the deleted chips, so a later ``ingest`` of a pruned scene reads it again
(and, by the same rule, writes the same chips).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remoteclip.errors import InputError
from tiles.chips import SkipReason, iter_chips
from tiles.errors import RasterReadError
from tiles.grid import ChipSpec, ChipWindow
from tiles.index.chip_index import ChipIndex
from tiles.index.scene_log import SceneLog
from tiles.index.schema import scene_id_for
from tiles.reader import gdal_env, open_scene


@dataclass(frozen=True)
class ScenePrune:
    """One scene of the library: its chips, the empty ones by reason, or why it was not checked."""

    scene_path: str
    chips: int
    empty: dict[str, int] = field(default_factory=dict)
    #: why the scene could not be checked (file missing, changed or unreadable); None when it was
    unchecked: str | None = None

    @property
    def empty_chips(self) -> int:
        """How many of its chips are empty."""
        return sum(self.empty.values())


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune_empty_chips` found, scene by scene, and how many chips it deleted (0 in a dry run)."""

    scenes: list[ScenePrune]
    deleted: int
    dry_run: bool

    @property
    def empty_chips(self) -> int:
        """Empty chips found in all scenes."""
        return sum(scene.empty_chips for scene in self.scenes)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {
            "dry_run": self.dry_run,
            "empty_chips": self.empty_chips,
            "deleted": self.deleted,
            "scenes": [
                {"scene_path": s.scene_path, "chips": s.chips, "empty": dict(sorted(s.empty.items())),
                 "unchecked": s.unchecked}
                for s in self.scenes
            ],
        }


def prune_empty_chips(
    index: ChipIndex, min_valid: float = ChipSpec().min_valid, *, dry_run: bool = False
) -> PruneReport:
    """Find the chips of ``index`` that ingest with ``min_valid`` would skip as empty; delete them unless
    ``dry_run``."""
    scenes: list[ScenePrune] = []
    empty_ids: list[str] = []
    removed: dict[str, int] = {}
    with gdal_env():
        for summary in index.scenes():
            stored = index.stored_windows(summary.scene_id).to_pylist()
            try:
                found = _empty_chips(Path(summary.scene_path), summary.scene_id, stored, min_valid)
            except (OSError, InputError) as exc:  # RasterReadError is an OSError
                why = str(exc).removeprefix(f"{summary.scene_path}: ")
                scenes.append(ScenePrune(summary.scene_path, summary.chips, unchecked=why))
                continue
            empty_ids += list(found)
            removed[summary.scene_id] = len(found)
            reasons = Counter(str(reason) for reason in found.values())
            scenes.append(ScenePrune(summary.scene_path, summary.chips, dict(reasons)))
    deleted = 0 if dry_run else index.delete_chips(empty_ids)
    if deleted:
        SceneLog(index).forget_chips(removed)
    return PruneReport(scenes, deleted, dry_run)


def _empty_chips(
    path: Path, scene_id: str, stored: list[dict[str, Any]], min_valid: float
) -> dict[str, SkipReason]:
    """chip id -> reason of the stored chips of one scene that the empty-chip rule skips.

    The chip size the scene was cut with is not stored, and need not be: a level-L window is read at 1/L of
    its source pixels whatever the chip size, so any chip size at least as large as every window's side / L
    (here the least such, at least 8) reads each window exactly as ingest did.
    """
    if not path.is_file():
        raise RasterReadError(f"{path}: no such file")
    if scene_id_for(path) != scene_id:
        raise RasterReadError(f"{path}: changed since it was ingested")
    chip_px = max(8, max(math.ceil(max(row["width"], row["height"]) / row["level"]) for row in stored))
    windows = {
        ChipWindow(
            level=row["level"], col_off=row["col_off"], row_off=row["row_off"], width=row["width"],
            height=row["height"], span_px=row["level"] * chip_px,
        ): row["chip_id"]
        for row in stored
    }
    empty: dict[str, SkipReason] = {}
    spec = ChipSpec(chip_px=chip_px, min_valid=min_valid)
    with open_scene(path) as scene:
        chips = iter_chips(scene, spec, windows=list(windows), on_skip=lambda w, r: empty.update({windows[w]: r}))
        for _kept in chips:  # what is wanted is the windows it skips
            pass
    return empty
