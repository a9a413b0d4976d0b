"""Errors of the chip index."""

from __future__ import annotations

from remoteclip.errors import ExplorerError


class ChipIndexError(ExplorerError, RuntimeError):
    """The chip index (LanceDB table) is missing, belongs to another model, or cannot be written."""
