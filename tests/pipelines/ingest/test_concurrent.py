"""Two ``ingest`` commands writing to one new library at the same time (two processes, as two analysts would),
while a search runs over the library in this process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc

from pipelines.services.search import search_text
from remoteclip.factory import LoadedModel
from tests.app_data import write_scene
from tiles.index.chip_index import ChipIndex

SCENES_EACH = 5
#: seconds an ingest run may take
RUN_TIMEOUT_S = 600


def _ingest(folder: Path, db: Path, model: Path, logs: Path) -> subprocess.Popen[bytes]:
    """An ``ingest`` subprocess committing scene by scene (the most commits, the most chances to collide), its
    output in ``logs``/out and ``logs``/err (files: a pipe nobody reads while the test searches would fill)."""
    args = [sys.executable, "-m", "pipelines", "ingest", str(folder), "--db", str(db), "--model", str(model),
            "--chip-size", "64", "--commit-rows", "1", "--workers", "1"]
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


def test_two_ingests_into_one_new_library_both_finish_with_every_chip_once(
    tmp_path: Path, tiny_checkpoint: Path, tiny_model: LoadedModel
) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    for side, folder in enumerate(folders):
        folder.mkdir()
        for i in range(SCENES_EACH):
            write_scene(folder / f"{i}.tif", seed=100 * side + i, origin=(300000.0 + 5000 * i, 2800000.0 + 9000 * side))
    db = tmp_path / "db"
    logs = [tmp_path / "log-a", tmp_path / "log-b"]
    runs = [_ingest(folder, db, tiny_checkpoint, log) for folder, log in zip(folders, logs, strict=True)]
    searched = _search_until_done(db, tiny_model, runs)
    for run, log in zip(runs, logs, strict=True):
        code, out, err = _finished(run, log)
        assert code == 0, err[-2000:]
        assert f"{SCENES_EACH} scenes" in out and "0 failed" in out
    index = ChipIndex(db)
    chip_ids = index.table.to_arrow()["chip_id"]
    assert len(pc.unique(chip_ids)) == len(chip_ids) == sum(index.chips_per_scene().values())
    assert len(index.scenes()) == 2 * SCENES_EACH
    assert searched > 0  # searches ran against the library while it was being written
    # the scene log holds both runs' scenes: a rerun over both folders reads nothing
    again = _ingest(tmp_path, db, tiny_checkpoint, tmp_path / "log-again")
    code, out, err = _finished(again, tmp_path / "log-again")
    assert code == 0, err[-2000:]
    assert "0 scenes, 0 chips" in out and f"{2 * SCENES_EACH} scenes already done" in out
