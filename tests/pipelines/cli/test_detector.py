"""``remoteclip-explorer detector save|list|show|apply|delete`` on a real library, exports read back."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli, main
from pipelines.ingest.local import ingest_paths
from pipelines.services.detectors import apply_detector, get_detector
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
#: two georeferenced scenes and a PNG without a CRS (its chips are pixel-space)
SCENES = ["rgb_4326.tif", "pan_uint16_32616.tif", "plain.png"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> Path:
    folder = tmp_path_factory.mktemp("detector_cli") / "db"
    summary = ingest_paths(
        [RASTERS / name for name in SCENES],
        ChipIndex(folder),
        tiny_model,
        ChipSpec(chip_px=16),
        progress=False,
    )
    assert not summary.failed
    return folder


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, ["detector", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_save_list_show_apply_delete(
    db: Path, tiny_checkpoint: Path, tiny_model: object, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    index = ChipIndex(db)
    ids = index.table.search().select(["chip_id"]).limit(None).to_arrow()["chip_id"].to_pylist()
    on_db = ["--db", str(db)]
    saved = invoke(
        "save",
        "bright",
        "bright roofs",
        "--positive",
        ids[0],
        "--positive",
        ids[1],
        "--negative",
        ids[-1],
        "--threshold",
        "0.3",
        *on_db,
        "--model",
        str(tiny_checkpoint),
    )
    assert "saved detector 'bright' (2 right, 1 wrong; threshold 0.3)" in saved

    [listed] = json.loads(invoke("list", *on_db, "--format", "json"))
    assert (listed["name"], listed["query"], listed["positives"], listed["negatives"]) == (
        "bright",
        "bright roofs",
        2,
        1,
    )
    assert listed["model_id"] == tiny_model.model_id and "bright roofs" in invoke("list", *on_db)

    shown = json.loads(invoke("show", "bright", *on_db))
    assert shown["positive_ids"] == ids[:2] and shown["negative_ids"] == [ids[-1]]
    assert shown["threshold"] == 0.3 and shown["dimensions"] == index.dim

    expected = apply_detector(index, get_detector(index, "bright"), threshold=0.2)
    assert expected
    collection = json.loads(invoke("apply", "bright", *on_db, "--threshold", "0.2", "--format", "geojson"))
    assert [f["properties"]["chip_id"] for f in collection["features"]] == [d.hit.chip_id for d in expected]
    assert all(f["properties"]["probability"] >= 0.2 for f in collection["features"])
    assert collection["metadata"]["query"] == "detector bright: bright roofs"
    assert collection["metadata"]["threshold"] == 0.2

    # one scene, by its path; nothing ingested since the detector was saved
    scene = RASTERS / SCENES[0]
    one = json.loads(invoke("apply", "bright", *on_db, "--threshold", "0.2", "--format", "json", "--scene", str(scene)))
    assert one and {d["scene_path"] for d in one} == {str(scene)}
    assert [d["chip_id"] for d in one] == [d.hit.chip_id for d in expected if d.hit.scene_path == str(scene)]
    assert json.loads(invoke("apply", "bright", *on_db, "--new", "--format", "json")) == []
    unknown = CliRunner().invoke(cli, ["detector", "apply", "bright", *on_db, "--scene", "nowhere.tif"])
    assert unknown.exit_code == 2 and "not a scene of" in unknown.output

    out = tmp_path / "bright.gpkg"
    invoke("apply", "bright", *on_db, "--threshold", "0.2", "--format", "gpkg", "--out", str(out))
    layers = {name for name, _ in pyogrio.list_layers(out)}
    placed = [d for d in expected if not d.hit.pixel_space]
    assert placed
    frame = gpd.read_file(out, layer="detections")
    assert len(frame) == len(placed) and frame.crs.to_epsg() == 4326
    assert sorted(frame["probability"]) == pytest.approx(sorted(round(d.probability, 6) for d in placed))
    assert ("detections_pixel_space" in layers) == (len(placed) < len(expected))
    again = CliRunner().invoke(
        cli, ["detector", "apply", "bright", *on_db, "--format", "gpkg", "--out", str(out)]
    )
    assert again.exit_code == 2 and "--overwrite" in again.output

    assert "deleted detector 'bright'" in invoke("delete", "bright", *on_db)
    assert "no detectors saved" in invoke("list", *on_db)
    with pytest.raises(SystemExit) as exit_info:
        main(["detector", "show", "bright", *on_db])
    assert exit_info.value.code == 1 and "no detector 'bright'" in capsys.readouterr().err
