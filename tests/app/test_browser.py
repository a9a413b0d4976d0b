"""The app in a real browser: ``streamlit run`` on a free port, Debian's chromium driven by Playwright.

Type a query -> footprints on the map; draw an AOI with the mouse -> a count; upload an image -> a label;
the Library lists the scenes. Every request the browser makes must stay on localhost. Screenshots go to
``REMOTECLIP_SCREENSHOTS`` when set (``docs/screenshots`` refreshes the README's), else to a temp folder.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.services.demo_library import DEMO_SPEC
from pipelines.services.settings import AppSettings
from tests.app_data import build_library, write_scene
from tests.browser import CHROMIUM, CHROMIUM_ARGS, is_local, streamlit_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium missing: run `make browser`"),
]
playwright_api = pytest.importorskip("playwright.sync_api")

#: real neighbouring scenes (Joplin, 0.6 m) when the shared data is present, for screenshots worth keeping
REAL_SCENES = ("scenes/xview2_joplin/pre/tile_337-9136.tif", "scenes/xview2_joplin/pre/tile_337-10160.tif")
MAP_FRAME = 'iframe[title="streamlit_folium.st_folium"]'
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def app_url(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: object, tiny_checkpoint: Path
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("app")
    shared = Path(
        os.environ.get("REMOTECLIP_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
    )
    if all((shared / rel).is_file() for rel in REAL_SCENES):
        build_library(root / "db", tiny_model, [shared / rel for rel in REAL_SCENES], DEMO_SPEC)
    else:
        scenes = [
            write_scene(root / "a.tif", 0),
            write_scene(root / "b.tif", 1, origin=(305120.0, 2800000.0)),
        ]
        build_library(root / "db", tiny_model, scenes)
    settings = AppSettings(db_dir=root / "db", model_name=str(tiny_checkpoint), upload_dir=root / "uploads")
    env = {**os.environ, **settings.to_env(), "REMOTECLIP_SHARED_DATA": str(root / "no-shared-data")}
    with streamlit_server(env, root / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def requests_made() -> list[str]:
    return []


@pytest.fixture
def page(browser: object, requests_made: list[str]) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    tab.on("request", lambda request: requests_made.append(request.url))
    yield tab
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("REMOTECLIP_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def map_frame(page: object) -> object:
    """The (newest) map: while Streamlit reruns, the old map's iframe lingers next to the new one."""
    return page.locator(MAP_FRAME).last.content_frame


def wait_idle(page: object) -> None:
    """Wait until Streamlit has finished the current run (its status widget disappears)."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached")


def click_a_hit_in_view(page: object) -> None:
    """Click the lowest-ranked hit whose centre is inside the visible map (hits on other scenes are not)."""
    view = page.locator(MAP_FRAME).last.bounding_box()
    paths = map_frame(page).locator("path.leaflet-interactive")
    for i in reversed(range(paths.count())):
        box = paths.nth(i).bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        if view["x"] < cx < view["x"] + view["width"] and view["y"] < cy < view["y"] + view["height"]:
            paths.nth(i).click()
            return
    raise AssertionError("no hit footprint lies inside the visible map")


def test_search_draws_hits_on_the_map(page: object, app_url: str, shots: Path) -> None:
    page.goto(app_url)
    box = page.get_by_label("What are you looking for?")
    box.fill("houses with <b>gardens</b>")
    box.press("Enter")
    page.get_by_text(re.compile(r"^\d+ hits$")).wait_for()
    hits = map_frame(page).locator("path.leaflet-interactive")
    hits.first.wait_for()
    assert hits.count() >= 2  # hit footprints plus merged regions
    assert map_frame(page).locator("img.leaflet-image-layer").count() >= 1  # the imagery under the hits
    assert map_frame(page).locator("b", has_text="gardens").count() == 0  # the query is never HTML
    assert page.get_by_text(re.compile("hits is georeferenced")).count() == 0  # these hits are on the map
    wait_idle(page)
    page.screenshot(path=shots / "search.png", full_page=True)

    click_a_hit_in_view(page)  # a hit on the map -> more like this
    page.get_by_text("Showing chips that look like chip").wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Back to the text search").click()
    page.get_by_text("Showing chips that look like chip").wait_for(state="detached")
    wait_idle(page)
    page.get_by_role("button", name="More like this").first.click()  # the same from the ranked list
    page.get_by_text("Showing chips that look like chip").wait_for()
    assert page.get_by_text(re.compile(r"^\d+ hits$")).count() == 1


def test_drawing_an_aoi_gives_a_count(page: object, app_url: str, shots: Path) -> None:
    page.goto(f"{app_url}/count")
    frame = map_frame(page)
    frame.locator("a.leaflet-draw-draw-rectangle").click()
    area = page.locator(MAP_FRAME).last.bounding_box()
    cx, cy = area["x"] + area["width"] / 2, area["y"] + area["height"] / 2
    page.mouse.move(cx - area["width"] * 0.2, cy - area["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(cx + area["width"] * 0.15, cy + area["height"] * 0.15, steps=8)
    page.mouse.up()
    metric = page.get_by_test_id("stMetric").filter(has_text="Estimated airplanes")
    metric.wait_for()
    assert re.search(r"Estimated airplanes\s*\d+", metric.inner_text())
    page.get_by_text("Chips inside the AOI").wait_for()
    wait_idle(page)
    shapes = map_frame(page).locator("path.leaflet-interactive")
    shapes.nth(1).wait_for()  # the AOI outline and the chip choropleth
    wait_idle(page)
    page.screenshot(path=shots / "count.png", full_page=True)


def test_upload_gets_a_label(page: object, app_url: str, shots: Path, tmp_path: Path) -> None:
    image = tmp_path / "harbour <img src=x>.png"
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8).repeat(32, axis=0).repeat(32, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    image.write_bytes(buffer.getvalue())
    page.goto(f"{app_url}/classify")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(image))
    heading = page.get_by_text(re.compile(r"^Label: "))
    heading.wait_for()
    wait_idle(page)
    assert heading.inner_text().removeprefix("Label: ") in page.locator("textarea").input_value()
    chips = map_frame(page).locator("path.leaflet-interactive")
    chips.nth(3).wait_for()
    assert chips.count() == 4  # 384 px -> 2 x 2 chips of 256 px
    wait_idle(page)
    page.screenshot(path=shots / "classify.png", full_page=True)


def test_library_lists_ingests_and_deletes_scenes(
    page: object, app_url: str, shots: Path, tmp_path: Path
) -> None:
    page.goto(f"{app_url}/library")
    scenes = page.get_by_test_id("stMetric").filter(has_text="Scenes")
    scenes.wait_for()
    assert scenes.inner_text().split()[-1] == "2"
    map_frame(page).locator("img.leaflet-image-layer").first.wait_for()
    wait_idle(page)
    page.screenshot(path=shots / "library.png", full_page=True)

    extra = write_scene(tmp_path / "extra.tif", seed=7, origin=(310240.0, 2800000.0))
    page.get_by_label("Folder, file or glob on the server").fill(str(extra))
    page.get_by_role("button", name="Ingest").click()
    page.get_by_text(re.compile(r"^Ingested 1 scenes, \d+ chips")).wait_for()
    assert scenes.inner_text().split()[-1] == "3"

    page.get_by_test_id("stSelectbox").last.click()  # the sidebar's map focus comes first
    page.keyboard.type("extra.tif")
    page.keyboard.press("Enter")
    page.get_by_text("Yes, remove its chips from the index").click()
    page.get_by_role("button", name="Delete scene").click()
    page.get_by_text(re.compile(r"^Deleted extra\.tif")).wait_for()
    assert scenes.inner_text().split()[-1] == "2"


def test_no_request_leaves_localhost(requests_made: list[str]) -> None:
    assert requests_made, "the browser tests above made no requests at all"
    assert [url for url in requests_made if not is_local(url)] == []
    assert any("/app/static/vendor/leaflet/leaflet.js" in url for url in requests_made)
