"""The local ingest engine: read, encode and write the planned scenes in this process, whole scenes a commit.

The scenes to do come from :mod:`pipelines.ingest.plan` (shared with the Ray engine). Reader processes open
them and cut them into chips (:func:`pipelines.ingest.read.scene_messages`) while this process encodes batches
of chips, so the model is kept busy; the queue between them is bounded, so memory stays flat however large the
scenes are. A scene's rows are written only after all its chips are encoded, in one ``merge_insert`` that also
removes chips the scene no longer has: a scene that fails half-way (or an ingest killed with ``kill -9``)
leaves the index as it was before that scene, and readers never see part of a scene. Small scenes (a folder of
UAV frames or image chips) are grouped, several whole scenes per commit (up to :data:`COMMIT_ROWS` rows or
:data:`COMMIT_SECONDS` of work), so a commit per scene does not slow them down, and a scene's last chips wait
for the next full encoder batch. Finished scenes are logged (:mod:`tiles.index.scene_log`), so running the
same command again skips them without reading them. A failing file is reported (one line naming it and the
reason) and the batch goes on.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Self

import numpy as np
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from pipelines.ingest.plan import IngestSummary, expand_sources, plan_scenes
from pipelines.ingest.read import DEFAULT_WORKERS, ChipChunk, SceneFailed, SceneOpened, read_scenes
from remoteclip.encode import encode_images
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex
from tiles.index.scene_log import SceneLog, SceneStamp
from tiles.index.schema import ChipRecord, SceneItem, rows_table
from tiles.reader import gdal_env
from tiles.thumbnail import THUMB_PX

#: finished scenes are written together until they hold this many rows (``commit_rows``) ...
COMMIT_ROWS = 2048
#: ... or the first of them has waited this many seconds
COMMIT_SECONDS = 2.0


def ingest_paths(
    paths: Iterable[str | Path],
    index: ChipIndex,
    model: LoadedModel,
    spec: ChipSpec = ChipSpec(),
    *,
    batch_size: int = 64,
    thumb_px: int = THUMB_PX,
    workers: int = DEFAULT_WORKERS,
    commit_rows: int = COMMIT_ROWS,
    progress: bool = True,
    on_failure: Callable[[str, str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    aoi: BaseGeometry | None = None,
    items: Mapping[str, SceneItem] | None = None,
) -> IngestSummary:
    """Ingest rasters (files, folders, globs, remote URLs) into ``index`` with ``model``.

    Args:
        paths: files, folders (searched recursively), glob patterns and remote rasters' URLs (``https://``,
        ``s3://``, ``gs://``; only the windows read are fetched). index: the chip index to write; it
        must be empty or hold vectors of ``model``. model: the loaded model that embeds the chips. spec: chip
        size, overlap, levels and the valid share below which a chip is skipped. batch_size: chips per encoder
        batch. thumb_px: longest side of the stored JPEG thumbnails. workers: reader processes (0: read in
        this process, between encoder batches). commit_rows: finished scenes are written together until they
        hold this many rows (1: a commit per scene; a scene is never split). progress: show a tqdm progress
        bar (chips) on stderr.
        on_failure: called with (path, reason) for each file that fails, as it fails. on_progress: called with
        (chips read, chips known so far) after each chip (e.g. for the app's progress bar). aoi: only the
        chips meeting this EPSG:4326 area are read and stored (a scene's other chips are removed). items: the
        catalog item of scenes by path or URL (:func:`pipelines.ingest.stac.stac_scenes`), kept with its chips.
    """
    if batch_size < 1:
        raise InputError(f"batch size {batch_size} must be at least 1")
    if workers < 0:
        raise InputError(f"workers {workers} must be 0 (read in this process) or more")
    if commit_rows < 1:
        raise InputError(f"rows per commit {commit_rows} must be at least 1")
    index.check_model(model.model_id)
    files, missing = expand_sources(paths)
    summary = IngestSummary()

    def fail(path: str, reason: str) -> None:
        summary.failed.append((path, reason))
        if on_failure:
            on_failure(path, reason)

    for path, reason in missing:
        fail(path, reason)
    start = time.perf_counter()
    plan = plan_scenes(files, index, model.model_id, spec, thumb_px, aoi, items)
    for path, reason in plan.failed:
        fail(path, reason)
    summary.unchanged = plan.unchanged
    summary.duplicates = plan.duplicates
    encoder = _SceneEncoder(model, batch_size)
    group = _CommitGroup(index, plan.log, model.model_id, commit_rows)

    def write_finished() -> None:
        for scene, records, vectors, skipped in encoder.finished():
            group.add(plan.jobs[scene].scene_id, plan.stamps[scene], records, vectors)
            summary.scenes += 1
            summary.chips += len(records)
            summary.add_skipped(skipped)
            if group.due():
                group.commit()

    with gdal_env(), _Progress(progress, on_progress) as tracker:
        for message in read_scenes(plan.jobs, spec, thumb_px, workers, aoi):
            job = plan.jobs[message.scene]
            if isinstance(message, SceneOpened):
                tracker.bar.set_description(job.name[:40])
                tracker.expect(message.windows)
            elif isinstance(message, ChipChunk):
                tracker.step(message.windows)
                encoder.add(message)
            elif isinstance(message, SceneFailed):
                encoder.drop(message.scene)
                fail(str(job.path), message.reason)
            else:
                encoder.end(message.scene)
            write_finished()
            if group.due():  # scenes waiting while a large one is read
                group.commit()
        encoder.flush()
        write_finished()
        group.commit()
    if summary.scenes:
        summary.ann_index = index.build_ann()
    summary.seconds = time.perf_counter() - start
    return summary


class _SceneEncoder:
    """Encodes chips in full batches across scenes; holds each scene's records and vectors till taken."""

    def __init__(self, model: LoadedModel, batch_size: int) -> None:
        self.model = model
        self.batch_size = batch_size
        self._pending: list[tuple[int, np.ndarray]] = []
        self._records: dict[int, list[ChipRecord]] = {}
        self._vectors: dict[int, list[np.ndarray]] = {}
        self._skipped: dict[int, Counter[str]] = {}
        #: scenes whose chips have all been added, in the order they ended
        self._ended: list[int] = []

    def add(self, chunk: ChipChunk) -> None:
        """Queue a chunk's chips; encode whenever a full batch is waiting."""
        self._records.setdefault(chunk.scene, []).extend(chunk.records)
        self._skipped.setdefault(chunk.scene, Counter()).update(chunk.skipped)
        self._pending.extend((chunk.scene, chip) for chip in chunk.chips)
        while len(self._pending) >= self.batch_size:
            self._encode()

    def drop(self, scene: int) -> None:
        """Forget a failed scene's chips."""
        self._pending = [(s, chip) for s, chip in self._pending if s != scene]
        for store in (self._records, self._vectors, self._skipped):
            store.pop(scene, None)

    def end(self, scene: int) -> None:
        """Note that all of a scene's chips have been added."""
        self._ended.append(scene)

    def flush(self) -> None:
        """Encode every chip still waiting, in a last batch smaller than the others."""
        while self._pending:
            self._encode()

    def finished(self) -> list[tuple[int, list[ChipRecord], np.ndarray, Counter[str]]]:
        """Take out the ended scenes whose chips are all encoded: (scene, records, vectors, skipped by reason)."""
        waiting = {scene for scene, _ in self._pending}
        done = [scene for scene in self._ended if scene not in waiting]
        self._ended = [scene for scene in self._ended if scene in waiting]
        taken = []
        for scene in done:
            vectors = self._vectors.pop(scene, [])
            matrix = np.concatenate(vectors) if vectors else np.zeros((0, self.model.embed_dim), np.float32)
            taken.append((scene, self._records.pop(scene, []), matrix, self._skipped.pop(scene, Counter())))
        return taken

    def _encode(self) -> None:
        batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
        vectors = encode_images(self.model, [chip for _, chip in batch], self.batch_size)
        for (scene, _), vector in zip(batch, vectors):  # a scene's chips keep their order across batches
            self._vectors.setdefault(scene, []).append(vector[None])


class _CommitGroup:
    """Finished scenes written to the index together, in one commit, then logged as done."""

    def __init__(self, index: ChipIndex, log: SceneLog, model_id: str, max_rows: int) -> None:
        self.index = index
        self.log = log
        self.model_id = model_id
        self.max_rows = max_rows
        self._scenes: list[tuple[str, SceneStamp, list[ChipRecord], np.ndarray]] = []
        self._rows = 0
        self._since = 0.0

    def add(self, scene_id: str, stamp: SceneStamp, records: list[ChipRecord], vectors: np.ndarray) -> None:
        """Queue a finished scene."""
        if not self._scenes:
            self._since = time.monotonic()
        self._scenes.append((scene_id, stamp, records, vectors))
        self._rows += len(records)

    def due(self) -> bool:
        """Whether the queued scenes hold ``max_rows`` rows or have waited :data:`COMMIT_SECONDS`."""
        return bool(self._scenes) and (
            self._rows >= self.max_rows or time.monotonic() - self._since >= COMMIT_SECONDS
        )

    def commit(self) -> None:
        """Write the queued scenes in one commit (each replacing its earlier chips), then log them."""
        if not self._scenes:
            return
        records = [record for _, _, scene_records, _ in self._scenes for record in scene_records]
        vectors = np.concatenate([scene_vectors for *_, scene_vectors in self._scenes])
        scene_ids = [scene_id for scene_id, *_ in self._scenes]
        self.index.replace_scenes(scene_ids, rows_table(records, vectors, self.model_id))
        self.log.mark_done([(stamp, scene_id, len(rec)) for scene_id, stamp, rec, _ in self._scenes])
        self._scenes, self._rows = [], 0


class _Progress:
    """Chips read out of chips known so far, shown as a tqdm bar and/or passed to a callback."""

    def __init__(self, show_bar: bool, callback: Callable[[int, int], None] | None) -> None:
        self.bar = tqdm(total=0, unit="chip", disable=not show_bar, dynamic_ncols=True)
        self.callback = callback
        self.done = 0
        self.total = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.close()

    def expect(self, chips: int) -> None:
        """``chips`` more chips are known (a scene was opened)."""
        self.total += chips
        self.bar.total = self.total
        self.bar.refresh()

    def step(self, chips: int = 1) -> None:
        """``chips`` more chips were read."""
        self.done += chips
        self.bar.update(chips)
        if self.callback:
            self.callback(self.done, self.total)
