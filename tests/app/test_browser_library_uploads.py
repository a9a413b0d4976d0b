"""The Library page in a real browser: imagery uploaded from the browser, several files at once.

Two GeoTIFFs and a text file go through the page's uploader in one go: the progress bar finishes, the scene
count goes up by two, both files are listed, the text file gets an error naming it and no success banner
speaks for it; the same upload again adds nothing. Every request the browser makes stays on localhost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_data import build_library, write_scene
from tests.browser import BROWSER_MARKS, is_local, rerun, serve_app, wait_idle

pytestmark = BROWSER_MARKS
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

UPLOADER = '[data-testid="stFileUploader"] input[type="file"]'


@pytest.fixture(scope="module")
def app_url(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: object, tiny_checkpoint: Path
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("app")
    build_library(root / "db", tiny_model, [write_scene(root / "first.tif", 0)])
    with serve_app(root, root / "db", tiny_checkpoint) as url:
        yield url


def upload_and_ingest(page: object, files: list[Path]) -> None:
    page.locator(UPLOADER).set_input_files([str(path) for path in files])
    for path in files:
        expect(page.get_by_test_id("stFileChipName").filter(has_text=path.name)).to_be_visible()
    with rerun(page):
        page.get_by_role("button", name="Ingest").click()


def test_uploading_two_geotiffs_and_a_text_file(
    page: object, app_url: str, shots: Path, tmp_path: Path
) -> None:
    north = write_scene(tmp_path / "north_field.tif", seed=5, origin=(305120.0, 2800000.0))
    south = write_scene(tmp_path / "south_field.tif", seed=6, origin=(300000.0, 2794880.0))
    notes = tmp_path / "field notes.txt"
    notes.write_text("visited the north field on Tuesday\n" * 20)
    page.goto(f"{app_url}/library")
    wait_idle(page)
    scenes = page.get_by_test_id("stMetric").filter(has_text="Scenes")
    expect(scenes).to_have_text(re.compile(r"(^|\s)1\s*$"), use_inner_text=True)
    uploads = page.get_by_text(re.compile(r"^Uploads are stored on the server in .*uploads"))
    expect(uploads).to_have_count(1)  # where uploads go, said once

    upload_and_ingest(page, [north, notes, south])
    expect(page.get_by_test_id("stProgress")).to_contain_text("Ingest finished: 2 scenes")
    expect(scenes).to_have_text(re.compile(r"(^|\s)3\s*$"), use_inner_text=True)
    table = page.get_by_test_id("stDataFrame")
    for name in ("north_field", "south_field"):
        expect(table).to_contain_text(name)
    error = page.get_by_test_id("stAlertContentError").filter(has_text="field notes.txt")
    expect(error).to_have_text(re.compile(r"^field notes\.txt is text, not an image; upload a GeoTIFF"))
    success = page.get_by_test_id("stAlertContentSuccess")
    expect(success).to_have_count(1)
    expect(success).to_have_text(re.compile(r"^Added 2 scenes, \d+ chips to the library"))
    expect(success.filter(has_text="field notes")).to_have_count(0)
    expect(page.get_by_text("b'")).to_have_count(0)  # no Python bytes anywhere
    expect(page.get_by_test_id("stFileChipName")).to_have_count(0)  # a fresh uploader
    wait_idle(page)
    page.screenshot(path=shots / "library-uploads.png", full_page=True)

    upload_and_ingest(page, [north, south])  # the same files again: stored once, nothing added
    expect(page.get_by_test_id("stAlertContentInfo")).to_have_text(
        "2 files already in the library with these settings, not added again"
    )
    expect(page.get_by_test_id("stAlertContentSuccess")).to_have_count(0)
    expect(scenes).to_have_text(re.compile(r"(^|\s)3\s*$"), use_inner_text=True)


def test_a_wrong_server_path_is_an_error(page: object, app_url: str) -> None:
    page.goto(f"{app_url}/library")
    wait_idle(page)
    page.get_by_label("folder, file or glob on the server").fill("/no/such/folder/*.tif")
    with rerun(page):
        page.get_by_role("button", name="Ingest").click()
    expect(page.get_by_test_id("stAlertContentError").first).to_have_text(
        "Nothing was ingested: no file could be ingested (see below)"
    )
    expect(page.get_by_test_id("stAlertContentError").nth(1)).to_have_text(
        "/no/such/folder/*.tif: no raster files found there"
    )
    expect(page.get_by_test_id("stAlertContentSuccess")).to_have_count(0)


def test_no_request_leaves_localhost(requests_made: list[str]) -> None:
    assert requests_made, "the browser tests above made no requests at all"
    assert [url for url in requests_made if not is_local(url)] == []
