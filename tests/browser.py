"""A real ``streamlit run`` on a free port and Debian's chromium driven by Playwright, for browser tests.

The fixtures (``browser``, ``page``, ``shots``, ``requests_made``) are in ``tests/app/conftest.py``; this module has
the server and the helpers that wait for Streamlit to settle. A module's ``app_url`` fixture builds its own
library and calls :func:`serve_app`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from pipelines.services.settings import AppSettings, streamlit_command

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}
#: every browser test module's ``pytestmark``
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium missing: run `make browser`"),
]
MAP_FRAME = 'iframe[title="streamlit_folium.st_folium"]'
WAIT_MS = 60_000
#: how long Streamlit must stay idle to count as settled: the map component may start a run of its own
QUIET_MS = 500
#: counts the runs the page starts (stApp's ``data-test-script-state`` turning ``running``), every one of
#: them: a short run can begin and end between two polls, a MutationObserver sees each attribute change
COUNT_RUNS = """
window.__streamlitRuns = 0;
new MutationObserver((mutations) => {
  for (const m of mutations) {
    if (m.target.getAttribute("data-test-script-state") === "running") window.__streamlitRuns += 1;
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-test-script-state"]});
"""
#: Streamlit is idle: connected, its script not running and no stale element of an earlier run left on the
#: page -- and has stayed so for ``quietMs``. (Not the status widget: it shows "Running..." only once a run
#: has lasted 500 ms, and stays up with a "File change" prompt when the app's source is edited meanwhile.)
SETTLED = """
(quietMs) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const busy = !app
    || app.getAttribute("data-test-connection-state") !== "CONNECTED"
    || app.getAttribute("data-test-script-state") !== "notRunning"
    || document.querySelector('[data-stale="true"]') !== null;
  const now = performance.now();
  if (busy || window.__streamlitBusyAt === undefined) window.__streamlitBusyAt = now;
  return !busy && now - window.__streamlitBusyAt >= quietMs;
}
"""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def streamlit_server(env: Mapping[str, str], log_path: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """Run the app with ``env`` until the block ends; yields its base URL once it answers its health check."""
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(streamlit_command(port), env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://localhost:{port}"
            _wait_healthy(f"{base}/_stcore/health", proc, timeout_s, log_path)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(
        f"streamlit did not answer {url} within {timeout_s} s:\n{log_path.read_text()[-3000:]}"
    )


def is_local(url: str) -> bool:
    """Whether ``url`` stays on this machine (data:, blob: and about: URLs do)."""
    parsed = urlparse(url)
    if parsed.scheme in ("data", "blob", "about", "chrome-extension"):
        return True
    return (parsed.hostname or "") in LOCAL_HOSTS


@contextmanager
def serve_app(root: Path, db_dir: Path, model: Path | str) -> Iterator[str]:
    """The app on the library at ``db_dir`` with ``model`` (a folder or a registry name); yields its base URL.

    Uploads go under ``root``; the shared data is hidden, so the app shows only this library.
    """
    settings = AppSettings(db_dir=db_dir, model_name=str(model), upload_dir=root / "uploads")
    env = {**os.environ, **settings.to_env(), "REMOTECLIP_SHARED_DATA": str(root / "no-shared-data")}
    with streamlit_server(env, root / "streamlit.log") as url:
        yield url


def map_frame(page: object) -> object:
    """The (newest) map: while Streamlit reruns, the old map's iframe lingers next to the new one."""
    return page.locator(MAP_FRAME).last.content_frame


def wait_idle(page: object) -> None:
    """Wait until Streamlit has settled: no run under way, none of an earlier run's elements left.

    Streamlit keeps the previous run's elements on the page (stale) until the new run has finished, so a
    page read mid-run can see the old state, the new one or both: read it, or assert on it, only after this.
    """
    page.evaluate("delete window.__streamlitBusyAt")
    page.wait_for_function(SETTLED, arg=QUIET_MS, polling=50)


@contextmanager
def rerun(page: object) -> Iterator[None]:
    """Wait for the run that the actions inside the block start, and until the page settles after it."""
    wait_idle(page)  # an action taken mid-run joins that run instead of starting one of its own
    runs = page.evaluate("window.__streamlitRuns")
    yield
    page.wait_for_function("(runs) => window.__streamlitRuns > runs", arg=runs, polling=50)
    wait_idle(page)


def draw_rectangle(page: object) -> None:
    """Draw a rectangle over the middle of the map with leaflet-draw (the mouse, as a person does) and wait for
    the run it starts."""
    map_frame(page).locator("a.leaflet-draw-draw-rectangle").click()
    area = page.locator(MAP_FRAME).last.bounding_box()
    cx, cy = area["x"] + area["width"] / 2, area["y"] + area["height"] / 2
    page.mouse.move(cx - area["width"] * 0.2, cy - area["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(cx + area["width"] * 0.15, cy + area["height"] * 0.15, steps=8)
    with rerun(page):
        page.mouse.up()
