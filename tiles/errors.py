"""Errors of tiling: reading rasters and images into chips."""

from __future__ import annotations

from remoteclip.errors import ExplorerError


class RasterReadError(ExplorerError, OSError):
    """A raster or image file cannot be opened or read."""
