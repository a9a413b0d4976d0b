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

from app import maps
from pipelines.services.demo_library import DEMO_SPEC
from tests.app_data import build_library, write_scene
from tests.browser import (
    BROWSER_MARKS,
    MAP_FRAME,
    draw_rectangle,
    is_local,
    map_frame,
    rerun,
    serve_app,
    wait_idle,
)

pytestmark = BROWSER_MARKS
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

#: real neighbouring scenes (Joplin, 0.6 m) when the shared data is present, for screenshots worth keeping
REAL_SCENES = ("scenes/xview2_joplin/pre/tile_337-9136.tif", "scenes/xview2_joplin/pre/tile_337-10160.tif")


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
    with serve_app(root, root / "db", tiny_checkpoint) as url:
        yield url


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


def test_search_draws_hits_on_the_map(page: object, app_url: str) -> None:
    page.goto(app_url)
    wait_idle(page)
    with rerun(page):  # the tiny random model matches nothing well: ask for the closest chips however weak
        page.get_by_text("The closest k, however weak").click()
    box = page.get_by_label("What are you looking for?")
    box.fill("houses with <b>gardens</b>")
    with rerun(page):
        box.press("Enter")
    expect(page.get_by_text(re.compile(r"^\d+ hits$"))).to_be_visible()
    hits = map_frame(page).locator("path.leaflet-interactive")
    expect(hits.first).to_be_visible()
    expect(hits.nth(1)).to_be_attached()  # two at least: hit footprints plus merged regions
    expect(map_frame(page).locator("img.leaflet-image-layer").first).to_be_attached()  # imagery under hits
    expect(map_frame(page).locator("b", has_text="gardens")).to_have_count(0)  # the query is never HTML
    expect(page.get_by_text(re.compile("images without coordinates"))).to_have_count(0)  # all on the map

    like = page.get_by_text(re.compile(r"^Showing chips that look like hit #\d+ \(.+ · level \d · "))
    with rerun(page):
        click_a_hit_in_view(page)  # a hit on the map -> its panel: mark it, or more like it
    expect(page.get_by_text(re.compile(r"^Hit #\d+ on the map$"))).to_be_visible()
    with rerun(page):
        page.get_by_role("button", name="Right", exact=True).first.click()
    expect(page.get_by_text(re.compile(r"Marks for .*: 1 right, 0 wrong"))).to_be_visible()
    expect(map_frame(page).locator(f'path[stroke="{maps.RIGHT_COLOR}"]').first).to_be_attached()  # on the map
    with rerun(page):
        page.get_by_role("button", name="More like this").first.click()
    expect(like).to_be_visible()
    with rerun(page):
        page.get_by_role("button", name="Back to the text search").click()
    expect(like).to_have_count(0)
    expect(page.get_by_text(re.compile(r"^\d+ hits$"))).to_have_count(1)
    with rerun(page):
        page.get_by_role("button", name="More like this").first.click()  # the same from the ranked list
    expect(like).to_be_visible()
    expect(page.get_by_text(re.compile(r"^\d+ hits$"))).to_have_count(1)


def test_drawing_an_aoi_gives_a_count(page: object, app_url: str) -> None:
    page.goto(f"{app_url}/count")
    wait_idle(page)
    draw_rectangle(page)
    metric = page.get_by_test_id("stMetric").filter(has_text="Estimated airplanes")
    expect(metric).to_have_text(re.compile(r"Estimated airplanes\s*\d+"), use_inner_text=True)
    expect(page.get_by_text("Chips inside the AOI")).to_be_visible()
    shapes = map_frame(page).locator("path.leaflet-interactive")
    expect(shapes.nth(1)).to_be_visible()  # the AOI outline and the chip choropleth


def test_upload_gets_a_label(page: object, app_url: str, shots: Path, tmp_path: Path) -> None:
    image = tmp_path / "harbour <img src=x>.png"
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8).repeat(32, axis=0).repeat(32, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    image.write_bytes(buffer.getvalue())
    page.goto(f"{app_url}/classify")
    wait_idle(page)
    with rerun(page):
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(image))
    heading = page.get_by_text(re.compile(r"^Label: "))
    expect(heading).to_be_visible()
    # both read from the settled page, the same run's heading and text area
    assert heading.inner_text().removeprefix("Label: ") in page.locator("textarea").input_value()
    chips = map_frame(page).locator("path.leaflet-interactive")
    expect(chips.nth(3)).to_be_visible()
    expect(chips).to_have_count(4)  # 384 px -> 2 x 2 chips of 256 px
    wait_idle(page)
    page.screenshot(path=shots / "classify.png", full_page=True)


def test_library_lists_ingests_and_deletes_scenes(
    page: object, app_url: str, shots: Path, tmp_path: Path
) -> None:
    page.goto(f"{app_url}/library")
    wait_idle(page)
    scenes = page.get_by_test_id("stMetric").filter(has_text="Scenes")
    expect(scenes).to_have_text(re.compile(r"(^|\s)2\s*$"), use_inner_text=True)
    expect(map_frame(page).locator("img.leaflet-image-layer").first).to_be_visible()
    wait_idle(page)
    page.screenshot(path=shots / "library.png", full_page=True)

    extra = write_scene(tmp_path / "extra.tif", seed=7, origin=(310240.0, 2800000.0))
    page.get_by_label("Folder, file or glob on the server").fill(str(extra))
    with rerun(page):
        page.get_by_role("button", name="Ingest").click()
    expect(page.get_by_text(re.compile(r"^Added 1 scene, \d+ chips to the library"))).to_be_visible()
    expect(scenes).to_have_text(re.compile(r"(^|\s)3\s*$"), use_inner_text=True)

    wait_idle(page)  # the scene list to pick from must be this run's, the one with extra.tif in it
    doomed = page.get_by_role("combobox", name="Scene", exact=True)  # not the sidebar's map focus
    doomed.click()
    page.keyboard.type("extra.tif")
    page.keyboard.press("Enter")
    expect(doomed).to_have_value(re.compile(r"^extra\.tif "))
    confirm = page.get_by_test_id("stCheckbox").filter(has_text="Yes, remove its chips from the index")
    with rerun(page):
        confirm.get_by_text("Yes, remove its chips from the index").click()
    expect(confirm.locator('input[type="checkbox"]')).to_be_checked()
    expect(doomed).to_have_value(re.compile(r"^extra\.tif "))
    with rerun(page):
        page.get_by_role("button", name="Delete scene").click()
    expect(page.get_by_text(re.compile(r"^Deleted extra\.tif"))).to_be_visible()
    expect(scenes).to_have_text(re.compile(r"(^|\s)2\s*$"), use_inner_text=True)


def test_no_request_leaves_localhost(requests_made: list[str]) -> None:
    assert requests_made, "the browser tests above made no requests at all"
    assert [url for url in requests_made if not is_local(url)] == []
    assert any("/app/static/vendor/leaflet/leaflet.js" in url for url in requests_made)


def test_marking_hits_refines_saves_and_reruns_a_detector(page: object, app_url: str, shots: Path) -> None:
    page.goto(app_url)
    wait_idle(page)
    with rerun(page):
        page.get_by_text("The closest k, however weak").click()
    box = page.get_by_label("What are you looking for?")
    box.fill("houses")
    with rerun(page):
        box.press("Enter")
    for position, name in ((0, "Right"), (1, "Right"), (2, "Wrong")):  # hits #1 and #2 right, #3 wrong
        with rerun(page):
            page.get_by_role("button", name=name, exact=True).nth(position).click()
    expect(page.get_by_text("Marks for “houses”: 2 right, 1 wrong.", exact=False)).to_be_visible()
    with rerun(page):
        page.get_by_role("button", name="Refine with 3 marks").click()
    expect(page.get_by_text(re.compile(r"right with probability \d\.\d\d")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^At probability 0\.50 this detector accepts \d+ chips in the library"))).to_be_visible()
    page.screenshot(path=shots / "refine.png", full_page=True)
    page.get_by_label("Detector name").fill("houses, refined")
    with rerun(page):
        page.get_by_role("button", name="Save as detector").click()
    expect(page.get_by_text("Saved detector “houses, refined”", exact=False)).to_be_visible()
    with rerun(page):
        page.get_by_role("button", name=re.compile(r"^wrong: hit #")).click()  # take the wrong mark back
    expect(page.get_by_text("Marks for “houses”: 2 right, 0 wrong.", exact=False)).to_be_visible()
    expect(page.get_by_text(re.compile(r"right with probability")).first).to_be_visible()  # still refined
    with rerun(page):
        page.get_by_role("button", name="Clear the marks").click()
    expect(page.get_by_text(re.compile(r"right with probability"))).to_have_count(0)

    page.get_by_text("Run a saved detector").click()  # the saved detector runs again over the library
    expect(page.get_by_role("combobox", name="Saved detector")).to_have_value("houses, refined")
    with rerun(page):
        page.get_by_role("button", name="Run", exact=True).click()
    expect(
        page.get_by_text(re.compile(r"Detector “houses, refined” .* accepts \d+ chips at probability 0\.50"))
    ).to_be_visible()
    expect(page.get_by_text(re.compile(r"right with probability \d\.\d\d")).first).to_be_visible()
    expect(page.get_by_role("button", name="Right", exact=True)).to_have_count(0)  # detections are not marked
    page.screenshot(path=shots / "detector-run.png", full_page=True)
    with rerun(page):
        page.get_by_role("button", name="Back to the text search").click()
    expect(page.get_by_text(re.compile(r"right with probability"))).to_have_count(0)

    page.goto(f"{app_url}/library")  # the saved detector is listed in the library
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Detector", exact=True)).to_have_value("houses, refined")
