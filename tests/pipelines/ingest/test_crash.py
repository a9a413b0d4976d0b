"""Crash-safe ingest: ``kill -9`` in the middle, searches during the writes, then the same command again.

A real ``remoteclip-explorer ingest`` subprocess writes a real LanceDB table while this test searches it; the
process is killed with SIGKILL after some scenes are committed and run again. Every chip must end up present
exactly once, no read may fail or see part of a scene, and the rerun must skip the scenes already done. Killed
while reader processes cut a large scene, it leaves none of them behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.bench.ingest import write_small_scenes, write_synthetic_cog
from pipelines.ingest.read import PROCESS_MIN_BYTES
from tiles.grid import ChipSpec, iter_windows
from tiles.index.chip_index import ChipIndex

pytestmark = pytest.mark.slow

SCENES = 5
SIDE_PX = 640
CHIP_PX = 32
SPEC = ChipSpec(chip_px=CHIP_PX)
REPO = Path(__file__).resolve().parents[3]


def _write_scenes(folder: Path) -> int:
    """SCENES random RGB GeoTIFFs (distinct content, so distinct scene ids); returns the chips they hold."""
    write_small_scenes(folder, SCENES, SIDE_PX, seed=0)
    return SCENES * sum(1 for _ in iter_windows(SIDE_PX, SIDE_PX, SPEC))


def _ingest_command(scenes: Path, db: Path, model: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines",
        "ingest",
        str(scenes),
        "--db",
        str(db),
        "--model",
        str(model),
        "--chip-size",
        str(CHIP_PX),
        "--workers",
        "1",
        "--batch-size",
        "64",
        "--commit-rows",  # a commit per scene, so the kill lands between commits
        "1",
        "--format",
        "json",
    ]


def test_kill_9_mid_ingest_then_rerun(tmp_path: Path, tiny_checkpoint: Path) -> None:
    expected_chips = _write_scenes(tmp_path / "scenes")
    chips_per_scene = expected_chips // SCENES
    db = tmp_path / "db"
    command = _ingest_command(tmp_path / "scenes", db, tiny_checkpoint)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    index = ChipIndex(db)
    query = np.random.default_rng(1).standard_normal(32).astype(np.float32)
    reads = 0
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            rows = index.count_rows()
            if rows:
                # reads during the writes: a search always succeeds, and every scene is whole or absent
                assert len(index.search(query, k=5)) == 5
                assert {scene.chips for scene in index.scenes()} == {chips_per_scene}
                reads += 1
            if chips_per_scene * 2 <= rows:
                break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    committed = index.count_rows()
    assert process.returncode == -signal.SIGKILL
    assert reads > 0 and chips_per_scene * 2 <= committed < expected_chips, "killed too late to test a crash"

    # the table is readable after the crash, with whole scenes only
    assert {scene.chips for scene in index.scenes()} == {chips_per_scene}

    start = time.monotonic()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout)
    assert summary["unchanged"] == committed // chips_per_scene  # scenes done before the kill are skipped
    assert summary["scenes"] == SCENES - summary["unchanged"]
    assert time.monotonic() - start < 240

    table = index.table.to_arrow()
    chip_ids = table["chip_id"].to_pylist()
    assert len(chip_ids) == len(set(chip_ids)) == expected_chips  # every chip exactly once
    assert {scene.chips for scene in index.scenes()} == {chips_per_scene}
    assert len(index.scenes()) == SCENES


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command (state first, then the parent's pid); None when the
    process is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields


def _descendants(pid: int) -> set[int]:
    """The live processes below ``pid``."""
    live = {int(entry.name): _stat(int(entry.name)) for entry in Path("/proc").glob("[0-9]*")}
    parents = {child: int(fields[1]) for child, fields in live.items() if fields is not None}
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    return _stat(pid) is not None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="walks /proc")
def test_kill_9_leaves_no_reader_process_behind(tmp_path: Path, tiny_checkpoint: Path) -> None:
    cog = write_synthetic_cog(tmp_path / "large.tif", 5000)  # over PROCESS_MIN_BYTES: read by reader processes
    assert cog.stat().st_size >= PROCESS_MIN_BYTES
    command = _ingest_command(cog, tmp_path / "db", tiny_checkpoint)
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    started: set[int] = set()
    try:
        # until a reader process has run a while (the fork server and the resource tracker start first)
        while time.monotonic() < deadline and process.poll() is None and len(started) < 3:
            started = _descendants(process.pid)
            time.sleep(0.2)
        time.sleep(2.0)
        started = _descendants(process.pid)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the ingest ended before it was killed"
    assert len(started) >= 3
    # a reader notices within a poll of its full queue (READER_POLL_S); the others follow it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(_alive(pid) for pid in started):
        time.sleep(0.2)
    left = [pid for pid in started if _alive(pid)]
    for pid in left:  # not to outlive the test
        os.kill(pid, signal.SIGKILL)
    assert not left
