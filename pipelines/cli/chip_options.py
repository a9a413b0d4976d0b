"""The option of the empty-chip rule, shared by ``ingest`` and ``prune-empty`` (which imports no model code)."""

from __future__ import annotations

import click

from tiles.grid import ChipSpec

min_valid_option = click.option(
    "--min-valid",
    type=click.FloatRange(0, 1),
    default=ChipSpec().min_valid,
    show_default=True,
    help="Skip chips whose share of valid pixels (not nodata, transparent or a black/white border) is lower.",
)
