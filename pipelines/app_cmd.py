"""``remoteclip-explorer app``: make sure the library exists, then serve the Streamlit app."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from pipelines.options import DEFAULT_DB, db_option, model_option, weights_option

#: Environment variables that carry the settings into the Streamlit process.
ENV_DB = "REMOTECLIP_DB"
ENV_MODEL = "REMOTECLIP_MODEL"
ENV_WEIGHTS = "REMOTECLIP_WEIGHTS"
ENV_UPLOADS = "REMOTECLIP_UPLOADS"

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


@dataclass(frozen=True)
class AppSettings:
    """The library folder, the model and where uploads are stored."""

    db_dir: Path
    model_name: str | None = None
    weights: Path | None = None
    upload_dir: Path | None = None

    @property
    def uploads(self) -> Path:
        """Upload folder (next to the library unless set)."""
        return self.upload_dir or self.db_dir.parent / "uploads"

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables for the Streamlit process."""
        env = {ENV_DB: str(self.db_dir), ENV_UPLOADS: str(self.uploads)}
        if self.model_name:
            env[ENV_MODEL] = self.model_name
        if self.weights:
            env[ENV_WEIGHTS] = str(self.weights)
        return env

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AppSettings:
        """Settings read back from the environment (defaults: ``data/library``, the default model)."""
        env = os.environ if environ is None else environ
        weights = env.get(ENV_WEIGHTS)
        uploads = env.get(ENV_UPLOADS)
        return cls(
            db_dir=Path(env.get(ENV_DB, DEFAULT_DB)),
            model_name=env.get(ENV_MODEL) or None,
            weights=Path(weights) if weights else None,
            upload_dir=Path(uploads) if uploads else None,
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
        from pipelines.demo_library import ensure_demo_library

        summary = ensure_demo_library(settings)
        click.echo(summary.describe(), err=True)
    click.echo(f"RemoteCLIP Explorer: http://localhost:{port}", err=True)
    completed = subprocess.run(streamlit_command(port), env={**os.environ, **settings.to_env()}, check=False)
    sys.exit(completed.returncode)
