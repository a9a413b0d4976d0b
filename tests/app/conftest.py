"""Browser fixtures shared by the app's browser test modules: Debian's chromium, one tab per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS, COUNT_RUNS, WAIT_MS


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        expect.set_options(timeout=WAIT_MS)
        try:
            yield chromium
        finally:
            expect.set_options(timeout=None)  # Playwright's default again
            chromium.close()


@pytest.fixture(scope="module")
def requests_made() -> list[str]:
    """Every URL the module's tabs asked for (each module checks that none left localhost)."""
    return []


@pytest.fixture
def page(browser: object, requests_made: list[str]) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.add_init_script(COUNT_RUNS)
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
