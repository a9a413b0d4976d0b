"""The map in a real browser: the vendored world basemap offline, a large scene's full-resolution tiles from the
local tile server once zoomed in, "Zoom to" a scene, and every request on localhost.

The library holds a 4096 px scene at 0.3 m near Metz (64 chips) and a small one in the Bahamas (1 chip): too far
apart to fit together, so maps open on the large one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from app.maps import WORLD_URL
from tests.app_data import build_library, write_scene
from tests.browser import BROWSER_MARKS, MAP_FRAME, is_local, rerun, serve_app, wait_idle
from tests.tile_data import ZOOM, pattern, write_aligned
from tiles.grid import ChipSpec

pytestmark = BROWSER_MARKS
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

BIG_PX = 4096
#: tile URLs of the local tile server: /tiles/{key}/{z}/{x}/{y}.png
TILE_URL = re.compile(r"/tiles/[0-9a-f]{16}/(\d+)/\d+/\d+\.png$")


@pytest.fixture(scope="module")
def app_url(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: object, tiny_checkpoint: Path
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("map_app")
    big = write_aligned(root / "metz.tif", pattern(BIG_PX, BIG_PX))
    far = write_scene(root / "bahamas.tif", 1)
    build_library(root / "db", tiny_model, [big, far], ChipSpec(chip_px=512, levels=(1,)))
    with serve_app(root, root / "db", tiny_checkpoint) as url:
        yield url


def leaflet(page: object) -> object:
    """The newest map's frame, where ``window.map`` is its Leaflet map."""
    return page.locator(MAP_FRAME).last.element_handle().content_frame()


def zoom_in_to(frame: object, zoom: int) -> None:
    """Click Leaflet's zoom-in button until the map is at ``zoom`` (a click mid-animation is dropped: again)."""
    for _ in range(3 * zoom):
        now = frame.evaluate("() => window.map.getZoom()")
        if now >= zoom:
            return
        frame.locator("a.leaflet-control-zoom-in").click()
        with contextlib.suppress(playwright_api.TimeoutError):
            frame.wait_for_function("(z) => window.map.getZoom() > z", arg=now, timeout=5000)
    raise AssertionError(f"the map did not zoom in to {zoom}")


def test_basemap_is_drawn_offline_and_zooming_in_loads_full_resolution_tiles(
    page: object, app_url: str, shots: Path, requests_made: list[str]
) -> None:
    page.goto(f"{app_url}/library")
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"lie far apart: the map opens on metz\.tif"))).to_be_visible()
    frame = leaflet(page)
    countries = frame.locator(".leaflet-basemap-pane path")
    expect(countries.first).to_be_attached()
    assert countries.count() > 100
    world = [url for url in requests_made if url.endswith(WORLD_URL)]
    assert world and all(urlparse(url).hostname == "localhost" for url in world)

    frame.wait_for_function("() => window.map && window.map.getZoom() > 10")
    start = frame.evaluate("() => window.map.getZoom()")
    assert start < ZOOM  # the map opens on the whole scene, not on its pixels
    zoom_in_to(frame, ZOOM)
    native = frame.locator(f'.leaflet-imagery-pane img.leaflet-tile-loaded[src*="/{ZOOM}/"]')
    expect(native.first).to_be_visible()
    assert native.first.evaluate("(img) => img.naturalWidth") == 256
    tiles = [url for url in requests_made if TILE_URL.search(url)]
    assert {int(TILE_URL.search(url).group(1)) for url in tiles} >= {ZOOM}
    assert all(urlparse(url).hostname == "127.0.0.1" for url in tiles)
    page.screenshot(path=shots / "map-native-zoom.png", full_page=True)


def test_zoom_to_moves_the_count_map_to_another_scene(page: object, app_url: str) -> None:
    page.goto(f"{app_url}/count")
    wait_idle(page)
    frame = leaflet(page)
    frame.wait_for_function("() => window.map && window.map.getZoom() > 10")
    assert 48 < frame.evaluate("() => window.map.getCenter().lat") < 50  # the scene with most chips
    zoom_to = page.get_by_role("combobox", name="Zoom to")
    zoom_to.click()
    page.keyboard.type("bahamas.tif")
    with rerun(page):
        page.keyboard.press("Enter")
    frame = leaflet(page)
    frame.wait_for_function("() => window.map && window.map.getCenter().lat < 30")
    centre = frame.evaluate("() => window.map.getCenter()")
    assert 24 < centre["lat"] < 27 and -78 < centre["lng"] < -76


def test_no_request_leaves_localhost(requests_made: list[str]) -> None:
    assert requests_made, "the browser tests above made no requests at all"
    assert [url for url in requests_made if not is_local(url)] == []
