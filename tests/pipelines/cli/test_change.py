"""``remoteclip-explorer change`` on a real scene and its planted copy: table, JSON, exports, thumbnails."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner
from PIL import Image

from pipelines.cli.main import cli
from tests.change_pair import PlantedPair, write_planted_pair


@pytest.fixture(scope="module")
def pair(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> PlantedPair:
    return write_planted_pair(shared_data, tmp_path_factory.mktemp("change_cli"))


def run(pair: PlantedPair, model: Path, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["change", "--before", str(pair.before), "--after", str(pair.after.parent), "--model", str(model), *args]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_table_names_the_grid_and_ranks_the_cells(pair: PlantedPair, tiny_checkpoint: Path) -> None:
    out = run(pair, tiny_checkpoint, "--top", "5")
    assert "1 before and 1 after scenes" in out and "EPSG:26915" in out and "ranked by any change" in out
    ranks = [line.split()[0] for line in out.splitlines() if line.strip()[:1].isdigit() and "before" not in line]
    assert ranks == ["1", "2", "3", "4", "5"]


def test_json_geojson_gpkg_and_thumbnails(pair: PlantedPair, tiny_checkpoint: Path, tmp_path: Path) -> None:
    data = json.loads(run(pair, tiny_checkpoint, "--format", "json", "--query", "a harbor", "--top", "3"))
    assert data["direction"] == "appeared" and data["query"] == "a harbor"
    assert [c["rank"] for c in data["cells"]] == [1, 2, 3]
    assert 0.6 * 256 < data["grid"]["cell_m"] < 0.65 * 256  # the after date (0.61 m) is the coarser
    geojson, gpkg, thumbs = tmp_path / "change.geojson", tmp_path / "change.gpkg", tmp_path / "thumbs"
    run(pair, tiny_checkpoint, "--format", "geojson", "--out", str(geojson), "--thumbnails", str(thumbs), "--top", "2")
    collection = json.loads(geojson.read_text())
    assert len(collection["features"]) == data["cells_compared"]
    assert collection["metadata"]["query"] == "any change"
    names = sorted(p.name for p in thumbs.iterdir())
    assert len(names) == 4 and names[0].startswith("01_r") and names[0].endswith("_after.jpg")
    assert all(Image.open(p).size[0] == 128 for p in thumbs.iterdir())
    run(pair, tiny_checkpoint, "--format", "gpkg", "--out", str(gpkg), "--direction", "disappeared", "--query", "a forest")
    frame = gpd.read_file(gpkg, layer="change")
    assert len(frame) == data["cells_compared"] and frame.crs.to_epsg() == 4326
    assert list(frame["rank"]) == sorted(frame["rank"])


def test_usage_errors_say_what_to_fix(pair: PlantedPair, tiny_checkpoint: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["change", "--before", str(pair.before), "--model", str(tiny_checkpoint)]
    result = runner.invoke(cli, [*base, "--after", str(pair.after), "--direction", "appeared"])
    assert result.exit_code == 2 and "needs --query" in result.output
    result = runner.invoke(cli, [*base, "--after", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
