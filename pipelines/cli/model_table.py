"""Which table of a library a command reads: the one holding the vectors of the model it is given.

A library two models embedded keeps each model's vectors in a table of its own (``chips``, then
``chips-<model id>``; :func:`tiles.index.chip_index.index_for_model`). Commands that embed a query (``label``
with typed classes, ``detector save``) read the table of the model they load; commands that only read stored
vectors (``detector apply``, ``label`` with detectors alone, ``prune-empty``) take ``--model`` to name the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from tiles.index.chip_index import ChipIndex, index_for_model, library_models

F = TypeVar("F", bound=Callable[..., Any])


def stored_model_option(default: str) -> Callable[[F], F]:
    """``--model`` of a command that embeds nothing: the model whose stored vectors it reads (``default``
    says which without it)."""
    return click.option(
        "--model",
        "model_name",
        default=None,
        metavar="MODEL_ID|NAME",
        help="Whose vectors to read in a library two models embedded: a model id it holds (as `detector list` "
        f"and `ingest --format json` print it), or the --model (with --weights) they were ingested with "
        f"[default: {default}].",
    )


def library_index(
    db: Path | str, model_id: str | None, storage_options: Mapping[str, str] | None = None
) -> ChipIndex:
    """The table of ``model_id``'s vectors in the library at ``db`` (:func:`index_for_model`, as ``search``
    reads); its first table for ``None``. A model whose vectors the library lacks is refused by the first
    table's model check (naming the model it holds and how to embed the library for another), so no command
    reads or deletes another model's chips."""
    if model_id is not None and model_id in library_models(db, storage_options):
        return index_for_model(db, model_id, storage_options)
    first = ChipIndex(db, storage_options=storage_options)
    if model_id is not None:
        first.check_model(model_id)
    return first


def stored_model_id(
    db: Path | str,
    model_name: str | None,
    weights: Path | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> str | None:
    """The model id ``--model``/``--weights`` name for a command that embeds nothing: a model id the library
    holds as it is, else the id of the model loaded from them (on the CPU, PyTorch: nothing is exported);
    ``None`` without ``--model``."""
    if model_name is None:
        return None
    if weights is None and model_name in library_models(db, storage_options):
        return model_name
    from remoteclip.factory import load_model  # torch: only when a name must be loaded for its id

    return load_model(model_name, weights=weights, backend="torch").model_id
