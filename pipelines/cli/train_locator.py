"""``remoteclip-explorer train-locator``: train the object locator behind ``count``.

The work is :func:`pipelines.training.locator.train_locator`; this module parses options and prints figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipelines.cli.options import backend_option, device_option, model_option, weights_option
from pipelines.training.build import write_manifest
from pipelines.training.locator import LocatorTrainConfig, manifest_rows, train_locator
from remoteclip.factory import load_model


@click.command("train-locator")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("../shared/data"),
    show_default=True,
    help="The shared data folder (its boxes, points and masks; held-out images unread).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Locator weights to write (.safetensors; its card goes beside it as .json).",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Passes over the chips."
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Queries per step."
)
@click.option(
    "--max-chips-per-dataset",
    type=click.IntRange(min=1),
    default=None,
    help="Cap on chips per dataset, for a quick run.",
)
@model_option
@weights_option
@device_option
@backend_option
def train_locator_command(
    data: Path,
    out: Path,
    epochs: int,
    batch_size: int,
    max_chips_per_dataset: int | None,
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
) -> None:
    """Train the text-prompted object locator on the model's frozen image tower; print what it measured."""
    if out.suffix != ".safetensors":
        raise click.BadParameter(f"{out} must end in .safetensors", param_hint="--out")
    model = load_model(model_name, weights=weights, device=device, backend=backend)
    config = LocatorTrainConfig(
        data=data, out=out, epochs=epochs, batch_size=batch_size, max_chips_per_dataset=max_chips_per_dataset
    )
    result = train_locator(model, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.locator.save(out)
    manifest = write_manifest(manifest_rows(data), out.with_suffix(".manifest.csv.gz"))
    click.echo(
        json.dumps(
            {
                "out": str(out),
                "manifest": str(manifest),
                "model_id": model.model_id,
                "threshold": result.locator.threshold,
                "validation": result.locator.validation,
                "chips": result.chips,
                "seconds": round(result.seconds, 1),
            },
            indent=2,
        )
    )
