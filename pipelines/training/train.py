"""Training entry: an argv for ``open_clip_train.main.main``, and its output turned into project artefacts.

Nothing of open_clip_train is forked. Two things are added around it:

- the paper's geometric augmentation (random flips and 90-degree rotations) is appended to the train
  transform that open_clip builds (its RandomResizedCrop stays), by wrapping ``create_model_and_transforms``
  for the run;
- the initial weights of the default architecture are assembled from two pip packages (ImageNet
  EfficientNet-Lite0 for the vision trunk, all-MiniLM-L6-v2 for the text tower, see ``build_init_state``) and
  can be stored compactly (frozen text matrices as int8 per row) to move them to a training machine.

Checkpoints come out in the official OpenCLIP format (a plain ``state_dict``), loss curves as CSV and PNG.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from remoteclip import model_configs  # noqa: F401  (registers the project's architectures with open_clip)
from remoteclip.errors import InputError
from remoteclip.factory import read_state_dict
from remoteclip.package_towers import load_package_trunk
from remoteclip.pretrained import FROZEN_TEXT_PREFIXES

PAIRS_FILE = "pairs.tsv"
_SCALE_SUFFIX = ".__int8_row_scale"
_LOSS_LINE = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+).*?Contrastive_loss: ([0-9.]+)")


class FlipsAndRightAngles:
    """Random horizontal flip, vertical flip and rotation by a multiple of 90 degrees (a PIL transform)."""

    _ROTATIONS = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        rotation = random.choice(self._ROTATIONS)
        return image if rotation is None else image.transpose(rotation)


@contextlib.contextmanager
def paper_augmentation() -> Iterator[None]:
    """While active, open_clip_train's train transform starts with flips and 90-degree rotations."""
    import open_clip_train.main as train_main
    from torchvision.transforms import Compose

    original = train_main.create_model_and_transforms

    def with_geometric_augmentation(*args: object, **kwargs: object) -> tuple[object, object, object]:
        model, preprocess_train, preprocess_val = original(*args, **kwargs)
        return model, Compose([FlipsAndRightAngles(), preprocess_train]), preprocess_val

    train_main.create_model_and_transforms = with_geometric_augmentation
    try:
        yield
    finally:
        train_main.create_model_and_transforms = original


def build_init_state(arch: str = "explorer-small") -> dict[str, torch.Tensor]:
    """Initial CLIP state: text tower from the installed MiniLM package, vision trunk from ImageNet."""
    import open_clip

    model = open_clip.create_model(arch, pretrained_hf=True)
    load_package_trunk(model)
    return model.state_dict()


def save_compact(state: dict[str, torch.Tensor], path: Path) -> None:
    """Save a state dict as safetensors: floats in fp16, frozen text matrices as int8 with per-row scales.

    For moving an init checkpoint to a training machine: about a third of the fp32 size.
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.startswith(FROZEN_TEXT_PREFIXES) and tensor.ndim == 2 and tensor.is_floating_point():
            scale = tensor.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
            out[key] = torch.round(tensor / scale).to(torch.int8)
            out[key + _SCALE_SUFFIX] = scale.float()
        else:
            out[key] = tensor.half() if tensor.is_floating_point() else tensor
    save_file({k: v.contiguous() for k, v in out.items()}, str(path))


def load_compact(path: Path) -> dict[str, torch.Tensor]:
    """Inverse of :func:`save_compact`: an fp32 state dict."""
    stored = load_file(str(path))
    state = {}
    for key, tensor in stored.items():
        if key.endswith(_SCALE_SUFFIX):
            continue
        scale = stored.get(key + _SCALE_SUFFIX)
        state[key] = tensor.float() * scale if scale is not None else (
            tensor.float() if tensor.is_floating_point() else tensor)
    return state


def half_precision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with its floating-point tensors in fp16, for shipping."""
    return {key: value.half() if value.is_floating_point() else value for key, value in state.items()}


@dataclass
class TrainConfig:
    """One open_clip_train run on a ``build-trainset`` folder."""

    trainset: Path
    out: Path
    arch: str = "explorer-small"
    init: Path | None = None
    sources: tuple[str, ...] = ()
    #: repeat the pairs cyclically up to this many rows per epoch (equal steps for small ablation sets)
    min_rows: int = 0
    epochs: int = 10
    batch_size: int = 256
    lr: float = 5e-4
    wd: float = 0.1
    warmup: int = 100
    image_px: int = 160
    device: str = "cuda"
    workers: int = 8
    lock_text: bool = True
    seed: int = 0


def write_train_table(trainset: Path, sources: Sequence[str], out: Path, min_rows: int = 0) -> int:
    """Copy ``pairs.tsv`` with absolute image paths (only the given sources, all if empty); returns the rows.

    Short tables are repeated cyclically to exactly ``min_rows`` rows (equal steps across ablations).
    """
    pairs = trainset / PAIRS_FILE
    if not pairs.is_file():
        raise InputError(
            f"{pairs} not found; build it with `remoteclip-explorer build-trainset --out {trainset}`"
        )
    with open(pairs, newline="") as src:
        rows = [(str((trainset / row["filepath"]).resolve()), row["caption"])
                for row in csv.DictReader(src, delimiter="\t") if not sources or row["source"] in sources]
    if not rows:
        raise InputError(
            f"no pairs of sources {list(sources)} in {pairs}; sources there: b2c, m2b, human, scene"
        )
    n_rows = max(min_rows, len(rows))
    with open(out, "w", newline="") as dst:
        writer = csv.writer(dst, delimiter="\t")
        writer.writerow(("filepath", "caption"))
        writer.writerows(rows[i % len(rows)] for i in range(n_rows))
    return n_rows


def open_clip_argv(cfg: TrainConfig, table: Path, init: Path | None) -> list[str]:
    """The argv for ``open_clip_train.main.main``."""
    argv = [
        "--train-data", str(table), "--dataset-type", "csv", "--csv-separator", "\t",
        "--csv-img-key", "filepath", "--csv-caption-key", "caption",
        "--model", cfg.arch, "--batch-size", str(cfg.batch_size), "--epochs", str(cfg.epochs),
        "--lr", str(cfg.lr), "--wd", str(cfg.wd), "--warmup", str(cfg.warmup), "--lr-scheduler", "cosine",
        "--force-image-size", str(cfg.image_px), "--aug-cfg", "scale=(0.5,1.0)",
        "--workers", str(cfg.workers), "--device", cfg.device, "--seed", str(cfg.seed),
        "--precision", "amp" if cfg.device.startswith("cuda") else "fp32",
        "--logs", str(cfg.out.parent.resolve()), "--name", cfg.out.name,
        "--save-frequency", "0", "--report-to", "", "--log-every-n-steps", "5",
        "--zeroshot-frequency", "0", "--val-frequency", "0",
    ]
    if init is not None:
        argv += ["--pretrained", str(init)]
    if cfg.lock_text:
        argv += ["--lock-text", "--lock-text-freeze-layer-norm"]
    return argv


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Undo open_clip_train's logging set-up: every logger's level set to INFO, handlers on the root logger.

    Left in place, the INFO levels make torch print its TorchDynamo statistics when the process exits.
    """
    root = logging.getLogger()
    handlers = list(root.handlers)
    loggers = [root, *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    levels = {logger: logger.level for logger in loggers}
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        for name in list(logging.root.manager.loggerDict):  # loggers new since: NOTSET, as created
            logger = logging.getLogger(name)
            logger.setLevel(levels.get(logger, logging.NOTSET))
        root.setLevel(levels[root])


def run_training(cfg: TrainConfig) -> Path:
    """Train with open_clip_train; returns the official-format checkpoint ``<out>/model.pt``."""
    from open_clip_train.main import main as open_clip_main

    if cfg.out.exists() and any(cfg.out.iterdir()):
        raise InputError(f"run folder {cfg.out} is not empty; choose another --out or delete it")
    cfg.out.mkdir(parents=True, exist_ok=True)
    table = cfg.out / "train.tsv"
    write_train_table(cfg.trainset, cfg.sources, table, cfg.min_rows)
    init = cfg.init
    if cfg.init is not None and cfg.init.suffix == ".safetensors":
        init = cfg.out / "init.pt"
        torch.save(load_compact(cfg.init), init)
    with paper_augmentation(), logging_restored():
        open_clip_main(open_clip_argv(cfg, table, init))
    if init is not None and init != cfg.init:
        init.unlink()
    checkpoint = cfg.out / "checkpoints" / f"epoch_{cfg.epochs}.pt"
    if not checkpoint.is_file():
        raise InputError(
            f"open_clip_train wrote no checkpoint in {checkpoint.parent}; see {cfg.out / 'out.log'}"
        )
    model_file = cfg.out / "model.pt"
    torch.save(read_state_dict(checkpoint), model_file)
    checkpoint.unlink()
    write_loss_curve(cfg.out / "out.log", cfg.out / "loss.csv", cfg.out / "loss.png")
    return model_file


def read_loss_curve(log_file: Path) -> list[tuple[float, float]]:
    """(epoch as a float, contrastive loss) for every progress line of an open_clip_train ``out.log``."""
    points = []
    for line in log_file.read_text().splitlines():
        match = _LOSS_LINE.search(line)
        if match:
            epoch, seen, total, loss = match.groups()
            points.append((int(epoch) + int(seen) / max(int(total), 1), float(loss)))
    return points


def write_loss_curve(log_file: Path, csv_file: Path, png_file: Path) -> list[tuple[float, float]]:
    """Write the loss curve of an open_clip_train run as CSV and as a PNG plot."""
    return write_loss_points(read_loss_curve(log_file), csv_file, png_file, log_file.parent.name)


def write_loss_points(points: list[tuple[float, float]], csv_file: Path, png_file: Path,
                      title: str) -> list[tuple[float, float]]:
    """Write (epoch, contrastive loss) points as CSV and as a PNG plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_file, "w", newline="") as f:
        csv.writer(f).writerows([("epoch", "contrastive_loss"), *points])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points])
    ax.set_xlabel("epoch")
    ax.set_ylabel("contrastive loss")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(png_file, dpi=100)
    plt.close(fig)
    return points
