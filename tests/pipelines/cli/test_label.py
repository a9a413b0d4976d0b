"""``remoteclip-explorer label`` on a tiny real library: the per-class table, GeoJSON and GeoPackage read back."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from click.testing import CliRunner
from shapely.geometry import box, mapping

from pipelines.cli.main import cli, main
from pipelines.ingest.local import ingest_paths
from pipelines.services.detectors import make_detector, save_detector
from pipelines.services.refine import fit_library_probe
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SCENES = ["rgb_4326.tif", "rgbn_3395.tif", "plain.png"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> Path:
    folder = tmp_path_factory.mktemp("label_cli") / "db"
    index = ChipIndex(folder)
    ingest_paths([RASTERS / n for n in SCENES], index, tiny_model, ChipSpec(chip_px=16, levels=(1, 2)), progress=False)
    ids = index.table.search().select(["chip_id"]).limit(None).to_arrow()["chip_id"].to_pylist()
    probe = fit_library_probe(index, tiny_model, "roofs", ids[:2], ids[-2:])
    save_detector(index, make_detector("roofs", "roofs", probe, ids[:2], ids[-2:], tiny_model.model_id, 0.5))
    return folder


def label(*args: str) -> str:
    result = CliRunner().invoke(cli, ["label", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_label_prints_classes_and_writes_geojson_and_gpkg(db: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    common = ["--db", str(db), "--model", str(tiny_checkpoint), "--classes", "forest, farmland, water"]
    summary = json.loads(label(*common, "--detector", "roofs", "--format", "json"))
    names = [c["name"] for c in summary["classes"]]
    assert names == ["forest", "farmland", "water", "roofs", "uncertain"]
    assert sum(c["chips"] for c in summary["classes"]) == summary["chips"] == ChipIndex(db).count_rows()
    assert sum(c["area_km2"] for c in summary["classes"]) == pytest.approx(summary["covered_km2"])
    assert summary["pixel_space_chips"] > 0 and summary["calibrated"] is False

    printed = label(*common)
    assert printed.splitlines()[0].split()[:3] == ["class", "kind", "chips"]
    assert "forest" in printed and printed.splitlines()[-1].startswith("total")

    geojson, gpkg = tmp_path / "labels.geojson", tmp_path / "labels.gpkg"
    label(*common, "--out", str(geojson))
    label(*common, "--out", str(gpkg))
    collection = json.loads(geojson.read_text())
    assert collection["metadata"]["query"] == "label layer: forest, farmland, water"
    read = gpd.read_file(geojson)
    placed = read[read.geometry.notna()]
    assert set(placed["label"]) <= {"forest", "farmland", "water", "uncertain"}
    assert placed["area_km2"].sum() == pytest.approx(summary["covered_km2"], rel=1e-6)
    layers = [name for name, _ in pyogrio.list_layers(gpkg)]
    assert layers[:2] == ["labels", "labels_pixel_space"]
    frame = gpd.read_file(gpkg, layer="labels")
    assert frame.crs.to_epsg() == 4326 and len(frame) == len(placed)
    assert frame["area_km2"].sum() == pytest.approx(summary["covered_km2"], rel=1e-6)


def test_label_inside_an_aoi_with_a_detector_only(db: Path, tmp_path: Path) -> None:
    scene = next(s for s in ChipIndex(db).scenes() if s.scene_path.endswith("rgb_4326.tif"))
    minx, miny, maxx, maxy = scene.extent
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps(mapping(box(minx, miny, (minx + maxx) / 2, maxy))))
    summary = json.loads(label("--db", str(db), "--detector", "roofs", "--aoi", str(aoi), "--format", "json"))
    assert [c["name"] for c in summary["classes"]] == ["roofs", "uncertain"]
    assert 0 < summary["chips"] < ChipIndex(db).count_rows() and summary["pixel_space_chips"] == 0
    assert summary["calibrated"] is None


def test_label_refuses_bad_input(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["label", "--db", str(db), "--classes", "forest"])
    assert exit_info.value.code == 1 and "fewer than two labels" in capsys.readouterr().err
    taken = tmp_path / "taken.geojson"
    taken.write_text("{}")
    refused = CliRunner().invoke(cli, ["label", "--db", str(db), "--detector", "roofs", "--out", str(taken)])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    odd = CliRunner().invoke(cli, ["label", "--db", str(db), "--detector", "roofs", "--out", str(tmp_path / "x.txt")])
    assert odd.exit_code == 2 and "suffix" in odd.output
