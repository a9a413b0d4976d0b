"""The Search page in a real browser on a library holding a black-bordered scene without a nodata flag: no hit
is a black chip (issue 16). ``streamlit run`` on a free port, Debian's chromium driven by Playwright."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.app_data import build_library
from tests.bordered_scene import TEXTURED, write_bordered_scene
from tests.browser import BROWSER_MARKS, rerun, serve_app, wait_idle
from tiles.grid import ChipSpec

pytestmark = [
    *BROWSER_MARKS,
    pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

SPEC = ChipSpec(chip_px=64)


@pytest.fixture(scope="module")
def app_url(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: object, tiny_checkpoint: Path
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("app")
    index = build_library(
        root / "db", tiny_model, [write_bordered_scene(root / "bordered.tif", SPEC.chip_px)], SPEC
    )
    assert index.count_rows() == len(TEXTURED)
    with serve_app(root, root / "db", tiny_checkpoint) as url:
        yield url


def test_no_hit_is_a_black_chip(page: object, app_url: str) -> None:
    page.goto(app_url)
    wait_idle(page)
    box = page.get_by_label("What are you looking for?")
    box.fill("dense forest")
    with rerun(page):
        box.press("Enter")
    anyway = page.get_by_role("button", name="Show the closest chips anyway")  # the tiny model matches weakly
    if anyway.count():
        with rerun(page):
            anyway.click()
    expect(page.get_by_text(re.compile(r"^\d+ hits$"))).to_have_text(f"{len(TEXTURED)} hits")
    thumbnails = page.locator('[data-testid="stImage"] img')
    expect(thumbnails).to_have_count(len(TEXTURED))
    for i in range(len(TEXTURED)):
        src = thumbnails.nth(i).get_attribute("src")
        pixels = np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")).astype(float)
        assert pixels.shape[:2] == (64, 64)  # a whole chip's frame, thumbnail at most 128 px
        assert pixels.std() > 20 and (pixels.max(axis=-1) < 10).mean() < 0.5, f"hit #{i + 1} is empty"
