"""Reading scenes into chips for the ingest engines: in reader processes (bounded queue) or in this process.

:func:`scene_messages` opens one scene and cuts it into chips (:func:`tiles.chips.iter_chips`), sending
:class:`SceneOpened`, then chunks of chips (:class:`ChipChunk`), then :class:`SceneDone` or
:class:`SceneFailed`. :func:`read_scenes` runs it for many scenes in reader processes, forked from a server
process that imported this module (:data:`READER_START`). This module imports no model code, so reader
processes start fast and small.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from shapely.geometry.base import BaseGeometry

from remoteclip.errors import InputError
from tiles.chips import iter_chips
from tiles.errors import RasterReadError
from tiles.grid import ChipSpec, ChipWindow, iter_windows
from tiles.index.schema import ChipRecord, SceneItem
from tiles.reader import Scene, gdal_env, open_scene
from tiles.thumbnail import thumbnail_jpeg

if TYPE_CHECKING:  # ForkServerContext is not defined on Windows
    from multiprocessing.context import ForkServerContext, SpawnContext

#: reader processes by default: the cores left over by the encoder (0 reads in this process)
DEFAULT_WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))
#: how reader processes start: forked from a server process that imported this module once (a reader then
#: starts in milliseconds; spawned, each one spent ~0.5 s of CPU on its imports before its first chip, beside
#: the encoder), or spawned where there is no fork server (Windows). Never forked from the ingest process
#: itself, which would copy the model, LanceDB's threads and locks
READER_START = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
#: below this many bytes of imagery, reading in this process beats starting reader processes
PROCESS_MIN_BYTES = 32 * 1024 * 1024
#: chips per message from a reader to the encoder
CHUNK_CHIPS = 16
#: windows at the start of the first scene that this process reads itself while the reader processes start
#: (about 0.4 s of imports each, in which the encoder had nothing to do): one encoder batch at the default size
HEAD_WINDOWS = 64
#: messages that may wait per reader process: the bounded queue that keeps memory flat
QUEUE_PER_WORKER = 4
#: seconds between checks that the reader processes are still alive
READER_POLL_S = 1.0
#: glibc ``mallopt`` parameter and the value it is pinned to while chips arrive from reader processes
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


@dataclass(frozen=True)
class SceneJob:
    """A scene to read: its number in this run, its file (a local path, or a remote raster's URL), its id, its
    size in bytes and the catalog item it came from (None for a file named by path)."""

    number: int
    path: Path | str
    scene_id: str
    size: int
    item: SceneItem | None = None
    #: the part of the scene's windows to read, as ``slice(start, stop)`` bounds (``None``: all of them)
    part: tuple[int, int | None] | None = None

    @property
    def scene_path(self) -> str:
        """What the index stores as the scene's path: the file's absolute path, or the URL as given."""
        return self.path if isinstance(self.path, str) else str(self.path.resolve())

    @property
    def name(self) -> str:
        """The file's name (the last part of a URL)."""
        return self.path.name if isinstance(self.path, Path) else self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class SceneOpened:
    """A reader opened scene ``scene``; it has ``windows`` chip windows."""

    scene: int
    windows: int


@dataclass(frozen=True)
class ChipChunk:
    """A chunk of a scene's chips, with their records, its empty windows by reason (``SkipReason``) and the
    number of windows it covers (chips, empty ones, and those outside the AOI)."""

    scene: int
    records: list[ChipRecord]
    chips: list[np.ndarray]
    skipped: Counter[str]
    windows: int


@dataclass(frozen=True)
class SceneDone:
    """Every chip of scene ``scene`` has been sent."""

    scene: int


@dataclass(frozen=True)
class SceneFailed:
    """Scene ``scene`` could not be read; its chunks sent so far are void."""

    scene: int
    reason: str


SceneMessage = SceneOpened | ChipChunk | SceneDone | SceneFailed


def scene_messages(
    job: SceneJob, spec: ChipSpec, thumb_px: int, aoi: BaseGeometry | None = None
) -> Iterator[SceneMessage]:
    """Cut one scene (or the part of its windows ``job.part`` names) into chips: ``SceneOpened``, ``ChipChunk``s,
    then ``SceneDone`` or ``SceneFailed``.

    With ``aoi`` (EPSG:4326), windows wholly outside it are never read (of a remote file, never fetched).
    """
    try:
        with open_scene(job.path) as scene:
            windows = list(iter_windows(scene.width, scene.height, spec))
            if job.part is not None:
                windows = windows[slice(*job.part)]
            yield SceneOpened(job.number, len(windows))
            for start in range(0, len(windows), CHUNK_CHIPS):
                yield _read_chunk(job, scene, windows[start : start + CHUNK_CHIPS], spec, thumb_px, aoi)
    except (OSError, InputError) as exc:
        yield SceneFailed(job.number, str(exc).removeprefix(f"{job.path}: "))
        return
    yield SceneDone(job.number)


def _read_chunk(
    job: SceneJob,
    scene: Scene,
    windows: list[ChipWindow],
    spec: ChipSpec,
    thumb_px: int,
    aoi: BaseGeometry | None,
) -> ChipChunk:
    """The chips of ``windows`` (those meeting ``aoi``) and their records; empty windows counted by reason."""
    skipped: Counter[str] = Counter()
    chips = list(
        iter_chips(scene, spec, windows=windows, aoi=aoi, on_skip=lambda _, reason: skipped.update((reason,)))
    )
    crs = scene.crs.to_string() if scene.crs is not None else None
    scene_path = job.scene_path
    records = [
        ChipRecord(
            scene_id=job.scene_id,
            scene_path=scene_path,
            window=chip.window,
            georef=chip.georef,
            crs=crs,
            thumbnail=thumbnail_jpeg(chip.pixels, chip.window.out_shape(spec.chip_px), thumb_px),
            item=job.item,
        )
        for chip in chips
    ]
    return ChipChunk(job.number, records, [chip.pixels for chip in chips], skipped, len(windows))


def read_scenes(
    jobs: list[SceneJob], spec: ChipSpec, thumb_px: int, workers: int, aoi: BaseGeometry | None = None
) -> Iterator[SceneMessage]:
    """Messages of all scenes, from reader processes (bounded queue) or read here (workers=0, small input).

    With reader processes, this process reads the first :data:`HEAD_WINDOWS` windows of the first scene itself
    while they start, and they read the rest of it: that scene then opens twice (two ``SceneOpened``, whose
    windows add up to its own), and is done once both parts are (one ``SceneDone``, or one ``SceneFailed``
    after which none of its messages follow).
    """
    if workers == 0 or sum(job.size for job in jobs) < PROCESS_MIN_BYTES:
        for job in jobs:
            yield from scene_messages(job, spec, thumb_px, aoi)
        return
    _pin_mmap_threshold()
    head = replace(jobs[0], part=(0, HEAD_WINDOWS))
    context = reader_context()
    tasks: mp.Queue = context.Queue()
    out: mp.Queue = context.Queue(maxsize=QUEUE_PER_WORKER * workers)
    readers = [
        context.Process(
            target=_reader_main, args=(tasks, out, spec, thumb_px, aoi, dict(os.environ)), daemon=True
        )
        for _ in range(min(workers, len(jobs)))
    ]
    tasks.put(replace(jobs[0], part=(HEAD_WINDOWS, None)))
    for job in jobs[1:]:
        tasks.put(job)
    for reader in readers:
        tasks.put(None)
        reader.start()
    parts = _SceneParts(len(jobs), split=head.number)
    try:
        for message in scene_messages(head, spec, thumb_px, aoi):
            if parts.passes(message):
                yield message
        while parts.open_scenes:
            try:
                message = out.get(timeout=READER_POLL_S)
            except queue.Empty:
                dead = [reader.exitcode for reader in readers if reader.exitcode not in (None, 0)]
                if dead:
                    raise RasterReadError(
                        f"a reader process died (exit code {dead[0]}) while cutting chips; "
                        "run again with --workers 0 to see which file breaks it"
                    ) from None
                continue
            if parts.passes(message):
                yield message
    finally:
        for reader in readers:
            if reader.is_alive():
                reader.kill()
            reader.join()


def reader_context() -> ForkServerContext | SpawnContext:
    """The context reader processes start in (:data:`READER_START`); the fork server preloads the main module
    and this one, so what it forks holds nothing of the ingest process (no model, no LanceDB)."""
    if READER_START != "forkserver":
        return mp.get_context("spawn")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__])
    return context


def start_reader_server() -> None:
    """Start the server reader processes are forked from, unless it runs (no-op where readers are spawned).

    It starts by itself with the first reader; started before a model loads, its imports overlap the model's
    instead of the first chips'. It stays for the life of this process, so later ingests reuse it.
    """
    if READER_START == "forkserver":
        from multiprocessing import forkserver  # POSIX only

        reader_context()  # sets what the server preloads
        forkserver.ensure_running()


class _SceneParts:
    """Which messages of scenes read in parts pass on: a scene ends once, when its last part does or when one
    of its parts fails (its later messages are dropped)."""

    def __init__(self, scenes: int, split: int) -> None:
        self.open_scenes = scenes
        self._parts_left = {split: 2}
        self._failed: set[int] = set()

    def passes(self, message: SceneMessage) -> bool:
        """Whether ``message`` goes on to the encoder (and count the scenes still open)."""
        if message.scene in self._failed:
            return False
        if isinstance(message, SceneFailed):
            self._failed.add(message.scene)
        elif isinstance(message, SceneDone):
            left = self._parts_left.get(message.scene, 1) - 1
            self._parts_left[message.scene] = left
            if left:
                return False
        else:
            return True
        self.open_scenes -= 1
        return True


def _pin_mmap_threshold() -> None:
    """Keep glibc's mmap threshold at 128 KB in this process (no-op elsewhere than glibc).

    Each message from a reader is unpickled from a buffer of a few MB. After the first such buffer is freed,
    glibc raises its mmap threshold to that size and serves the next ones from the heap, where the long-lived
    records (thumbnails, footprints) between them pin freed pages: the ingest process then grew by ~290 KB per
    chip. With the threshold pinned, the buffers are mapped and returned to the OS one by one.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def _reader_main(
    tasks: mp.Queue,
    out: mp.Queue,
    spec: ChipSpec,
    thumb_px: int,
    aoi: BaseGeometry | None,
    environ: dict[str, str],
) -> None:
    """A reader process: cut the scenes it takes from ``tasks`` into chips until it takes ``None``, in the
    ingest process's ``environ`` (forked from the fork server, it has the server's environment, from when the
    server started: not the GDAL and cloud settings made since; multiprocessing carries the folder over).

    It exits by itself when the ingest process is gone (killed with ``kill -9``), instead of waiting on a full
    queue nobody reads: multiprocessing's sentinel of the process that started it (the ingest process, not the
    fork server it was forked from, which lives on while a reader does) tells.
    """
    os.environ.clear()
    os.environ.update(environ)
    ingest = mp.parent_process()
    with gdal_env():
        for job in iter(tasks.get, None):
            for message in scene_messages(job, spec, thumb_px, aoi):
                while True:
                    try:
                        out.put(message, timeout=READER_POLL_S)
                        break
                    except queue.Full:
                        if ingest is not None and not ingest.is_alive():
                            # what the queue still holds can never be delivered: exit without flushing it
                            # (its thread would wait forever on a pipe that this process holds open too)
                            out.cancel_join_thread()
                            return
