"""pipelines.ingest.local and the ``ingest`` command: fixture rasters and real scenes into a real LanceDB index."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.warp import transform_bounds
from rasterio.windows import bounds as window_bounds

from pipelines.cli.main import cli, main
from pipelines.ingest.local import ingest_paths
from remoteclip.encode import encode_images
from tests.bordered_scene import TEXTURED, write_bordered_scene
from tests.index_rows import assert_same_rows, sorted_rows
from tiles.grid import ChipSpec, ChipWindow
from tiles.index.chip_index import ChipIndex
from tiles.index.errors import ChipIndexError
from tiles.reader import open_scene

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SPEC = ChipSpec(chip_px=16)
GOOD = ["alpha_32750.tif", "cog_4326.tif", "nodata_32618.tif", "pan_uint16_32616.tif", "plain.png",
        "rgb_4326.tif", "rgb_4326.vrt", "rgbn_3395.tif"]
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def test_fixture_folder_ingests_and_reports_the_corrupt_file(tmp_path: Path, tiny_model) -> None:
    index = ChipIndex(tmp_path / "db")
    failures: list[tuple[str, str]] = []
    summary = ingest_paths([RASTERS], index, tiny_model, SPEC, progress=False,
                           on_failure=lambda path, reason: failures.append((path, reason)))
    assert summary.scenes == len(GOOD)
    assert [Path(p).name for p, _ in summary.failed] == ["corrupt.tif"] and failures == summary.failed
    assert "IReadBlock" in summary.failed[0][1] or "TIFFRead" in summary.failed[0][1]
    # 6 windows per scene; nodata keeps 2, alpha keeps 1
    assert summary.skipped == 4 + 5 and summary.skipped_by == {"nodata": 4 + 5}
    assert summary.chips == index.count_rows() == 6 * len(GOOD) - summary.skipped
    assert {Path(s.scene_path).name for s in index.scenes()} == set(GOOD)  # nothing of corrupt.tif
    png = next(s for s in index.scenes() if s.scene_path.endswith("plain.png"))
    assert png.pixel_space and png.extent == (0, 0, 40, 24)


def test_empty_chips_are_left_out_and_counted_by_reason(tmp_path: Path, tiny_model, tiny_checkpoint: Path) -> None:
    scene = write_bordered_scene(tmp_path / "bordered.tif")
    index = ChipIndex(tmp_path / "db")
    summary = ingest_paths([scene], index, tiny_model, SPEC, workers=0, progress=False)
    assert (summary.chips, summary.skipped, summary.skipped_by) == (5, 7, {"fill": 6, "flat": 1})
    stored = index.stored_windows(index.scenes()[0].scene_id).to_pylist()
    assert sorted((r["col_off"] // 16, r["row_off"] // 16) for r in stored) == sorted(TEXTURED)

    result = CliRunner().invoke(cli, ["ingest", str(scene), "--db", str(tmp_path / "cli"), "--model",
                                      str(tiny_checkpoint), "--chip-size", "16"])
    assert result.exit_code == 0, result.output
    assert "5 chips (7 skipped as empty: 6 black/white fill, 1 flat)" in result.stdout


def test_reingest_leaves_the_same_rows(tmp_path: Path, tiny_model) -> None:
    index = ChipIndex(tmp_path / "db")
    paths = [RASTERS / "rgb_4326.tif", RASTERS / "pan_uint16_32616.tif"]
    ingest_paths(paths, index, tiny_model, SPEC, progress=False)
    before = sorted_rows(index)
    summary = ingest_paths(paths, index, tiny_model, SPEC, progress=False)
    after = sorted_rows(index)
    assert summary.unchanged == 2 and summary.chips == 0  # finished scenes are skipped on the rerun
    assert before.num_rows == after.num_rows == 12
    assert after.equals(before)


def test_small_scenes_are_written_together_and_vectors_match_one_by_one(
    tmp_path: Path, tiny_model, shared_data: Path
) -> None:
    """30 one-chip drone scenes: grouped commits, the same rows as a commit per scene, every scene logged."""
    chips = sorted((shared_data / "kampala-buildings" / "chips").glob("*.tif"))[:30]
    spec = ChipSpec(chip_px=256)
    grouped = ChipIndex(tmp_path / "grouped")
    summary = ingest_paths(chips, grouped, tiny_model, spec, batch_size=8, workers=0, progress=False)
    one_by_one = ChipIndex(tmp_path / "one_by_one")
    ingest_paths(chips, one_by_one, tiny_model, spec, batch_size=8, workers=0, commit_rows=1, progress=False)
    assert summary.scenes == summary.chips == grouped.count_rows() == 30
    # table versions: one per commit (a commit per scene, plus the table's creation, when not grouped)
    assert grouped.table.version < 30 <= one_by_one.table.version
    assert_same_rows(grouped, one_by_one, atol=1e-5)  # full batches vs batches cut at each scene
    again = ingest_paths(chips, grouped, tiny_model, spec, workers=0, progress=False)
    assert (again.unchanged, again.scenes) == (30, 0)  # every grouped scene was logged as done


def test_vectors_embed_the_chip_pixels(tmp_path: Path, tiny_model) -> None:
    index = ChipIndex(tmp_path / "db")
    ingest_paths([RASTERS / "rgbn_3395.tif"], index, tiny_model, SPEC, progress=False)
    window = ChipWindow(level=1, col_off=16, row_off=0, width=16, height=16, span_px=16)
    with open_scene(RASTERS / "rgbn_3395.tif") as scene:
        expected = encode_images(tiny_model, [scene.read_chip(window, 16)])[0]
    hit = index.search(expected, k=1)[0]
    assert (hit.col_off, hit.row_off, hit.level) == (16, 0, 1)
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    assert hit.thumbnail[:2] == b"\xff\xd8"  # JPEG


def test_real_scenes_rows_are_georeferenced(tmp_path: Path, shared_data: Path, tiny_model) -> None:
    paths = [shared_data / "scenes/rasterio/RGB.byte.tif", shared_data / "scenes/xview2_joplin/post/tile_31500-5137.tif"]
    index = ChipIndex(tmp_path / "db")
    summary = ingest_paths(paths, index, tiny_model, ChipSpec(levels=(1, 2)), progress=False)
    assert summary.scenes == 2 and not summary.failed and summary.skipped > 0  # RGB.byte.tif's nodata collar
    rows = index.table.search().select(["scene_path", "col_off", "row_off", "width", "height", "minx", "miny",
                                        "maxx", "maxy", "crs"]).limit(1000).to_arrow().to_pylist()
    assert len(rows) == summary.chips
    for row in rows:
        with rasterio.open(row["scene_path"]) as src:
            win = rasterio.windows.Window(row["col_off"], row["row_off"], row["width"], row["height"])
            expected = transform_bounds(src.crs, "EPSG:4326", *window_bounds(win, src.transform))
            assert row["crs"] == src.crs.to_string()
        np.testing.assert_allclose([row["minx"], row["miny"], row["maxx"], row["maxy"]], expected, atol=1e-9)


def test_a_second_model_is_refused_before_reading(tmp_path: Path, tiny_model) -> None:
    index = ChipIndex(tmp_path / "db")
    ingest_paths([RASTERS / "rgb_4326.tif"], index, tiny_model, SPEC, progress=False)
    other = dataclasses.replace(tiny_model, model_id="other-model@123")
    with pytest.raises(ChipIndexError, match=f"{tiny_model.model_id}.*other-model@123"):
        ingest_paths([RASTERS / "pan_uint16_32616.tif"], index, other, SPEC, progress=False)
    assert index.count_rows() == 6


def test_cli_ingest_json_and_exit_code(tmp_path: Path, tiny_checkpoint: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("rgb_4326.tif", "corrupt.tif"):
        shutil.copy(RASTERS / name, folder / name)
    db = tmp_path / "db"
    result = CliRunner().invoke(cli, ["ingest", str(folder), "--db", str(db), "--model", str(tiny_checkpoint),
                                      "--chip-size", "16", "--levels", "1,2", "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert (report["scenes"], report["chips"], report["skipped"], report["skipped_by"]) == (1, 6 + 2, 0, {})
    assert [Path(f["path"]).name for f in report["failed"]] == ["corrupt.tif"]
    assert f"failed: {folder / 'corrupt.tif'}: " in result.stderr
    assert ChipIndex(db).count_rows() == 8


def test_cli_bad_options_are_one_line_errors(tmp_path: Path, tiny_checkpoint: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = ["ingest", str(RASTERS / "rgb_4326.tif"), "--db", str(tmp_path / "db"), "--model", str(tiny_checkpoint)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--chip-size", "16", "--overlap", "16"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == "Error: overlap 16 px must be >= 0 and smaller than the chip size 16 px"
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--levels", "1,x"])
    assert exit_info.value.code == 2 and "'1,x' is not a comma-separated list" in capsys.readouterr().err


def test_the_same_file_twice_is_one_scene_and_the_copy_is_reported(tmp_path: Path, tiny_model) -> None:
    """Byte-identical copies under other names (a scene copied into two folders, a re-download) are ingested
    once, each copy reported beside the file it repeats; the rest of the batch is unharmed, also on a rerun."""
    folder = tmp_path / "scenes"
    (folder / "copies").mkdir(parents=True)
    shutil.copy(RASTERS / "rgb_4326.tif", folder / "a.tif")
    shutil.copy(RASTERS / "rgb_4326.tif", folder / "copies" / "a_again.tif")
    shutil.copy(RASTERS / "rgbn_3395.tif", folder / "b.tif")
    index = ChipIndex(tmp_path / "db")
    summary = ingest_paths([folder], index, tiny_model, SPEC, progress=False)
    assert summary.scenes == 2 and not summary.failed
    assert summary.duplicates == [(str(folder / "copies" / "a_again.tif"), str(folder / "a.tif"))]
    assert sorted(Path(s.scene_path).name for s in index.scenes()) == ["a.tif", "b.tif"]
    chips = index.count_rows()
    again = ingest_paths([folder / "copies", folder], index, tiny_model, SPEC, progress=False)
    assert again.scenes == 0 and again.unchanged == 2 and index.count_rows() == chips
    assert again.duplicates == [(str(folder / "copies" / "a_again.tif"), str(folder / "a.tif"))]
    # the original gone (moved): the copy is then the scene's one file, ingested under its path
    (folder / "a.tif").unlink()
    moved = ingest_paths([folder], index, tiny_model, SPEC, progress=False)
    assert moved.scenes == 1 and not moved.duplicates and index.count_rows() == chips
    assert sorted(Path(s.scene_path).name for s in index.scenes()) == ["a_again.tif", "b.tif"]


def test_the_cli_names_each_duplicate(tmp_path: Path, tiny_checkpoint: Path) -> None:
    shutil.copy(RASTERS / "rgb_4326.tif", tmp_path / "a.tif")
    shutil.copy(RASTERS / "rgb_4326.tif", tmp_path / "b.tif")
    args = ["ingest", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--db", str(tmp_path / "db"),
            "--model", str(tiny_checkpoint), "--chip-size", "16"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"duplicate: {tmp_path / 'b.tif'} is the same file as {tmp_path / 'a.tif'}; ingested once" in result.stderr
    assert "1 scenes" in result.stdout and "1 duplicates skipped" in result.stdout


def test_chips_across_the_antimeridian_are_found_from_both_sides(tmp_path: Path, tiny_model) -> None:
    """A scene from 179.95 E to 179.95 W (stored as 179.95 to 180.05 in EPSG:4326): its chips are found by an AOI
    on either side of the antimeridian, through the bbox prefilter."""
    from rasterio.transform import from_origin
    from shapely.geometry import box

    path = tmp_path / "fiji.tif"
    data = np.random.default_rng(1).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs="EPSG:4326",
                       transform=from_origin(179.95, -16.0, 0.1 / 64, 0.1 / 64)) as dst:
        dst.write(data)
    index = ChipIndex(tmp_path / "db")
    ingest_paths([path], index, tiny_model, ChipSpec(chip_px=16), progress=False)
    vector = index.vectors([index.table.to_arrow()["chip_id"][0].as_py()])[0]
    west = index.search(vector, k=100, aoi=box(-179.999, -16.1, -179.96, -15.9))
    east = index.search(vector, k=100, aoi=box(179.96, -16.1, 179.999, -15.9))
    assert west and east and len(west) + len(east) >= 16  # the 16 chips, those by the line on both sides
    assert all(-180 <= v <= 180 for hit in west + east for v in hit.bbox)
