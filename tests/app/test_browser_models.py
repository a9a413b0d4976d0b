"""The sidebar's model picker in a real browser.

A library embedded by the tiny CLIP the app is started with; in an offline Hub cache a tiny Git-RSCLIP (a SigLIP
folder), the other registry models not cached. The picker pre-selects the library's model and marks each other
one cached / not cached; choosing Git-RSCLIP says the library must be embedded again for it and gives the
command; a model that is not cached says why it cannot be loaded; the library's model again, and the page is
as before. Every request stays on localhost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_data import build_library, write_scene
from tests.browser import BROWSER_MARKS, is_local, rerun, serve_app, wait_idle
from tests.remoteclip.zoo_checkpoints import hub_repo, write_siglip

pytestmark = BROWSER_MARKS
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def app_url(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: object, tiny_checkpoint: Path
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("app-models")
    build_library(root / "db", tiny_model, [write_scene(root / "scene.tif", 0)])
    with pytest.MonkeyPatch.context() as patch:
        write_siglip(hub_repo(root / "hf", "lcybuaa/Git-RSCLIP", patch))  # sets HF_HOME and HF_HUB_OFFLINE
        with serve_app(root, root / "db", tiny_checkpoint) as url:
            yield url


def choose(page: object, label: str) -> None:
    picker = page.get_by_role("combobox", name="Model")
    picker.click()
    with rerun(page):
        page.get_by_role("option", name=label, exact=True).click()
    expect(picker).to_have_value(label)


def test_model_picker(page: object, app_url: str, shots: Path) -> None:
    page.goto(f"{app_url}/library")
    wait_idle(page)
    picker = page.get_by_role("combobox", name="Model")
    expect(picker).to_have_value("tiny-clip · started with")
    picker.click()
    options = page.get_by_role("option")
    expect(options.filter(has_text="explorer-small · shipped")).to_have_count(1)
    expect(options.filter(has_text="Git-RSCLIP · cached")).to_have_count(1)
    expect(options.filter(has_text="GeoRSCLIP-ViT-B-32 · not cached")).to_have_count(1)
    page.keyboard.press("Escape")
    warning = page.get_by_test_id("stAlertContentWarning")
    expect(warning).to_have_count(0)

    choose(page, "Git-RSCLIP · cached")
    expect(warning).to_have_count(1)
    expect(warning).to_contain_text(re.compile(r"embedded by tiny-clip@\w{12}, not by Git-RSCLIP@\w{12}"))
    expect(warning).to_contain_text(re.compile(r"remoteclip-explorer ingest SCENES --db \S+db --model Git-RSCLIP"))
    expect(page.get_by_test_id("stMetric").filter(has_text="Scenes")).to_have_text(
        re.compile(r"(^|\s)0\s*$"), use_inner_text=True  # no vectors of this model in the library yet
    )
    wait_idle(page)
    page.screenshot(path=shots / "model-picker.png", full_page=True)

    choose(page, "GeoRSCLIP-ViT-B-32 · not cached")
    error = page.get_by_test_id("stAlertContentError")
    expect(error).to_contain_text("This model cannot be loaded: weights 'ckpt/RS5M_ViT-B-32.pt'")
    expect(error).to_contain_text("--model GeoRSCLIP-ViT-B-32 --weights PATH")

    choose(page, "tiny-clip · started with")
    expect(warning).to_have_count(0)
    expect(error).to_have_count(0)
    expect(page.get_by_test_id("stMetric").filter(has_text="Scenes")).to_have_text(
        re.compile(r"(^|\s)1\s*$"), use_inner_text=True
    )


def test_no_request_leaves_localhost(requests_made: list[str]) -> None:
    assert requests_made, "the browser test above made no requests at all"
    assert [url for url in requests_made if not is_local(url)] == []
