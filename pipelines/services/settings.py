"""Serving the app: its settings (the library, the model, the upload folder, carried to the Streamlit process in
the environment) and the ``streamlit run`` command line that keeps it offline."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from remoteclip.errors import ExplorerError, InputError

#: the library folder the CLI and the app use unless told otherwise
DEFAULT_DB = Path("data/library")

#: Environment variables that carry the settings into the Streamlit process.
ENV_DB = "REMOTECLIP_DB"
ENV_MODEL = "REMOTECLIP_MODEL"
ENV_WEIGHTS = "REMOTECLIP_WEIGHTS"
#: what runs the model's towers (auto, torch, onnx, onnx-int8); ``remoteclip.load_model`` reads it as its default backend
ENV_BACKEND = "REMOTECLIP_BACKEND"
ENV_UPLOADS = "REMOTECLIP_UPLOADS"
#: where the map tile server listens (host, port: 0 is any free port) and the base URL browsers reach it at
ENV_TILE_HOST = "REMOTECLIP_TILE_HOST"
ENV_TILE_PORT = "REMOTECLIP_TILE_PORT"
ENV_TILE_URL = "REMOTECLIP_TILE_URL"

@dataclass(frozen=True)
class AppSettings:
    """The library folder, the model, where uploads are stored and where the map tile server listens."""

    db_dir: Path
    model_name: str | None = None
    weights: Path | None = None
    upload_dir: Path | None = None
    #: auto, torch or onnx (None: ``REMOTECLIP_BACKEND`` as the environment has it, else auto)
    backend: str | None = None
    #: the map tile server's bind address and port (None: 127.0.0.1 and a free port), and the URL that
    #: browsers reach it at (None: http://HOST:PORT, with localhost for a wildcard address)
    tile_host: str | None = None
    tile_port: int | None = None
    tile_url: str | None = None

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
        if self.backend:
            env[ENV_BACKEND] = self.backend
        if self.tile_host:
            env[ENV_TILE_HOST] = self.tile_host
        if self.tile_port is not None:
            env[ENV_TILE_PORT] = str(self.tile_port)
        if self.tile_url:
            env[ENV_TILE_URL] = self.tile_url
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
            backend=env.get(ENV_BACKEND) or None,
            tile_host=env.get(ENV_TILE_HOST) or None,
            tile_port=_port(env.get(ENV_TILE_PORT)),
            tile_url=env.get(ENV_TILE_URL) or None,
        )


def _port(text: str | None) -> int | None:
    """``REMOTECLIP_TILE_PORT`` as a port number (None when unset)."""
    if not text:
        return None
    if not text.isdigit() or int(text) > 65535:
        raise InputError(f"{ENV_TILE_PORT} must be a port number (0 for any free port), not {text!r}")
    return int(text)


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
        raise ExplorerError("the 'app' package is not installed; run `make venv` first")
    return Path(next(iter(spec.submodule_search_locations))) / "Home.py"


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
