"""Where a chip index lives: a local folder or an object-store URI (no heavy imports: the CLI reads it)."""

from __future__ import annotations

from pathlib import Path


def is_object_store_uri(location: str | Path) -> bool:
    """Whether ``location`` names an object store (``s3://``, ``gs://``, ``az://``...), not a folder."""
    scheme, sep, _ = str(location).partition("://")
    return bool(sep) and scheme.lower() != "file"
