"""Error hierarchy of RemoteCLIP Explorer.

Every error a user can cause derives from :class:`ExplorerError`; most also derive from the built-in
exception that best describes them, so callers may catch broadly (``ExplorerError``) or precisely
(``FileNotFoundError``, ``ValueError``). Messages name the bad value and how to fix it.
"""

from __future__ import annotations


class ExplorerError(Exception):
    """Root of every error RemoteCLIP Explorer raises on purpose."""


class InputError(ExplorerError, ValueError):
    """A user-supplied value (option, file content, geometry) is not acceptable."""


class RasterReadError(ExplorerError, OSError):
    """A raster or image file cannot be opened or read."""


class ModelNotFoundError(ExplorerError, FileNotFoundError):
    """A model name is not in the registry, or its weights are neither cached nor downloadable."""


class WeightsError(ExplorerError, ValueError):
    """A weights file is corrupt, unsafe, or does not fit the architecture."""


class ChipIndexError(ExplorerError, RuntimeError):
    """The chip index (LanceDB table) is missing, belongs to another model, or cannot be written."""
