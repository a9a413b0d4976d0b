"""pipelines.ingest.read: reader processes give the messages reading in this process gives, the first scene in
two parts (its head read here while the readers start) included, in the folder and environment the ingest is in when
the readers start (not those the fork server started in)."""

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


def test_readers_read_relative_paths_in_the_folder_the_ingest_is_in_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read, "PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(read, "HEAD_WINDOWS", 2)  # the scene's 6 windows: 2 read here, 4 by a reader
    read.start_reader_server()  # started in another folder
    monkeypatch.chdir(RASTERS)
    jobs = [SceneJob(0, Path("rgb_4326.tif"), "scene-0", (RASTERS / "rgb_4326.tif").stat().st_size)]
    with gdal_env():
        here = _outcome(list(read_scenes(jobs, SPEC, 32, workers=0)))
        readers = _outcome(list(read_scenes(jobs, SPEC, 32, workers=1)))
    assert here[0][0] == "done"
    assert readers == here


def test_readers_read_in_the_environment_the_ingest_has_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read, "PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(read, "HEAD_WINDOWS", 2)
    read.start_reader_server()  # the fork server keeps the environment it started with
    monkeypatch.setenv("GDAL_GEOREF_SOURCES", "NONE")  # GDAL now ignores the file's georeference
    jobs = _jobs(["rgb_4326.tif"])
    with gdal_env():
        messages = list(read_scenes(jobs, SPEC, 32, workers=1))
    records = [record for message in messages if isinstance(message, ChipChunk) for record in message.records]
    assert len(records) == 6  # 2 read here, 4 by the reader
    assert {record.crs for record in records} == {None}
