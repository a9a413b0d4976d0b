"""``prune-empty`` through click's CliRunner on real LanceDB libraries ingested with the tiny model before the
empty-chip rule: it deletes the chips ingest now leaves out, and nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli
from pipelines.ingest.local import ingest_paths
from remoteclip.factory import LoadedModel
from tests.bordered_scene import write_bordered_scene
from tests.index_rows import assert_same_rows
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SPEC = ChipSpec(chip_px=16, levels=(1, 2))
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def scenes(folder: Path) -> list[Path]:
    """The bordered scene (12 + 4 windows at levels 1 and 2) and a textured fixture scene (6 + 2), in ``folder``."""
    folder.mkdir()
    shutil.copy(RASTERS / "rgb_4326.tif", folder / "rgb_4326.tif")
    return [write_bordered_scene(folder / "bordered.tif"), folder / "rgb_4326.tif"]


def old_library(db: Path, model: LoadedModel, paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> ChipIndex:
    """A library ingested as before the empty-chip rule: only mostly-nodata windows were left out."""
    index = ChipIndex(db)
    with monkeypatch.context() as patched:
        patched.setattr("tiles.chips.empty_reason", lambda *args: None)
        summary = ingest_paths(paths, index, model, SPEC, workers=0, progress=False)
    assert (summary.chips, summary.skipped) == (16 + 8, 0)
    return index


def prune(db: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["prune-empty", "--db", str(db), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_prune_deletes_the_empty_chips_and_nothing_else(
    tmp_path: Path, tiny_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = scenes(tmp_path / "in")
    index = old_library(tmp_path / "db", tiny_model, paths, monkeypatch)
    version = index.table.version

    dry = prune(tmp_path / "db", "--dry-run")
    # level 1: 6 border windows and 1 flat; level 2: the top-left 32 px window is 66 % border
    assert "bordered.tif: 8 of 16 chips empty (7 black/white fill, 1 flat)" in dry
    assert "rgb_4326.tif: none of 8 chips empty" in dry
    assert dry.endswith(f"8 empty chips in 2 scenes, 8 would be deleted (dry run): {tmp_path / 'db'}\n")
    assert index.count_rows() == 24 and index.table.version == version  # a dry run writes nothing

    assert prune(tmp_path / "db").endswith(f"8 empty chips in 2 scenes, 8 deleted: {tmp_path / 'db'}\n")
    fresh = ChipIndex(tmp_path / "fresh")
    ingest_paths(paths, fresh, tiny_model, SPEC, workers=0, progress=False)
    assert_same_rows(index, fresh, atol=1e-6)  # what is left is what ingest writes now, rows and vectors
    assert "0 empty chips in 2 scenes, 0 deleted" in prune(tmp_path / "db")
    # the scene log knows the pruned counts: ingesting the same scenes again reads none of them
    again = ingest_paths(paths, index, tiny_model, SPEC, workers=0, progress=False)
    assert (again.unchanged, again.scenes, again.chips) == (2, 0, 0)


def test_scenes_gone_or_changed_are_not_checked(
    tmp_path: Path, tiny_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    bordered, textured = scenes(tmp_path / "in")
    index = old_library(tmp_path / "db", tiny_model, [bordered, textured], monkeypatch)
    textured.unlink()
    write_bordered_scene(bordered, seed=1)  # other content under the same name

    report = json.loads(prune(tmp_path / "db", "--format", "json"))
    assert (report["empty_chips"], report["deleted"], report["dry_run"]) == (0, 0, False)
    assert {Path(s["scene_path"]).name: s["unchecked"] for s in report["scenes"]} == {
        "bordered.tif": "changed since it was ingested",
        "rgb_4326.tif": "no such file",
    }
    assert index.count_rows() == 24
