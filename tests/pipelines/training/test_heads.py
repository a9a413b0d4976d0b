"""Heads on cached features of the frozen package towers: cache, a few CPU steps, a model the library loads."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from pipelines.cli.train_heads import train_heads_cmd
from pipelines.training.heads import (
    CACHE_META,
    IMAGE_FEATURES,
    TEXT_FEATURES,
    TRAINED_PREFIXES,
    CoarserGround,
    cache_features,
    dataset_weights,
    multi_positive_loss,
    read_pairs,
    view_kind,
)
from remoteclip.encode import encode_images, encode_texts
from remoteclip.errors import InputError
from remoteclip.factory import load_model

SCENES = {"forest": (34, 110, 40), "sea": (20, 60, 160), "desert": (210, 180, 120)}


@pytest.fixture
def scene_trainset(tmp_path: Path) -> Path:
    """Twelve images of three plain-colour 'scenes' (two datasets); captions shared within a scene."""
    root = tmp_path / "trainset"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(root / "pairs.tsv", "w", newline="") as f:
        rows = csv.writer(f, delimiter="\t")
        rows.writerow(("filepath", "caption", "source", "dataset"))
        for i in range(12):
            name = list(SCENES)[i % 3]
            pixels = np.clip(np.array(SCENES[name]) + rng.normal(0, 12, (64, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "images" / f"{i}.webp")
            for caption in (f"A satellite photo of {name}.", f"There is {name} in the image."):
                rows.writerow((f"images/{i}.webp", caption, "scene", "big" if i < 9 else "small"))
    return root


def test_read_pairs_groups_images_with_identical_captions(scene_trainset: Path) -> None:
    table = read_pairs(scene_trainset)
    assert len(table.images) == 12 and len(table.captions) == 6
    assert len(set(table.keys.tolist())) == 3
    assert table.keys[0] == table.keys[3] != table.keys[1]


def test_dataset_weights_balance_dataset_sizes() -> None:
    weights = dataset_weights(["a"] * 90 + ["b"] * 10, balance=0.5)
    assert weights.sum() == pytest.approx(1.0)
    share_a, share_b = weights[:90].sum(), weights[90:].sum()
    assert share_a / share_b == pytest.approx(3.0)  # sqrt(90 / 10)
    assert dataset_weights(["a"] * 90 + ["b"] * 10, balance=0.0)[90:].sum() == pytest.approx(0.5)


def test_multi_positive_loss_treats_pairs_with_the_same_captions_alike() -> None:
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    swapped = text[[1, 0, 2, 3]]  # images 0 and 1 have the same captions: which text is whose does not matter
    scale = torch.tensor(math.log(10.0))
    keys = torch.tensor([0, 0, 1, 2])
    assert float(multi_positive_loss(image, text, keys, scale)) == pytest.approx(
        float(multi_positive_loss(image, swapped, keys, scale)))
    one_hot = torch.arange(4)  # CLIP's own targets would call image 1's twin caption a negative
    assert float(multi_positive_loss(image, text, one_hot, scale)) != pytest.approx(
        float(multi_positive_loss(image, swapped, one_hot, scale)))


@pytest.mark.usefixtures("own_onnx_cache")  # two trained explorer-small exports
def test_train_heads_few_cpu_steps_give_weights_the_library_loads(scene_trainset: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["--trainset", str(scene_trainset), "--cache", str(cache), "--out", str(out),
            "--epochs", "60", "--batch-size", "12", "--lr", "3e-3", "--views", "2"]
    result = CliRunner().invoke(train_heads_cmd, args)
    assert result.exit_code == 0, result.output
    stored = json.loads((cache / CACHE_META).read_text())
    assert np.load(cache / IMAGE_FEATURES).shape == (12, 2, 1280)
    assert np.load(cache / TEXT_FEATURES).shape == (6, 384) and len(stored["captions"]) == 6

    shipped = load_file(str(out / "weights.safetensors"))
    assert shipped and all(key.startswith(TRAINED_PREFIXES) for key in shipped)
    assert all(tensor.dtype == torch.float16 for tensor in shipped.values())
    summary = json.loads((out / "train.json").read_text())
    assert summary["images"] == 12 and summary["steps"] == 60
    assert (out / "loss.png").is_file()

    images = [Image.open(scene_trainset / "images" / f"{i}.webp") for i in range(3)]
    assert _each_scene_finds_its_caption(out / "weights.safetensors", images)

    # a second run reuses the cache: nothing is computed again; with the views term on, the scenes still find
    # their captions
    before = (cache / IMAGE_FEATURES).stat().st_mtime_ns
    again = CliRunner().invoke(train_heads_cmd, [*args[:5], str(tmp_path / "run2"), *args[6:], "--views-weight", "1"])
    assert again.exit_code == 0, again.output
    assert (cache / IMAGE_FEATURES).stat().st_mtime_ns == before
    assert json.loads((tmp_path / "run2" / "train.json").read_text())["views_weight"] == 1.0
    assert _each_scene_finds_its_caption(tmp_path / "run2" / "weights.safetensors", images)


def _each_scene_finds_its_caption(weights: Path, images: list[Image.Image]) -> bool:
    """Whether explorer-small with ``weights`` ranks each scene's own caption first of the three."""
    model = load_model("explorer-small", weights=weights)
    similarity = encode_images(model, images) @ encode_texts(model, [f"A satellite photo of {n}." for n in SCENES]).T
    return bool((similarity.argmax(axis=1) == np.arange(len(SCENES))).all())


def test_coarser_ground_keeps_the_size_and_removes_fine_detail() -> None:
    random.seed(0)
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)  # detail at every pixel
    for _ in range(5):
        coarse = np.asarray(CoarserGround()(Image.fromarray(noise))).astype(float)
        assert coarse.shape == noise.shape
        # at 2-6x fewer pixels per side the pixel-to-pixel detail averages out (its spread falls by 2x or more)
        assert coarse.std() < 0.6 * noise.astype(float).std()
        assert abs(coarse.mean() - noise.mean()) < 12  # the same ground, only blurred


def test_view_kinds_alternate_crops_and_coarse_crops() -> None:
    assert [view_kind(v) for v in range(5)] == ["plain", "crop", "coarse", "crop", "coarse"]


def test_a_cache_with_fewer_views_is_completed_not_recomputed(scene_trainset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache_features(scene_trainset, cache, views=2, progress=False)
    two = np.load(cache / IMAGE_FEATURES)
    cache_features(scene_trainset, cache, views=3, progress=False)
    three = np.load(cache / IMAGE_FEATURES)
    assert three.shape == (12, 3, 1280)
    np.testing.assert_array_equal(three[:, :2], two)  # the first two views kept as they were
    assert json.loads((cache / CACHE_META).read_text())["meta"]["view_kinds"] == ["plain", "crop", "coarse"]
    fresh = tmp_path / "fresh"
    cache_features(scene_trainset, fresh, views=3, progress=False)
    np.testing.assert_array_equal(np.load(fresh / IMAGE_FEATURES), three)  # the same as made in one go
    cache_features(scene_trainset, fresh, views=2, progress=False)  # fewer views asked: the cache is kept whole
    np.testing.assert_array_equal(np.load(fresh / IMAGE_FEATURES), three)


def test_a_cache_made_otherwise_is_refused(scene_trainset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache_features(scene_trainset, cache, views=2, progress=False)
    with pytest.raises(InputError, match="use another --cache"):
        cache_features(scene_trainset, cache, views=2, seed=1, progress=False)
