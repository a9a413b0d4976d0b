"""A real ``streamlit run`` on a free port and Debian's chromium driven by Playwright, for browser tests."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from pipelines.services.settings import streamlit_command

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
