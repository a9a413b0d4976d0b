"""The app's settings: the library, the model and the upload folder, carried to the Streamlit process in the
environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: the library folder the CLI and the app use unless told otherwise
DEFAULT_DB = Path("data/library")

#: Environment variables that carry the settings into the Streamlit process.
ENV_DB = "REMOTECLIP_DB"
ENV_MODEL = "REMOTECLIP_MODEL"
ENV_WEIGHTS = "REMOTECLIP_WEIGHTS"
ENV_UPLOADS = "REMOTECLIP_UPLOADS"

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
