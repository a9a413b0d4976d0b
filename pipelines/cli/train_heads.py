"""``remoteclip-explorer train-heads``: explorer-small's heads on cached features of its frozen towers, on the CPU.

See :mod:`pipelines.training.heads`. The feature cache (``--cache``) is filled once (about 20 minutes for 40k
images x 2 views on 2 cores) and reused by every later run, ablations included.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.training.heads import HeadsConfig, cache_features, train_heads


@click.command("train-heads")
@click.option("--trainset", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("trainset"),
              show_default=True, help="Folder written by build-trainset.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/cache"),
              show_default=True, help="Feature cache folder (filled where images are missing).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/explorer-small"),
              show_default=True, help="Run folder (new or empty): model.pt, weights.safetensors, loss.csv/png.")
@click.option("--datasets", default="", help="Comma-separated datasets of the trainset to train on (default all; "
                                            "for ablations).")
@click.option("--views", type=click.IntRange(1), default=3, show_default=True,
              help="Cached views per image: the plain image, then random crops with flips and rotations, every second "
                   "one also from coarser ground (2-6x fewer pixels).")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True)
@click.option("--batch-size", type=click.IntRange(2), default=1024, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate (AdamW, cosine).")
@click.option("--balance", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Draw a dataset of n images with weight n**balance (0: datasets alike, 1: as they are).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the training draws (the cached views are drawn once, with seed 0, and shared by every run).")
@click.option("--views-weight", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Weight of the views term: two cached views of an image told apart from the batch's others "
                   "(SimCLR's loss on the image head, as SLIP adds it; 0: off).")
def train_heads_cmd(trainset: Path, cache: Path, out: Path, datasets: str, views: int, epochs: int, batch_size: int,
                    lr: float, balance: float, seed: int, views_weight: float) -> None:
    """Train explorer-small's projection heads on its frozen package towers (no GPU needed)."""
    cache_features(trainset, cache, views=views)
    cfg = HeadsConfig(trainset=trainset, cache=cache, out=out, datasets=tuple(d for d in datasets.split(",") if d),
                      views=views, epochs=epochs, batch_size=batch_size, lr=lr, balance=balance,
                      seed=seed, views_weight=views_weight)
    model_file = train_heads(cfg)
    click.echo(f"checkpoint {model_file} (official OpenCLIP state_dict), shippable weights "
               f"{out / 'weights.safetensors'}, loss curve {out / 'loss.png'}")
