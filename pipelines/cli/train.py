"""``remoteclip-explorer train``: open_clip_train on a ``build-trainset`` folder (see ``pipelines.training.train``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import torch

from pipelines.training.train import (
    FROZEN_TEXT_PREFIXES,
    TrainConfig,
    build_init_state,
    half_precision,
    run_training,
    save_compact,
)
from remoteclip.factory import read_state_dict, save_weights

#: ``--init`` value that assembles the initial weights from the pip packages (ImageNet vision, MiniLM text)
PACKAGE_INIT = "packages"


def resolve_init(init: str, arch: str, tmp: Path) -> Path | None:
    """The init checkpoint file for ``--init`` (the 'packages' init is assembled into ``tmp``)."""
    if init == "none":
        return None
    if init == PACKAGE_INIT:
        path = tmp / "init.pt"
        torch.save(build_init_state(arch), path)
        return path
    if not Path(init).is_file():
        raise click.BadParameter(f"{init} is not a file, '{PACKAGE_INIT}' or 'none'", param_hint="--init")
    return Path(init)


@click.command("train")
@click.option("--trainset", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("trainset"),
              show_default=True, help="Folder written by build-trainset.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/explorer-small"),
              show_default=True, help="Run folder (must be new or empty): model.pt, loss.csv, loss.png, out.log.")
@click.option("--arch", default="explorer-small", show_default=True, help="open_clip architecture.")
@click.option("--init", "init", default=PACKAGE_INIT, show_default=True,
              help="Initial weights: 'packages' (ImageNet EfficientNet-Lite0 + MiniLM from pip), 'none' (from "
                   "scratch), an official/open_clip checkpoint (.pt) for continual pretraining, or a compact "
                   "init (.safetensors) written by --export-init.")
@click.option("--sources", default="", help="Comma-separated pair sources to train on (b2c,m2b,human,scene); "
                                           "default all.")
@click.option("--min-rows", type=click.IntRange(0), default=0, show_default=True,
              help="Repeat the pairs cyclically up to this many rows per epoch (equal steps across ablations).")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(2), default=256, show_default=True)
@click.option("--lr", type=float, default=5e-4, show_default=True, help="Peak learning rate (AdamW, cosine).")
@click.option("--warmup", type=click.IntRange(0), default=100, show_default=True, help="Warmup steps.")
@click.option("--image-px", type=click.IntRange(32), default=160, show_default=True, help="Training image size.")
@click.option("--device", default="cuda", show_default=True, help="cuda or cpu.")
@click.option("--workers", type=click.IntRange(0), default=8, show_default=True, help="Data-loading processes.")
@click.option("--lock-text/--no-lock-text", default=True, show_default=True,
              help="Freeze the text tower (LiT-style); its weights then stay those of the init.")
@click.option("--export-init", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Only write the 'packages' init compactly to this .safetensors (to move it to a GPU machine).")
def train(trainset: Path, out: Path, arch: str, init: str, sources: str, min_rows: int, epochs: int,
          batch_size: int, lr: float, warmup: int, image_px: int, device: str, workers: int, lock_text: bool,
          export_init: Path | None) -> None:
    """Train or continue pretraining a CLIP model with open_clip_train (flips, 90-degree rotations, cosine LR)."""
    if export_init is not None:
        save_compact(build_init_state(arch), export_init)
        click.echo(f"wrote {export_init}")
        return
    with tempfile.TemporaryDirectory(prefix="remoteclip-init-") as tmp:
        cfg = TrainConfig(trainset=trainset, out=out, arch=arch, init=resolve_init(init, arch, Path(tmp)),
                          sources=tuple(s for s in sources.split(",") if s), min_rows=min_rows, epochs=epochs,
                          batch_size=batch_size, lr=lr, warmup=warmup, image_px=image_px, device=device,
                          workers=workers, lock_text=lock_text)
        model_file = run_training(cfg)
    state = read_state_dict(model_file)
    weights = out / "weights.safetensors"
    # the frozen text tower is left out: the library takes it from the installed package
    save_weights(half_precision(state), weights, drop_prefixes=FROZEN_TEXT_PREFIXES if lock_text else ())
    click.echo(f"checkpoint {model_file} (official OpenCLIP state_dict), shippable weights {weights}, "
               f"loss curve {out / 'loss.png'}")
