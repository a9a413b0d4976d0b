"""The Classify page's second mode in a real browser: label the library, see the legend, the classes' table
and the chips on the map; an AOI keeps fewer chips."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from shapely.geometry import box, mapping

from tests.app_data import build_library, write_scene
from tests.browser import BROWSER_MARKS, is_local, map_frame, rerun, serve_app, wait_idle
from tiles.index.chip_index import ChipIndex

pytestmark = BROWSER_MARKS
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> Path:
    root = tmp_path_factory.mktemp("label-app")
    build_library(root / "db", tiny_model, [write_scene(root / "a.tif", 0)])  # 16 + 4 chips
    return root / "db"


@pytest.fixture(scope="module")
def app_url(db: Path, tiny_checkpoint: Path) -> Iterator[str]:
    with serve_app(db.parent, db, tiny_checkpoint) as url:
        yield url


def chips_labelled(page: object) -> int:
    metric = page.get_by_test_id("stMetric").filter(has_text="Chips labelled")
    expect(metric).to_have_text(re.compile(r"Chips labelled\s*\d+"), use_inner_text=True)
    return int(metric.inner_text().split()[-1])


def test_label_the_library_shows_a_legend_a_table_and_the_map(
    page: object, app_url: str, db: Path, tmp_path: Path
) -> None:
    page.goto(f"{app_url}/classify")
    wait_idle(page)
    with rerun(page):
        page.get_by_text("Label the library", exact=True).click()
    expect(page.get_by_role("heading", name="Label the library")).to_be_visible()
    with rerun(page):
        page.get_by_role("button", name="Label the chips").click()
    assert chips_labelled(page) == 20
    legend = page.get_by_text("classes", exact=True)
    expect(legend).to_be_visible()
    for name in ("forest", "farmland", "residential area", "water", "industrial area", "uncertain"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(page.get_by_role("heading", name="Classes")).to_be_visible()
    expect(page.get_by_role("button", name="GeoPackage")).to_be_visible()
    expect(map_frame(page).locator("path.leaflet-interactive").nth(15)).to_be_visible()  # 16 level-1 chips

    # an AOI over a corner of the scene keeps only the chips in it
    minx, miny, maxx, maxy = ChipIndex(db).scenes()[0].extent
    aoi = tmp_path / "corner.geojson"
    aoi.write_text(json.dumps(mapping(box(minx, miny, (minx + maxx) / 2, (miny + maxy) / 2))))
    with rerun(page):
        page.locator('[data-testid="stFileUploader"] input[type="file"]').last.set_input_files(str(aoi))
    assert 0 < chips_labelled(page) < 20


def test_no_request_leaves_localhost(page: object, app_url: str, requests_made: list[str]) -> None:
    assert requests_made and [url for url in requests_made if not is_local(url)] == []
