"""The pages with the shipped model on real imagery, in a real browser: Search tells the truth, Count finds.

The library holds a georeferenced Joplin scene (0.6 m, residential) and UC Merced residential and tennis-court
images without coordinates (plain JPEGs). A query whose best hits are unreferenced says so and keeps their ranks;
each can be seen in its whole image; a nonsense query says there is no good match instead of listing chips.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.services.demo_library import DEMO_SPEC
from tests.app_data import build_library
from tests.browser import BROWSER_MARKS, draw_rectangle, is_local, map_frame, rerun, serve_app, wait_idle

pytestmark = BROWSER_MARKS
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

JOPLIN = "scenes/xview2_joplin/pre/tile_337-9136.tif"
#: UC Merced image ids (../shared/data/ucm-captions/images): dense residential (601-700) and tennis courts
UCM_IDS = (*range(601, 609), *range(2001, 2005))


@pytest.fixture(scope="module")
def app_url(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, default_model: object
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("search-app")
    images = [shared_data / "ucm-captions" / "images" / f"{i}.jpg" for i in UCM_IDS]
    build_library(
        root / "db", default_model, [shared_data / JOPLIN, *[p for p in images if p.is_file()]], DEMO_SPEC
    )
    with serve_app(root, root / "db", "explorer-small") as url:
        yield url


def search(page: object, text: str) -> None:
    box = page.get_by_label("What are you looking for?")
    box.fill(text)
    with rerun(page):
        box.press("Enter")


def test_unreferenced_hits_keep_their_ranks_and_are_shown_in_their_image(
    page: object, app_url: str, shots: Path
) -> None:
    page.goto(app_url)
    wait_idle(page)
    search(page, "tennis courts")
    note = page.get_by_text(re.compile(r"^\d+ of these \d+ hits \(#1\b.*images without coordinates"))
    expect(note).to_be_visible()  # the best hits are UC Merced JPEGs: said plainly, with their ranks
    expect(page.get_by_text(re.compile(r"^\d+ hits$"))).to_be_visible()
    expect(page.get_by_text("strong match").first).to_be_visible()
    wait_idle(page)
    page.screenshot(path=shots / "search-unreferenced.png", full_page=True)
    with rerun(page):
        page.get_by_role("button", name="In its image").first.click()
    expect(page.get_by_text(re.compile(r"^Hit #\d+ in its image$"))).to_be_visible()
    image_map = map_frame(page)
    expect(
        image_map.locator("img.leaflet-image-layer").first
    ).to_be_attached()  # the whole image, pixel space
    expect(image_map.locator("path.leaflet-interactive").first).to_be_visible()  # the chip outlined on it


def test_georeferenced_hits_are_drawn_with_their_ranks(page: object, app_url: str, shots: Path) -> None:
    page.goto(app_url)
    wait_idle(page)
    with rerun(page):
        page.get_by_text("The closest k, however weak").click()
    search(page, "houses with gardens")
    note = page.get_by_text(
        re.compile(r"^\d+ of these 24 hits .*The map shows the other \d+, with their ranks")
    )
    expect(note).to_be_visible()
    expect(
        map_frame(page).locator("path.leaflet-interactive").first
    ).to_be_visible()  # Joplin chips on the map
    wait_idle(page)
    page.screenshot(path=shots / "search.png", full_page=True)


def test_nonsense_says_there_is_no_good_match(page: object, app_url: str, shots: Path) -> None:
    page.goto(app_url)
    wait_idle(page)
    search(page, "asdfghjkl qwerty")
    expect(page.get_by_text(re.compile(r"^No good match for “asdfghjkl qwerty”"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^\d+ hits$"))).to_have_count(0)  # no list of k weak chips
    wait_idle(page)
    page.screenshot(path=shots / "search-no-match.png", full_page=True)
    with rerun(page):
        page.get_by_role("button", name="Show the closest chips anyway").click()
    expect(page.get_by_text(re.compile(r"^\d+ hits$"))).to_be_visible()
    expect(page.get_by_text("no match").first).to_be_visible()


def test_count_finds_buildings_with_the_locator(page: object, app_url: str, shots: Path) -> None:
    page.goto(f"{app_url}/count")
    wait_idle(page)
    choice = page.get_by_role("combobox", name="What to count")
    choice.click()
    page.keyboard.type("buildings")
    with rerun(page):
        page.keyboard.press("Enter")
    draw_rectangle(page)
    metric = page.get_by_test_id("stMetric").filter(has_text="Found buildings")
    expect(metric).to_have_text(
        re.compile(r"Found buildings\s*[1-9]\d*"), use_inner_text=True
    )  # Joplin houses
    expect(map_frame(page).locator("path.leaflet-interactive").nth(2)).to_be_visible()  # AOI, chips, objects
    wait_idle(page)
    page.screenshot(path=shots / "count.png", full_page=True)


def test_no_request_leaves_localhost(requests_made: list[str]) -> None:
    assert requests_made and [url for url in requests_made if not is_local(url)] == []


def test_the_label_layer_maps_the_library(page: object, app_url: str, shots: Path) -> None:
    page.goto(f"{app_url}/classify")
    wait_idle(page)
    with rerun(page):
        page.get_by_text("Label the library", exact=True).click()
    with rerun(page):
        page.get_by_text("Show imagery under the labels").click()
    with rerun(page):
        page.get_by_role("button", name="Label the chips").click()
    expect(page.get_by_role("heading", name="Classes")).to_be_visible()
    # the Joplin scene's 0.6 m chips cover its ground; the UC Merced images have no coordinates
    expect(page.get_by_test_id("stMetric").filter(has_text="Ground covered")).to_have_text(
        re.compile(r"0\.3\d+ km²"), use_inner_text=True
    )
    expect(page.get_by_test_id("stMetric").filter(has_text="Chips without coordinates")).not_to_have_text(
        re.compile(r"coordinates\s*0$"), use_inner_text=True
    )
    expect(map_frame(page).locator("img.leaflet-image-layer").first).to_be_attached()  # imagery under labels
    page.set_viewport_size({"width": 1440, "height": 1500})
    wait_idle(page)
    page.screenshot(path=shots / "label-layer.png")
