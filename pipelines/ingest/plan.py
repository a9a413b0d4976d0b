"""Planning an ingest, shared by both engines: which files the paths name, which scenes still need ingesting.

:func:`expand_paths` turns files, folders and globs into raster files; :func:`plan_scenes` skips the files the
scene log (:mod:`tiles.index.scene_log`) says are finished with the same settings and model, and gives each
other file a :class:`~pipelines.ingest.read.SceneJob`. :class:`IngestSummary` is what either engine reports.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.ingest.read import SceneJob
from tiles.chips import SkipReason
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex
from tiles.index.scene_log import SceneLog, SceneStamp
from tiles.index.schema import scene_id_for
from tiles.reader import RASTER_SUFFIXES

#: characters that make a path a glob pattern
GLOB_CHARS = frozenset("*?[")
#: how :meth:`IngestSummary.skipped_text` names each :class:`tiles.chips.SkipReason`
SKIP_WORDS: dict[str, str] = {
    SkipReason.NODATA: "nodata",
    SkipReason.FILL: "black/white fill",
    SkipReason.FLAT: "flat",
}


@dataclass
class IngestSummary:
    """What an ingest did."""

    scenes: int = 0
    chips: int = 0
    #: windows left out as empty (:func:`tiles.chips.empty_reason`), in all ...
    skipped: int = 0
    #: ... and by reason (:class:`tiles.chips.SkipReason`: ``nodata``, ``fill``, ``flat``)
    skipped_by: dict[str, int] = field(default_factory=dict)
    #: (path, reason) of every file that could not be ingested
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: scenes skipped because an earlier run finished them (same file, settings and model)
    unchanged: int = 0
    #: (path, path of the same content) of every file skipped as a copy of a scene of this run or of the library
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    #: what the ANN policy did after the writes (``none``, ``built``, ``updated``; see tiles.index.ann)
    ann_index: str = "none"
    seconds: float = 0.0

    def add_skipped(self, counts: Mapping[str, int]) -> None:
        """Count more empty windows, ``counts`` by reason."""
        for reason, windows in counts.items():
            self.skipped_by[str(reason)] = self.skipped_by.get(str(reason), 0) + windows
            self.skipped += windows

    def skipped_text(self) -> str:
        """``"12 skipped as empty: 9 black/white fill, 3 nodata"`` (``"0 skipped as empty"``)."""
        reasons = skip_reasons_text(self.skipped_by)
        return f"{self.skipped} skipped as empty" + (f": {reasons}" if reasons else "")

    @property
    def chips_per_s(self) -> float:
        """Chips written per second of wall time."""
        return self.chips / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {
            "scenes": self.scenes,
            "chips": self.chips,
            "skipped": self.skipped,
            "skipped_by": dict(sorted(self.skipped_by.items())),
            "unchanged": self.unchanged,
            "duplicates": [{"path": path, "same_as": same} for path, same in self.duplicates],
            "failed": [{"path": path, "reason": reason} for path, reason in self.failed],
            "ann_index": self.ann_index,
            "seconds": round(self.seconds, 3),
            "chips_per_s": round(self.chips_per_s, 2),
        }


def skip_reasons_text(counts: Mapping[str, int]) -> str:
    """``{"fill": 9, "nodata": 3}`` -> ``"9 black/white fill, 3 nodata"`` (reasons in name order)."""
    return ", ".join(f"{n} {SKIP_WORDS.get(reason, reason)}" for reason, n in sorted(counts.items()) if n)


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named, found in folders (recursively) or matched by globs; (path, reason) of names matching none.

    Folders and globs contribute only files with a raster ending (:data:`tiles.reader.RASTER_SUFFIXES`); files
    named directly are taken as they are. Each file is listed once, in the order found.
    """
    found: dict[Path, None] = {}
    missing: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            found[path] = None
        elif path.is_dir() or GLOB_CHARS & set(str(raw)):
            matches = (
                sorted(path.rglob("*"))
                if path.is_dir()
                else sorted(map(Path, glob.glob(str(path), recursive=True)))
            )
            rasters = [m for m in matches if m.is_file() and m.suffix.lower() in RASTER_SUFFIXES]
            if not rasters:
                missing.append((str(raw), "no raster files found there"))
            found.update(dict.fromkeys(rasters))
        else:
            missing.append((str(raw), "no such file or folder"))
    return list(found), missing


@dataclass(frozen=True)
class ScenePlan:
    """The scenes an ingest still has to do, the stamps to log them with, how many were done before, and the
    files left out as copies of another file's content (path, path it is the same as)."""

    jobs: list[SceneJob]
    stamps: list[SceneStamp]
    unchanged: int
    log: SceneLog
    duplicates: list[tuple[str, str]]


def plan_scenes(
    files: list[Path], index: ChipIndex, model_id: str, spec: ChipSpec, thumb_px: int
) -> ScenePlan:
    """Skip the files the scene log says are finished with these settings, and files whose content is a scene
    of this run or of the library under another path that still exists (one scene, ingested once: the same
    chips twice in one commit would be an ambiguous merge); give the others a job each."""
    log = SceneLog(index)
    settings = (
        f"chip_px={spec.chip_px} overlap_px={spec.overlap_px} levels={spec.levels} "
        f"min_valid={spec.min_valid} thumb_px={thumb_px}"
    )
    jobs: list[SceneJob] = []
    stamps: list[SceneStamp] = []
    all_stamps = [SceneStamp.of(path, settings, model_id) for path in files]
    todo = [
        (path, stamp, scene_id_for(path))
        for path, stamp, done in zip(files, all_stamps, log.finished(all_stamps), strict=True)
        if not done
    ]
    stored = index.scene_paths([scene_id for _, _, scene_id in todo])
    first: dict[str, Path] = {}
    duplicates: list[tuple[str, str]] = []
    for path, stamp, scene_id in todo:
        known = first.get(scene_id)
        elsewhere = stored.get(scene_id)
        if known is not None:
            duplicates.append((str(path), str(known)))
        elif elsewhere is not None and Path(elsewhere).resolve() != path.resolve() and Path(elsewhere).exists():
            duplicates.append((str(path), elsewhere))
        else:
            first[scene_id] = path
            jobs.append(SceneJob(len(jobs), path, scene_id))
            stamps.append(stamp)
    return ScenePlan(jobs, stamps, len(files) - len(jobs) - len(duplicates), log, duplicates)
