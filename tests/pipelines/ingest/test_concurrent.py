"""Two ``ingest`` commands writing to one new library at the same time (two processes, as two analysts would)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc

from tests.app_data import write_scene
from tiles.index.chip_index import ChipIndex

SCENES_EACH = 5


def _ingest(folder: Path, db: Path, model: Path) -> subprocess.Popen[str]:
    """An ``ingest`` subprocess committing scene by scene (the most commits, the most chances to collide)."""
    args = [sys.executable, "-m", "pipelines", "ingest", str(folder), "--db", str(db), "--model", str(model),
            "--chip-size", "64", "--commit-rows", "1", "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_ingests_into_one_new_library_both_finish_with_every_chip_once(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    for side, folder in enumerate(folders):
        folder.mkdir()
        for i in range(SCENES_EACH):
            write_scene(folder / f"{i}.tif", seed=100 * side + i, origin=(300000.0 + 5000 * i, 2800000.0 + 9000 * side))
    db = tmp_path / "db"
    runs = [_ingest(folder, db, tiny_checkpoint) for folder in folders]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err[-2000:]
        assert f"{SCENES_EACH} scenes" in out and "0 failed" in out
    index = ChipIndex(db)
    chip_ids = index.table.to_arrow()["chip_id"]
    assert len(pc.unique(chip_ids)) == len(chip_ids) == sum(index.chips_per_scene().values())
    assert len(index.scenes()) == 2 * SCENES_EACH
    # the scene log holds both runs' scenes: a rerun over both folders reads nothing
    again = _ingest(tmp_path, db, tiny_checkpoint)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-2000:]
    assert "0 scenes, 0 chips" in out and f"{2 * SCENES_EACH} scenes already done" in out
