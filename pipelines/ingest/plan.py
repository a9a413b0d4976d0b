"""Planning an ingest, shared by both engines: which files the paths name, which scenes still need ingesting.

:func:`expand_paths` turns files, folders and globs into raster files (:func:`expand_sources` also URLs, and globs
of ``s3://`` / ``gs://`` URLs by listing the bucket); :func:`plan_scenes` skips the files the
scene log (:mod:`tiles.index.scene_log`) says are finished with the same settings and model, and gives each
other file a :class:`~pipelines.ingest.read.SceneJob`. :class:`IngestSummary` is what either engine reports.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from shapely.geometry.base import BaseGeometry

from pipelines.ingest.read import SceneJob
from tiles.chips import SkipReason
from tiles.errors import RasterReadError
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex
from tiles.index.scene_log import SceneLog, SceneStamp
from tiles.index.schema import SceneItem, remote_scene_id, scene_id_for
from tiles.reader import RASTER_SUFFIXES
from tiles.remote import GLOB_CHARS, OBJECT_STORES, is_remote, list_objects, stat_remote

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


def expand_sources(paths: Iterable[str | Path]) -> tuple[list[Path | str], list[tuple[str, str]]]:
    """:func:`expand_paths`, with remote rasters' URLs (:func:`tiles.remote.is_remote`) kept as they are and
    globs of ``s3://`` / ``gs://`` URLs expanded to the rasters they match (:func:`tiles.remote.list_objects`),
    each once, in the order given. An ``http(s)://`` URL with a ``*`` is refused: a web server cannot be listed.
    """
    sources: dict[Path | str, None] = {}
    missing: list[tuple[str, str]] = []
    for raw in paths:
        url = str(raw)
        if not is_remote(url):
            files, not_found = expand_paths([raw])
            sources.update(dict.fromkeys(files))
            missing.extend(not_found)
        elif _is_url_glob(url):
            try:
                matches = list_objects(url)
            except RasterReadError as exc:
                missing.append((url, str(exc).removeprefix(f"{url}: ")))
                continue
            rasters = [m for m in matches if PurePosixPath(m).suffix.lower() in RASTER_SUFFIXES]
            if not rasters:
                missing.append((url, "no raster files found there"))
            sources.update(dict.fromkeys(rasters))
        else:
            sources[url] = None
    return list(sources), missing


def _is_url_glob(url: str) -> bool:
    """Whether a URL is a glob: any of :data:`GLOB_CHARS` in an object store's, a ``*`` in a web server's (where
    ``?`` starts the query)."""
    if url.partition("://")[0].lower() in OBJECT_STORES:
        return bool(GLOB_CHARS & set(url))
    return "*" in url


@dataclass(frozen=True)
class ScenePlan:
    """The scenes an ingest still has to do, the stamps to log them with, how many were done before, the
    files left out as copies of another file's content (path, path it is the same as), and the remote files
    whose server refused or could not be reached (URL, reason)."""

    jobs: list[SceneJob]
    stamps: list[SceneStamp]
    unchanged: int
    log: SceneLog
    duplicates: list[tuple[str, str]]
    failed: list[tuple[str, str]] = field(default_factory=list)


def chip_settings(spec: ChipSpec, thumb_px: int, aoi: BaseGeometry | None = None) -> str:
    """The settings a scene is cut with, as the one string the scene log compares (an AOI by its hash)."""
    settings = (
        f"chip_px={spec.chip_px} overlap_px={spec.overlap_px} levels={spec.levels} "
        f"min_valid={spec.min_valid} thumb_px={thumb_px}"
    )
    if aoi is not None:
        settings += f" aoi={hashlib.blake2b(aoi.wkb, digest_size=8).hexdigest()}"
    return settings


def plan_scenes(
    files: list[Path | str],
    index: ChipIndex,
    model_id: str,
    spec: ChipSpec,
    thumb_px: int,
    aoi: BaseGeometry | None = None,
    items: Mapping[str, SceneItem] | None = None,
) -> ScenePlan:
    """Skip the files the scene log says are finished with these settings, and files whose content is a scene
    of this run or of the library under another path that still exists (one scene, ingested once: the same
    chips twice in one commit would be an ambiguous merge); give the others a job each.

    Remote files are asked for their size and version (one HEAD request each, no bytes of the file); one the
    server refuses or that cannot be reached is left out and reported in :attr:`ScenePlan.failed`. ``items``
    gives the catalog item of a scene by its stored path (:attr:`SceneJob.scene_path`), kept with its chips.
    """
    log = SceneLog(index)
    settings = chip_settings(spec, thumb_px, aoi)
    known: list[tuple[Path | str, SceneStamp, str | None, int]] = []
    failed: list[tuple[str, str]] = []
    for source in files:
        if isinstance(source, Path):
            stamp = SceneStamp.of(source, settings, model_id)
            known.append((source, stamp, None, stamp.size))
            continue
        try:
            stat = stat_remote(source)
        except RasterReadError as exc:
            failed.append((source, str(exc).removeprefix(f"{source}: ")))
            continue
        stamp = SceneStamp(source, stat.size, stat.mtime_ns, settings, model_id)
        known.append((source, stamp, remote_scene_id(stat.url, stat.size, stat.etag, stat.mtime_ns), stat.size))
    done = log.finished([stamp for _, stamp, _, _ in known], [scene_id for _, _, scene_id, _ in known])
    todo = [
        (source, stamp, scene_id or scene_id_for(Path(source)), size)
        for (source, stamp, scene_id, size), finished in zip(known, done, strict=True)
        if not finished
    ]
    stored = index.scene_paths([scene_id for _, _, scene_id, _ in todo])
    first: dict[str, Path | str] = {}
    jobs: list[SceneJob] = []
    stamps: list[SceneStamp] = []
    duplicates: list[tuple[str, str]] = []
    for source, stamp, scene_id, size in todo:
        earlier = first.get(scene_id)
        elsewhere = stored.get(scene_id)
        if earlier is not None:
            duplicates.append((str(source), str(earlier)))
        elif elsewhere is not None and _another_file(elsewhere, source):
            duplicates.append((str(source), elsewhere))
        else:
            first[scene_id] = source
            job = SceneJob(len(jobs), source, scene_id, size)
            jobs.append(replace(job, item=(items or {}).get(job.scene_path)))
            stamps.append(stamp)
    unchanged = len(known) - len(jobs) - len(duplicates)
    return ScenePlan(jobs, stamps, unchanged, log, duplicates, failed)


def _another_file(stored: str, source: Path | str) -> bool:
    """Whether a scene's stored path names another local file than ``source`` that still exists (remote ids
    hold their URL, so a remote scene is never stored under another path)."""
    if isinstance(source, str) or is_remote(stored):
        return False
    return Path(stored).resolve() != source.resolve() and Path(stored).exists()
