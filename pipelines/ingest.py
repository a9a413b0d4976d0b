"""The ingest job: rasters -> chips -> embeddings -> rows of the chip index, one scene at a time.

A scene's rows are written only after all its chips are encoded, in one ``merge_insert`` that also removes chips
the scene no longer has, so a scene that fails half-way leaves the index as it was. A failing file is reported
(one line naming it and the reason) and the batch goes on.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from remoteclip.encode import encode_images
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from tiles.georef import chip_georef
from tiles.grid import ChipSpec, iter_windows
from tiles.index import ChipIndex
from tiles.reader import RASTER_SUFFIXES, gdal_env, open_scene
from tiles.schema import ChipRecord, rows_table, scene_id_for
from tiles.thumbnail import THUMB_PX, thumbnail_jpeg

GLOB_CHARS = frozenset("*?[")


@dataclass
class IngestSummary:
    """What an ingest did."""

    scenes: int = 0
    chips: int = 0
    #: chips left out because they were mostly nodata / transparent
    skipped: int = 0
    #: (path, reason) of every file that could not be ingested
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def chips_per_s(self) -> float:
        """Chips written per second of wall time."""
        return self.chips / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {"scenes": self.scenes, "chips": self.chips, "skipped": self.skipped,
                "failed": [{"path": path, "reason": reason} for path, reason in self.failed],
                "seconds": round(self.seconds, 3), "chips_per_s": round(self.chips_per_s, 2)}


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named, found in folders (recursively) or matched by globs; and (path, reason) for names matching none.

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
            matches = sorted(path.rglob("*")) if path.is_dir() else sorted(map(Path, glob.glob(str(path), recursive=True)))
            rasters = [m for m in matches if m.is_file() and m.suffix.lower() in RASTER_SUFFIXES]
            if not rasters:
                missing.append((str(raw), "no raster files found there"))
            found.update(dict.fromkeys(rasters))
        else:
            missing.append((str(raw), "no such file or folder"))
    return list(found), missing


def ingest_paths(paths: Iterable[str | Path], index: ChipIndex, model: LoadedModel, spec: ChipSpec = ChipSpec(),
                 *, batch_size: int = 64, thumb_px: int = THUMB_PX, progress: bool = True,
                 on_failure: Callable[[str, str], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> IngestSummary:
    """Ingest rasters (files, folders, globs) into ``index`` with ``model``.

    Args:
        paths: files, folders (searched recursively) and glob patterns.
        index: the chip index to write; it must be empty or hold vectors of ``model``.
        model: the loaded model that embeds the chips.
        spec: chip size, overlap, levels and the valid share below which a chip is skipped.
        batch_size: chips per encoder batch.
        thumb_px: longest side of the stored JPEG thumbnails.
        progress: show a tqdm progress bar (chips) on stderr.
        on_failure: called with (path, reason) for each file that fails, as it fails.
        on_progress: called with (chips read, chips known so far) after each chip (e.g. for the app's progress bar).
    """
    if batch_size < 1:
        raise InputError(f"batch size {batch_size} must be at least 1")
    index.check_model(model.model_id)
    files, missing = expand_paths(paths)
    summary = IngestSummary(failed=list(missing))
    for path, reason in missing:
        if on_failure:
            on_failure(path, reason)
    start = time.perf_counter()
    with gdal_env(), _Progress(progress, on_progress) as tracker:
        for path in files:
            tracker.bar.set_description(path.name[:40])
            try:
                chips, skipped = _ingest_scene(path, index, model, spec, batch_size, thumb_px, tracker)
            except (OSError, InputError) as exc:
                reason = str(exc).removeprefix(f"{path}: ")
                summary.failed.append((str(path), reason))
                if on_failure:
                    on_failure(str(path), reason)
                continue
            summary.scenes += 1
            summary.chips += chips
            summary.skipped += skipped
    summary.seconds = time.perf_counter() - start
    return summary


class _Progress:
    """Chips read out of chips known so far, shown as a tqdm bar and/or passed to a callback."""

    def __init__(self, show_bar: bool, callback: Callable[[int, int], None] | None) -> None:
        self.bar = tqdm(total=0, unit="chip", disable=not show_bar, dynamic_ncols=True)
        self.callback = callback
        self.done = 0
        self.total = 0

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.close()

    def expect(self, chips: int) -> None:
        """``chips`` more chips are known (a scene was opened)."""
        self.total += chips
        self.bar.total = self.total
        self.bar.refresh()

    def step(self) -> None:
        """One more chip was read."""
        self.done += 1
        self.bar.update(1)
        if self.callback:
            self.callback(self.done, self.total)


def _ingest_scene(path: Path, index: ChipIndex, model: LoadedModel, spec: ChipSpec, batch_size: int,
                  thumb_px: int, tracker: _Progress) -> tuple[int, int]:
    """Read, encode and write one scene; returns (chips written, chips skipped)."""
    scene_id = scene_id_for(path)
    records: list[ChipRecord] = []
    vectors: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    skipped = 0
    with open_scene(path) as scene:
        windows = list(iter_windows(scene.width, scene.height, spec))
        crs = scene.crs.to_string() if scene.crs is not None else None
        tracker.expect(len(windows))
        for window in windows:
            chip = scene.read_chip(window, spec.chip_px, spec.min_valid)
            tracker.step()
            if chip is None:
                skipped += 1
                continue
            records.append(ChipRecord(
                scene_id=scene_id, scene_path=str(path.resolve()), window=window,
                georef=chip_georef(window, scene.transform, scene.crs), crs=crs,
                thumbnail=thumbnail_jpeg(chip, window.out_shape(spec.chip_px), thumb_px),
            ))
            pending.append(chip)
            if len(pending) == batch_size:
                vectors.append(encode_images(model, pending, batch_size))
                pending = []
    if pending:
        vectors.append(encode_images(model, pending, batch_size))
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, model.embed_dim), dtype=np.float32)
    index.replace_scene(scene_id, rows_table(records, matrix, model.model_id))
    return len(records), skipped
