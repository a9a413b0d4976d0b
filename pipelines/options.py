"""Options shared by several subcommands (like rasterio's ``rio/options.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = Path("data/library")


def output_format_option(*choices: str) -> Callable[[F], F]:
    """``--format`` with these choices, the first being the default."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=f"Output format; {' and '.join(choices[1:])} {'are' if len(choices) > 2 else 'is'} for scripts.",
    )


format_option = output_format_option("table", "json", "geojson")
db_option = click.option(
    "--db",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DB,
    show_default=True,
    help="LanceDB folder holding the chip index.",
)
model_option = click.option(
    "--model",
    "model_name",
    default=None,
    help="Model registry name, weights file or model folder (default: the project's own model).",
)
weights_option = click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Local weights file for --model (skips the Hub download).",
)
aoi_option = click.option(
    "--aoi",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="GeoJSON file (EPSG:4326) restricting results to an area of interest.",
)
device_option = click.option(
    "--device", default="cpu", show_default=True, help="Torch device for the model: cpu, cuda, cuda:1."
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing output files.")


def echo_json(payload: Any) -> None:
    """Print ``payload`` as JSON on stdout (for ``--format json``)."""
    click.echo(json.dumps(payload, indent=2, default=str))
