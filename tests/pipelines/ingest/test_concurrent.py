"""Two ``ingest`` commands writing to one new library at the same time (two processes, as two analysts would: two
local engines, or a local engine beside a Ray one), while a search runs over the library in this process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from pipelines.services.search import search_text
from remoteclip.factory import LoadedModel
from tests.app_data import write_scene
from tiles.index.chip_index import ChipIndex

SCENES_EACH = 5
#: scenes of the local run beside a Ray one
LOCAL_SCENES_BESIDE_RAY = 20
#: seconds an ingest run may take
RUN_TIMEOUT_S = 600


def _ingest(folder: Path, db: Path, model: Path, logs: Path, engine: str = "local") -> subprocess.Popen[bytes]:
    """An ``ingest`` subprocess committing scene by scene (the most commits, the most chances to collide), its
    output in ``logs``/out and ``logs``/err (files: a pipe nobody reads while the test searches would fill). The
    Ray engine starts a local Ray instance of its own and commits once, at the end."""
    args = [sys.executable, "-m", "pipelines", "ingest", str(folder), "--db", str(db), "--model", str(model),
            "--chip-size", "64", "--commit-rows", "1", "--workers", "1", "--engine", engine]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs.mkdir()
    with (logs / "out").open("w") as out, (logs / "err").open("w") as err:
        return subprocess.Popen(args, stdout=out, stderr=err, env=env)


def _finished(run: subprocess.Popen[bytes], logs: Path) -> tuple[int, str, str]:
    """The run's exit code, stdout and stderr, once it has ended."""
    run.wait(timeout=RUN_TIMEOUT_S)
    return run.returncode, (logs / "out").read_text(), (logs / "err").read_text()


def _search_until_done(db: Path, model: LoadedModel, runs: list[subprocess.Popen[bytes]]) -> int:
    """Search the library over and over until every run has ended: how many searches found chips. Any error
    of a search while the two write (a table half-created, a version gone) fails the test."""
    found, deadline = 0, time.monotonic() + RUN_TIMEOUT_S
    while any(run.poll() is None for run in runs) and time.monotonic() < deadline:
        index = ChipIndex(db)
        if index.table is not None and index.count_rows():
            found += bool(search_text(index, model, "a scene", k=5))
    return found


def _wait_for_line(logs: Path, line: str, timeout_s: float) -> None:
    """Return once the run's stderr in ``logs`` holds ``line``, or after ``timeout_s`` all the same."""
    deadline = time.monotonic() + timeout_s
    while line not in (logs / "err").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("second_engine", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_two_ingests_into_one_new_library_both_finish_with_every_chip_once(
    tmp_path: Path, tiny_checkpoint: Path, tiny_model: LoadedModel, second_engine: str
) -> None:
    # Beside Ray, which commits once at the end, the local engine starts once Ray's pipeline runs and has more
    # scenes, so that its commits land while Ray's pipeline writes.
    scenes = {"a": LOCAL_SCENES_BESIDE_RAY if second_engine == "ray" else SCENES_EACH, "b": SCENES_EACH}
    for side, (name, count) in enumerate(scenes.items()):
        (tmp_path / name).mkdir()
        for i in range(count):
            origin = (300000.0 + 5000 * i, 2800000.0 + 9000 * side)
            write_scene(tmp_path / name / f"{i}.tif", seed=100 * side + i, origin=origin)
    db = tmp_path / "db"
    second = _ingest(tmp_path / "b", db, tiny_checkpoint, tmp_path / "log-b", second_engine)
    if second_engine == "ray":
        _wait_for_line(tmp_path / "log-b", "Starting execution of Dataset", timeout_s=120)
    first = _ingest(tmp_path / "a", db, tiny_checkpoint, tmp_path / "log-a")
    runs = {"a": first, "b": second}
    searched = _search_until_done(db, tiny_model, list(runs.values()))
    for name, run in runs.items():
        code, out, err = _finished(run, tmp_path / f"log-{name}")
        assert code == 0, err[-2000:]
        assert f"{scenes[name]} scenes" in out and "0 failed" in out
    index = ChipIndex(db)
    chip_ids = index.table.to_arrow()["chip_id"]
    assert len(pc.unique(chip_ids)) == len(chip_ids) == sum(index.chips_per_scene().values())
    assert len(index.scenes()) == sum(scenes.values())
    assert searched > 0  # searches ran against the library while it was being written
    # the scene log holds both runs' scenes: a rerun over both folders reads nothing
    again = _ingest(tmp_path, db, tiny_checkpoint, tmp_path / "log-again")
    code, out, err = _finished(again, tmp_path / "log-again")
    assert code == 0, err[-2000:]
    assert "0 scenes, 0 chips" in out and f"{sum(scenes.values())} scenes already done" in out
