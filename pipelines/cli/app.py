"""``remoteclip-explorer app``: make sure the library exists, then serve the Streamlit app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from pipelines.cli.options import backend_option, db_option, model_option, weights_option
from pipelines.services.settings import AppSettings, streamlit_command


@click.command("app")
@db_option
@model_option
@weights_option
@backend_option
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
def app(
    db: Path | str, model_name: str | None, weights: Path | None, backend: str | None, port: int, demo: bool
) -> None:
    """Serve the map app on http://localhost:PORT (search, count, classify, library)."""
    if not isinstance(db, Path):
        raise click.UsageError(
            f"the app serves a library on local disk, not {db}; search a library in an object store with "
            "`remoteclip-explorer search QUERY --db URI`"
        )
    settings = AppSettings(db_dir=db, model_name=model_name, weights=weights, backend=backend)
    if demo:
        from pipelines.services.demo_library import ensure_demo_library

        summary = ensure_demo_library(settings)
        click.echo(summary.describe(), err=True)
    click.echo(f"RemoteCLIP Explorer: http://localhost:{port}", err=True)
    completed = subprocess.run(streamlit_command(port), env={**os.environ, **settings.to_env()}, check=False)
    sys.exit(completed.returncode)
