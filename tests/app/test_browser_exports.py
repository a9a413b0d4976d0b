"""The pages' downloads in a real browser, opened as a GIS opens them (geopandas / pyogrio).

Search: run a query, download the CSV and the GeoPackage of the hits; Count: upload an AOI, download the
per-chip RemoteCount estimates (the tiny test model has no object locator). The library holds a PNG without a
CRS beside two GeoTIFFs, so some hits are pixel-space: they must never get lon/lat nor a place in a map layer.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from PIL import Image
from shapely.geometry import box

from tests.app_data import SCENE_PX, build_library, write_scene
from tests.browser import BROWSER_MARKS, is_local, rerun, serve_app, wait_idle
from tiles.index.chip_index import ChipIndex

pytestmark = BROWSER_MARKS
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

QUERY = "ships in a harbor"
CONTEXT_COLUMNS = {"query", "model_id", "exported_at", "threshold", "aoi_wkt", "app_version"}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> Path:
    """Two GeoTIFFs side by side and a PNG without a CRS (its chips are pixel-space), ingested."""
    root = tmp_path_factory.mktemp("exports")
    plain = root / "plain.png"
    rng = np.random.default_rng(5)
    blocks = rng.integers(0, 255, (SCENE_PX // 32, SCENE_PX // 32, 3), dtype=np.uint8)
    Image.fromarray(blocks.repeat(32, axis=0).repeat(32, axis=1)).save(plain)
    scenes = [write_scene(root / "a.tif", 0), write_scene(root / "b.tif", 1, origin=(305120.0, 2800000.0))]
    build_library(root / "db", tiny_model, [*scenes, plain])
    return root


@pytest.fixture(scope="module")
def app_url(library: Path, tiny_checkpoint: Path) -> Iterator[str]:
    with serve_app(library, library / "db", tiny_checkpoint) as url:
        yield url


@pytest.fixture(scope="module")
def aoi(library: Path) -> shapely.Polygon:
    """The western half of the first scene, in lon/lat."""
    first = next(s for s in ChipIndex(library / "db").scenes() if s.scene_path.endswith("a.tif"))
    minx, miny, maxx, maxy = first.extent
    return box(minx, miny, (minx + maxx) / 2, maxy)


def download(page: object, label: str, folder: Path) -> Path:
    """Click the first download button labelled ``label``; the file it gives, saved under ``folder``."""
    button = page.get_by_test_id("stDownloadButton").filter(has_text=label).first
    with page.expect_download() as info:
        button.click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_search_hits_download_as_csv_and_geopackage(
    page: object, app_url: str, tmp_path: Path, tiny_model: object
) -> None:
    page.goto(app_url)
    wait_idle(page)
    with rerun(page):  # the tiny model's hits match no query well: show them however weak
        page.get_by_text("The closest k, however weak").click()
    box = page.get_by_label("What are you looking for?")
    box.fill(QUERY)
    with rerun(page):
        box.press("Enter")
    heading = page.get_by_text(re.compile(r"^\d+ hits$"))
    expect(heading).to_be_visible()
    shown = int(heading.inner_text().split()[0])

    table = download(page, "CSV", tmp_path)
    assert table.name == "hits-ships-in-a-harbor.csv"
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["rank"]) for r in rows] == list(range(1, shown + 1))
    assert {r["query"] for r in rows} == {QUERY} and {r["model_id"] for r in rows} == {tiny_model.model_id}
    flat = [r for r in rows if r["scene"] == "plain.png"]
    assert flat, "no hit of the PNG among the top hits: the pixel-space checks below need one"
    for row in rows:
        assert (row["centroid_lon"] == "") == (row["scene"] == "plain.png") == (row["pixel_space"] == "True")
        assert float(row["centroid_col"]) == int(row["col_off"]) + int(row["width"]) / 2

    package = download(page, "GeoPackage", tmp_path)
    assert package.name == "hits-ships-in-a-harbor.gpkg"
    located = gpd.read_file(package, layer="hits")
    unplaced = pyogrio.read_dataframe(package, layer="hits_pixel_space")
    assert located.crs.to_epsg() == 4326 and len(located) + len(unplaced) == shown
    assert set(unplaced["scene"]) == {"plain.png"} and unplaced["centroid_lon"].isna().all()
    assert located.total_bounds[0] < -70 and located.total_bounds[1] > 25  # UTM 18N, lon/lat
    assert CONTEXT_COLUMNS <= set(located.columns) and set(located["query"]) == {QUERY}
    meta = pyogrio.read_dataframe(package, layer="metadata")
    assert dict(zip(meta["key"], meta["value"], strict=True))["model_id"] == tiny_model.model_id


def test_count_chips_download_with_the_object_and_aoi(
    page: object, app_url: str, aoi: shapely.Polygon, tmp_path: Path, tiny_model: object
) -> None:
    upload = tmp_path / "aoi.geojson"
    upload.write_text(json.dumps(shapely.geometry.mapping(aoi)))
    page.goto(f"{app_url}/count")
    wait_idle(page)
    with rerun(page):
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
    chips = page.get_by_test_id("stMetric").filter(has_text="Chips in the AOI")
    expect(chips).to_have_text(re.compile(r"Chips in the AOI\s*\d+"), use_inner_text=True)
    counted = int(re.findall(r"\d+", chips.inner_text())[-1])
    grid = page.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    headers = grid.locator('th[role="columnheader"]')  # the grid's accessible copy, inside its canvas
    expect(headers.first).to_be_attached()
    assert headers.all_text_contents() == [  # where the chip is first, the hash id last
        "scene",
        "level",
        "window",
        "count",
        "mean count",
        "share inside",
        "contribution",
        "chip id",
    ]

    table = download(page, "CSV", tmp_path)
    assert table.name == "chip-counts-airplanes.csv"
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == counted and list(rows[0])[:4] == ["count", "expected_count", "inside", "contribution"]
    assert {r["query"] for r in rows} == {"airplanes"} and {r["threshold"] for r in rows} == {""}
    assert {r["aoi_wkt"] for r in rows} == {rows[0]["aoi_wkt"]}
    assert shapely.from_wkt(rows[0]["aoi_wkt"]).equals_exact(aoi, tolerance=1e-7)
    assert all(shapely.from_wkt(r["footprint_wkt"]).intersects(aoi) for r in rows)
    assert {r["scene"] for r in rows} == {"a.tif"}

    package = download(page, "GeoPackage", tmp_path)
    frame = gpd.read_file(package, layer="chip_counts")
    assert frame.crs.to_epsg() == 4326 and len(frame) == counted
    assert sorted(frame["chip_id"]) == sorted(r["chip_id"] for r in rows)
    assert set(frame["model_id"]) == {tiny_model.model_id}
    assert dict(pyogrio.list_layers(package).tolist()) == {"chip_counts": "Polygon", "metadata": None}


def test_no_request_leaves_localhost(requests_made: list[str]) -> None:
    assert requests_made, "the browser tests above made no requests at all"
    assert [url for url in requests_made if not is_local(url)] == []
