"""The Change page in a real browser: two dates of one place compared, the planted change ranked first.

The tiny library holds one place twice: a 1024 px scene at 10 m in UTM 18N (2020) and the same ground a year
later, reprojected to EPSG:4326, with one grid cell of it painted over. The page defaults to those two dates,
compares them with a progress bar, draws the heat layer over a before/after swipe and ranks the painted cell
first (read back from the GeoJSON it exports). With the shared data, the Joplin tornado pair (4 scenes before,
6 after) is compared for "destroyed buildings" with the shipped model, for the README's screenshot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds
from shapely.geometry import box, shape

from pipelines.services.demo_library import DEMO_SPEC
from tests.app_data import build_library
from tests.browser import BROWSER_MARKS, is_local, map_frame, rerun, serve_app, wait_idle
from tiles.grid import ChipSpec

pytestmark = BROWSER_MARKS
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

SCENE_PX = 1024
GSD_M = 10.0
#: the comparison's cells are 256 px of (about) the finer date's 10 m, their edges on multiples of the cell
#: size: the scene's origin is on one, so each cell is (about) a 256 px block of the before scene
CELL_M = 256 * GSD_M
ORIGIN = (120 * CELL_M, 1100 * CELL_M)
UTM = "EPSG:32618"
#: the painted cell (row, col) of the scene's 4 x 4
PLANTED = (1, 2)
JOPLIN = "scenes/xview2_joplin"


def texture(seed: int) -> np.ndarray:
    """3 x 1024 x 1024 uint8 of 32 px random blocks (no zeros: 0 is the after scene's nodata)."""
    blocks = np.random.default_rng(seed).integers(1, 255, (3, SCENE_PX // 32, SCENE_PX // 32), dtype=np.uint8)
    return blocks.repeat(32, axis=1).repeat(32, axis=2)


def planted_footprint() -> object:
    """The painted cell in lon/lat."""
    row, col = PLANTED
    minx, maxy = ORIGIN[0] + col * CELL_M, ORIGIN[1] - row * CELL_M
    return box(*transform_bounds(UTM, "EPSG:4326", minx, maxy - CELL_M, minx + CELL_M, maxy))


def write_dates(folder: Path) -> list[Path]:
    """The before scene (UTM) and the after scene (EPSG:4326, a little finer) with the cell ``PLANTED`` painted
    with stripes."""
    before_data = texture(0)
    before = folder / "town_2020-06-01.tif"
    transform = from_origin(*ORIGIN, GSD_M, GSD_M)
    profile = {"driver": "GTiff", "width": SCENE_PX, "height": SCENE_PX, "count": 3, "dtype": "uint8"}
    with rasterio.open(before, "w", **profile, crs=UTM, transform=transform) as dst:
        dst.write(before_data)
    after_data = before_data.copy()
    row, col = PLANTED
    stripes = np.where((np.arange(256) // 16) % 2 == 0, 250, 10).astype(np.uint8)
    after_data[:, row * 256 : (row + 1) * 256, col * 256 : (col + 1) * 256] = stripes[None, None, :]
    bounds = rasterio.transform.array_bounds(SCENE_PX, SCENE_PX, transform)
    wgs_transform, width, height = calculate_default_transform(
        UTM, "EPSG:4326", SCENE_PX, SCENE_PX, *bounds, resolution=0.00007
    )
    warped = np.zeros((3, height, width), dtype=np.uint8)
    reproject(
        after_data,
        warped,
        src_transform=transform,
        src_crs=UTM,
        dst_transform=wgs_transform,
        dst_crs="EPSG:4326",
        resampling=Resampling.nearest,
        dst_nodata=0,
    )
    after = folder / "town_2021-06-01.tif"
    wgs = {**profile, "width": width, "height": height, "nodata": 0}
    with rasterio.open(after, "w", **wgs, crs="EPSG:4326", transform=wgs_transform) as dst:
        dst.write(warped)
    return [before, after]


@pytest.fixture(scope="module")
def app_url(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: object, tiny_checkpoint: Path
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("change_app")
    build_library(root / "db", tiny_model, write_dates(root), ChipSpec(chip_px=256, levels=(1,)))
    with serve_app(root, root / "db", tiny_checkpoint) as url:
        yield url


def multiselect(page: object, label: str) -> object:
    return page.get_by_test_id("stMultiSelect").filter(has_text=label)


def compare(page: object) -> None:
    with rerun(page):
        page.get_by_role("button", name="Compare").click()


def download(page: object, label: str, folder: Path) -> Path:
    """Click the first download button labelled ``label``; the file it gives, saved under ``folder``."""
    with page.expect_download() as info:
        page.get_by_test_id("stDownloadButton").filter(has_text=label).first.click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_the_planted_change_ranks_first_over_a_swipe_of_the_two_dates(
    page: object, app_url: str, tmp_path: Path
) -> None:
    page.goto(f"{app_url}/change")
    wait_idle(page)
    expect(multiselect(page, "Before")).to_contain_text("town_2020-06-01.tif · 2020-06-01")
    expect(multiselect(page, "After")).to_contain_text("town_2021-06-01.tif · 2021-06-01")
    frame = map_frame(page)
    expect(
        frame.locator("input.leaflet-sbs-range")
    ).to_be_attached()  # the swipe, before anything is compared
    compare(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="Cells compared")).to_contain_text("16")
    expect(page.get_by_text(re.compile(r"^Compared in \d+\.\d s"))).to_be_visible()
    expect(page.get_by_text("change (z)")).to_be_visible()  # the heat layer's legend
    expect(page.get_by_text("The most changed cells")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^#1 · score"))).to_be_visible()
    expect(page.get_by_test_id("stImage")).to_have_count(24)  # 12 cells, before and after
    frame = map_frame(page)
    expect(frame.locator("path.leaflet-interactive")).to_have_count(16)  # one heat cell each
    clip = frame.locator(".leaflet-imagery-before-pane").evaluate("(pane) => pane.style.clip")
    assert clip.startswith("rect("), clip  # the swipe clips the before date to the left of its slider
    expect(frame.locator(".leaflet-imagery-after-pane img.leaflet-image-layer")).to_have_count(1)

    cells = json.loads(download(page, "GeoJSON", tmp_path).read_text())
    assert cells["metadata"]["query"] == "any change"
    first = cells["features"][0]
    assert first["properties"]["rank"] == 1
    assert planted_footprint().contains(shape(first["geometry"]).centroid)
    with rerun(page):
        page.get_by_role("button", name="Show 4 more").click()
    expect(page.get_by_test_id("stImage")).to_have_count(32)
    with rerun(page):
        page.get_by_role("button", name="Zoom to", exact=True).first.click()
    expect(map_frame(page).locator("path.leaflet-interactive")).to_have_count(17)  # the cell outlined too


def test_a_comparison_that_cannot_be_made_says_why_and_keeps_the_query(page: object, app_url: str) -> None:
    page.goto(f"{app_url}/change")
    wait_idle(page)
    box_ = page.get_by_role("textbox", name="What to look for (optional)")
    box_.fill("new buildings")
    with rerun(page):
        box_.press("Enter")
    expect(page.get_by_text("appeared (more like it after)")).to_be_visible()
    with rerun(page):
        multiselect(page, "After").get_by_role("button", name=re.compile("Clear all|Remove")).first.click()
    compare(page)
    expect(page.get_by_text(re.compile("change needs scenes of two dates"))).to_be_visible()
    expect(page.get_by_role("textbox", name="What to look for (optional)")).to_have_value("new buildings")


@pytest.fixture(scope="module")
def joplin_url(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, default_model: object
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("change_joplin")
    scenes = sorted((shared_data / JOPLIN).glob("*/*.tif"))
    if len(scenes) < 2:
        pytest.skip(f"the Joplin scenes are not in {shared_data / JOPLIN}")
    build_library(root / "db", default_model, scenes, DEMO_SPEC)
    with serve_app(root, root / "db", "explorer-small") as url:
        yield url


def test_joplin_destroyed_buildings_with_the_shipped_model(
    page: object, joplin_url: str, shots: Path
) -> None:
    page.goto(f"{joplin_url}/change")
    wait_idle(page)
    expect(multiselect(page, "Before")).to_contain_text("· pre")
    expect(multiselect(page, "After")).to_contain_text("· post")
    with rerun(page):
        page.get_by_role("radio", name="destroyed buildings").click()  # an example
    expect(page.get_by_role("textbox", name="What to look for (optional)")).to_have_value(
        "destroyed buildings"
    )
    compare(page)
    expect(page.get_by_text("Where “destroyed buildings” appeared")).to_be_visible()
    seconds = float(
        re.search(r"Compared in (\d+\.\d) s", page.get_by_text("Compared in").inner_text()).group(1)
    )
    assert seconds < 10, seconds  # the whole overlap on the CPU
    expect(map_frame(page).locator(".leaflet-imagery-after-pane img.leaflet-image-layer")).to_have_count(6)
    page.set_viewport_size({"width": 1440, "height": 1900})  # the map and the first ranked cells
    wait_idle(page)
    page.screenshot(path=shots / "change.png")


def test_no_request_leaves_localhost(requests_made: list[str]) -> None:
    assert requests_made and [url for url in requests_made if not is_local(url)] == []
