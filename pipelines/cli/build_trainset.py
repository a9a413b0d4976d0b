"""``remoteclip-explorer build-trainset``: the trainset builder (:mod:`pipelines.training.build`) from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.cli.options import overwrite_option
from pipelines.training.build import write_trainset
from pipelines.training.train import PAIRS_FILE


@click.command("build-trainset")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("../shared/data"),
              show_default=True, help="The shared data folder.")
@click.option("--source-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Public datasets in their standard layouts, one folder each (scene sets as class folders: "
                   "DIR/eurosat/<class>/*.jpg); see docs/DATASET_CARD.md.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("trainset"),
              show_default=True, help="Output folder (pairs.tsv, images/, DATASET_CARD.md).")
@click.option("--out-px", type=click.IntRange(32, 1024), default=160, show_default=True,
              help="Side of the saved square images.")
@click.option("--image-format", type=click.Choice(["webp", "jpeg"]), default="webp", show_default=True,
              help="Format of the saved images.")
@click.option("--quality", type=click.IntRange(10, 100), default=80, show_default=True, help="Encoder quality.")
@overwrite_option
def build_trainset(data: Path, source_dir: Path | None, out: Path, out_px: int, image_format: str, quality: int,
                   overwrite: bool) -> None:
    """Turn ../shared/data (and --source-dir) into image-caption pairs (B2C, M2B, human and scene captions)."""
    if (out / PAIRS_FILE).exists() and not overwrite:
        raise click.BadParameter(f"{out / PAIRS_FILE} exists; pass --overwrite to rebuild", param_hint="--out")
    stats = write_trainset(data, out, out_px, image_format, quality, source_dir=source_dir)
    click.echo(f"{sum(stats.images.values())} images, {sum(stats.pairs.values())} pairs, "
               f"{sum(stats.duplicates.values())} near duplicates dropped -> {out / PAIRS_FILE}")
