"""The root of RemoteCLIP Explorer's errors, and the model library's own.

Every error a user can cause derives from :class:`ExplorerError`; most also derive from the built-in
exception that best describes them, so callers may catch broadly (``ExplorerError``) or precisely
(``FileNotFoundError``, ``ValueError``). Messages name the bad value and how to fix it.
Each layer keeps its errors beside the code that raises them (as ``rasterio/errors.py``):
:class:`tiles.errors.RasterReadError` with tiling, :class:`tiles.index.errors.ChipIndexError` with the index.
The CLI turns any :class:`ExplorerError` into one line.
"""

from __future__ import annotations


class ExplorerError(Exception):
    """Root of every error RemoteCLIP Explorer raises on purpose."""


class InputError(ExplorerError, ValueError):
    """A user-supplied value (option, file content, geometry) is not acceptable."""


class ModelNotFoundError(ExplorerError, FileNotFoundError):
    """A model name is not in the registry, or its weights are neither cached nor downloadable."""


class WeightsError(ExplorerError, ValueError):
    """A weights file is corrupt, unsafe, or does not fit the architecture."""
