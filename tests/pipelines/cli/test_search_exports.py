"""``remoteclip-explorer search --format geojson|csv|gpkg``: the app's exports from the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli
from pipelines.ingest.local import ingest_paths
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
#: two georeferenced scenes and a PNG without a CRS (its chips are pixel-space)
SCENES = ["rgb_4326.tif", "pan_uint16_32616.tif", "plain.png"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> Path:
    folder = tmp_path_factory.mktemp("search_exports") / "db"
    summary = ingest_paths(
        [RASTERS / name for name in SCENES], ChipIndex(folder), tiny_model, ChipSpec(chip_px=16), progress=False
    )
    assert not summary.failed
    return folder


@pytest.fixture(scope="module")
def base(db: Path, tiny_checkpoint: Path) -> list[str]:
    """Every chip of the library, ranked for one query (k above the chip count)."""
    return ["search", "ships in harbor", "--db", str(db), "--model", str(tiny_checkpoint), "-k", "100"]


def test_csv_and_geojson_record_the_query_and_model(base: list[str], tiny_model: object) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, [*base, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and {r["query"] for r in rows} == {"ships in harbor"}
    assert {r["model_id"] for r in rows} == {tiny_model.model_id}
    flat = [r for r in rows if r["pixel_space"] == "True"]
    assert flat and all(r["centroid_lon"] == r["centroid_lat"] == "" for r in flat)
    assert all(r["centroid_col"] and r["centroid_row"] for r in flat)

    collection = json.loads(runner.invoke(cli, [*base, "--format", "geojson"]).stdout)
    assert collection["metadata"]["query"] == "ships in harbor"
    assert len(collection["features"]) == len(rows)
    assert sum(f["geometry"] is None for f in collection["features"]) == len(flat)


def test_gpkg_goes_to_a_file_and_only_with_overwrite_over_one(base: list[str], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "hits.gpkg"
    refused = runner.invoke(cli, [*base, "--format", "gpkg"])
    assert refused.exit_code == 2 and "--out" in refused.output
    assert runner.invoke(cli, [*base, "--format", "gpkg", "--out", str(out)]).exit_code == 0
    located = gpd.read_file(out, layer="hits")
    flat = pyogrio.read_dataframe(out, layer="hits_pixel_space")
    assert located.crs.to_epsg() == 4326 and len(located) and len(flat)
    assert not located["pixel_space"].any() and flat["pixel_space"].all()
    assert set(located["query"]) == set(flat["query"]) == {"ships in harbor"}

    again = runner.invoke(cli, [*base, "--format", "gpkg", "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert runner.invoke(cli, [*base, "--format", "csv", "--out", str(out), "--overwrite"]).exit_code == 0
    assert out.read_text().startswith("rank,score,")
