"""``remoteclip-explorer app``: make sure the library exists, then serve the Streamlit app."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import click

from pipelines.cli.options import db_option, model_option, weights_option
from pipelines.services.settings import AppSettings

#: Streamlit options that keep the app offline and serve the vendored map assets (as .streamlit/config.toml)
STREAMLIT_FLAGS: tuple[str, ...] = (
    "--server.headless",
    "true",
    "--server.enableStaticServing",
    "true",
    "--browser.gatherUsageStats",
    "false",
    "--browser.serverAddress",  # set, so a headless server does not look up its external IP on the internet
    "localhost",
    "--client.toolbarMode",
    "minimal",
)


def home_script() -> Path:
    """Path of the Streamlit entry script ``app/Home.py`` (found without importing the app)."""
    spec = importlib.util.find_spec("app")
    if spec is None or not spec.submodule_search_locations:
        raise click.ClickException("the 'app' package is not installed; run `make venv` first")
    return Path(list(spec.submodule_search_locations)[0]) / "Home.py"


def streamlit_command(port: int, script: Path | None = None) -> list[str]:
    """The ``streamlit run`` command line for ``port``."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script or home_script()),
        "--server.port",
        str(port),
        *STREAMLIT_FLAGS,
    ]


@click.command("app")
@db_option
@model_option
@weights_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    envvar="STREAMLIT_SERVER_PORT",
    default=8501,
    show_default=True,
    help="Port to serve on (also read from STREAMLIT_SERVER_PORT).",
)
@click.option(
    "--demo/--no-demo",
    default=True,
    show_default=True,
    help="Ingest the demo scenes first when the library is empty.",
)
def app(db: Path | str, model_name: str | None, weights: Path | None, port: int, demo: bool) -> None:
    """Serve the map app on http://localhost:PORT (search, count, classify, library)."""
    if not isinstance(db, Path):
        raise click.UsageError(
            f"the app serves a library on local disk, not {db}; search a library in an object store with "
            "`remoteclip-explorer search QUERY --db URI`"
        )
    settings = AppSettings(db_dir=db, model_name=model_name, weights=weights)
    if demo:
        from pipelines.services.demo_library import ensure_demo_library

        summary = ensure_demo_library(settings)
        click.echo(summary.describe(), err=True)
    click.echo(f"RemoteCLIP Explorer: http://localhost:{port}", err=True)
    completed = subprocess.run(streamlit_command(port), env={**os.environ, **settings.to_env()}, check=False)
    sys.exit(completed.returncode)
