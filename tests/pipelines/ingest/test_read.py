"""pipelines.ingest.read: reader processes give the messages reading in this process gives, the first scene in
two parts (its head read here while the readers start) included."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from pipelines.ingest import read
from pipelines.ingest.local import ingest_paths
from pipelines.ingest.read import (
    ChipChunk,
    SceneDone,
    SceneFailed,
    SceneJob,
    SceneMessage,
    SceneOpened,
    read_scenes,
)
from tests.index_rows import assert_same_rows
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex
from tiles.reader import gdal_env

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SPEC = ChipSpec(chip_px=16)


def _jobs(names: list[str]) -> list[SceneJob]:
    return [SceneJob(n, RASTERS / name, f"scene-{n}", (RASTERS / name).stat().st_size) for n, name in enumerate(names)]


def _outcome(messages: list[SceneMessage]) -> dict[int, tuple[str, int, Counter[tuple[object, str]]]]:
    """Per scene: how it ended, the windows its ``SceneOpened`` messages announced, and its chips (window and a
    hash of the pixels); checks that a scene ends once and that nothing of it follows its end."""
    ended: dict[int, str] = {}
    windows: Counter[int] = Counter()
    chips: dict[int, Counter[tuple[object, str]]] = {}
    for message in messages:
        assert message.scene not in ended, f"a message of scene {message.scene} after its end: {message}"
        if isinstance(message, SceneOpened):
            windows[message.scene] += message.windows
        elif isinstance(message, ChipChunk):
            chips.setdefault(message.scene, Counter()).update(
                (record.window, hashlib.sha1(chip.tobytes()).hexdigest())
                for record, chip in zip(message.records, message.chips, strict=True)
            )
        else:
            ended[message.scene] = "done" if isinstance(message, SceneDone) else "failed"
    return {scene: (how, windows[scene], chips.get(scene, Counter())) for scene, how in ended.items()}


@pytest.mark.parametrize("order", [["corrupt.tif", "rgb_4326.tif", "nodata_32618.tif", "alpha_32750.tif"],
                                   ["rgbn_3395.tif", "corrupt.tif", "cog_4326.tif"]])
def test_reader_processes_give_what_reading_here_gives(monkeypatch: pytest.MonkeyPatch, order: list[str]) -> None:
    monkeypatch.setattr(read, "PROCESS_MIN_BYTES", 0)  # readers even for these small files
    monkeypatch.setattr(read, "HEAD_WINDOWS", 2)  # the first scene's 6 windows: 2 read here, 4 by a reader
    jobs = _jobs(order)
    with gdal_env():
        here = _outcome(list(read_scenes(jobs, SPEC, 32, workers=0)))
        readers = list(read_scenes(jobs, SPEC, 32, workers=2))
    assert _outcome(readers) == here
    assert set(here) == set(range(len(jobs)))
    assert [how for how, *_ in here.values()].count("failed") == 1  # the corrupt file, failed once
    first = [m for m in readers if m.scene == 0]
    if here[0][0] == "done":  # opened twice, its parts' windows adding up to the scene's
        assert [m.windows for m in first if isinstance(m, SceneOpened)] == [2, 4]
    else:
        assert sum(isinstance(m, SceneFailed) for m in first) == 1


def test_an_ingest_through_reader_processes_writes_the_rows_one_in_process_writes(
    tmp_path: Path, tiny_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(read, "HEAD_WINDOWS", 3)
    paths = [RASTERS / name for name in ("rgb_4326.tif", "corrupt.tif", "pan_uint16_32616.tif")]
    through_readers, here = ChipIndex(tmp_path / "readers"), ChipIndex(tmp_path / "here")
    summary = ingest_paths(paths, through_readers, tiny_model, SPEC, workers=1, progress=False)
    expected = ingest_paths(paths, here, tiny_model, SPEC, workers=0, progress=False)
    assert (summary.scenes, summary.chips, summary.skipped) == (expected.scenes, expected.chips, expected.skipped)
    assert [Path(path).name for path, _ in summary.failed] == ["corrupt.tif"]
    assert_same_rows(through_readers, here, atol=1e-5)
