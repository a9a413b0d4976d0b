"""Training wrapper: a two-step CPU run of open_clip_train whose checkpoint the model library loads."""

from __future__ import annotations

import csv
import logging
import random
from pathlib import Path

import numpy as np
import open_clip_train.main as train_main
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipelines.cli.train import train
from pipelines.training.train import (
    FROZEN_TEXT_PREFIXES,
    FlipsAndRightAngles,
    load_compact,
    paper_augmentation,
    read_loss_curve,
    save_compact,
    write_train_table,
)
from remoteclip.errors import InputError
from remoteclip.factory import load_model

CAPTIONS = (
    "A satellite photo of 2 airplanes.",
    "There is a ship in the image.",
    "An aerial image of a forest.",
    "Many buildings away from the center of the image.",
)


@pytest.fixture
def tiny_trainset(tmp_path: Path) -> Path:
    """Eight image-caption pairs in the build-trainset layout (two sources)."""
    root = tmp_path / "trainset"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(root / "pairs.tsv", "w", newline="") as f:
        rows = csv.writer(f, delimiter="\t")
        rows.writerow(("filepath", "caption", "source", "dataset"))
        for i in range(8):
            pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / f"{i}.webp")
            rows.writerow((f"images/{i}.webp", CAPTIONS[i % 4], "b2c" if i % 2 else "scene", "test"))
    return root


def test_flips_and_right_angles_give_the_eight_symmetries() -> None:
    image = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    pixels = np.asarray(image)
    symmetries = {np.rot90(p, k).tobytes() for p in (pixels, pixels[:, ::-1]) for k in range(4)}
    random.seed(0)
    seen = {np.asarray(FlipsAndRightAngles()(image)).tobytes() for _ in range(200)}
    assert seen == symmetries


def test_paper_augmentation_wraps_and_restores_open_clip_transforms() -> None:
    original = train_main.create_model_and_transforms
    with paper_augmentation():
        assert train_main.create_model_and_transforms is not original
    assert train_main.create_model_and_transforms is original


def test_compact_init_round_trip(tmp_path: Path) -> None:
    state = {"text.transformer.w": torch.randn(64, 32), "visual.w": torch.randn(8, 3), "n": torch.tensor(3)}
    save_compact(state, tmp_path / "init.safetensors")
    back = load_compact(tmp_path / "init.safetensors")
    assert set(back) == set(state) and back["n"].item() == 3
    weight = state["text.transformer.w"]
    rel = (back["text.transformer.w"] - weight).abs().max() / weight.abs().max()
    assert rel < 1 / 127
    assert torch.allclose(back["visual.w"], state["visual.w"], rtol=1e-3, atol=1e-3)


def test_train_table_filters_sources_and_repeats(tiny_trainset: Path, tmp_path: Path) -> None:
    table = tmp_path / "train.tsv"
    assert write_train_table(tiny_trainset, ("scene",), table, min_rows=10) == 10
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 10 and all(Path(r["filepath"]).is_absolute() for r in rows)
    assert {r["caption"] for r in rows} == {CAPTIONS[0], CAPTIONS[2]}
    with pytest.raises(InputError, match="no pairs"):
        write_train_table(tiny_trainset, ("human",), table)


@pytest.mark.slow
def test_two_step_cpu_training_writes_a_checkpoint_the_library_loads(
    tiny_trainset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    root = logging.getLogger()
    root_before = (root.level, list(root.handlers))
    dynamo_level = logging.getLogger("torch._dynamo").level
    result = CliRunner().invoke(train, [
        "--trainset", str(tiny_trainset), "--out", str(out), "--epochs", "1", "--batch-size", "4",
        "--device", "cpu", "--workers", "0", "--image-px", "64", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    assert (root.level, root.handlers) == root_before  # open_clip_train's logging set-up is undone
    assert logging.getLogger("torch._dynamo").level == dynamo_level  # else torch prints its stats at exit
    assert [round(epoch, 2) for epoch, _ in read_loss_curve(out / "out.log")] == [0.5, 1.0]
    assert (out / "loss.png").stat().st_size > 1000
    state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert not any(key.startswith("module.") for key in state)  # the official OpenCLIP state_dict layout

    full = load_model("explorer-small", weights=out / "model.pt")
    shipped = load_model("explorer-small", weights=out / "weights.safetensors")
    # the text tower stayed frozen: the checkpoint's copy equals the one the library takes from the package
    package_text = shipped.model.state_dict()
    for key, value in state.items():
        if key.startswith(FROZEN_TEXT_PREFIXES):
            assert torch.equal(value, package_text[key]), key
    tokens = full.tokenizer(["a satellite photo of 2 airplanes."])
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for model in (full.model, shipped.model):
            features = model.encode_image(image, normalize=True)
            assert features.shape == (1, 512) and torch.isfinite(features).all()
        assert torch.allclose(full.model.encode_text(tokens), shipped.model.encode_text(tokens), atol=1e-2)
