"""Training on frozen towers: cache the towers' features once, then train only the heads (CPU, minutes).

explorer-small's towers come frozen from pip packages (ImageNet EfficientNet-Lite0, all-MiniLM-L6-v2,
:mod:`remoteclip.package_towers`); what it learns are the two heads that map their features into one space, and
the temperature. The towers' outputs are computed once per image view and per caption (:func:`cache_features`,
about 70 image views/s on 2 cores), and the heads then train on them for many epochs in minutes
(:func:`train_heads`). An ImageNet trunk kept frozen generalises better than one fine-tuned on a few thousand
remote-sensing images: a linear probe on unseen NWPU-RESISC45 images reads 84 % from the ImageNet features and
80 % from the trunk the earlier explorer-small had fine-tuned.

Views: view 0 is the model's own preprocessing of the image; the others are random resized crops (scale
0.35-1, so objects appear at other ground resolutions) with flips and 90-degree rotations, and from view 2 on every
second crop is also seen from coarser ground (:class:`CoarserGround`: 2-6x fewer pixels per side, then back), as a
10 m sensor would show the scene of a 1 m one. A cache made with fewer views is completed, not recomputed; one
with more is used as it is, and training reads its first ``views``.

Loss: CLIP's symmetric contrastive loss in which every image whose captions are the same as the anchor's counts as
a positive (UniCL, Yang et al. 2022): the images of one scene class share their captions, and treating them as
negatives of one another would teach the model to tell apart what should look alike. ``views_weight`` (off by
default) adds SLIP's image-only term: two cached views of each image in the batch must find each other among
the others' (measured in the model card).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from pipelines.training.train import PAIRS_FILE, FlipsAndRightAngles, build_init_state, write_loss_points
from remoteclip.errors import InputError
from remoteclip.package_towers import TEXT_PREFIX, TRUNK_PREFIX

IMAGE_FEATURES = "image_features.npy"
TEXT_FEATURES = "text_features.npy"
CACHE_META = "cache.json"
#: the parts of explorer-small that ``train_heads`` trains (everything else is a frozen package tower)
TRAINED_PREFIXES: tuple[str, ...] = ("visual.head.", "text.proj.", "logit_scale")
#: log of the inverse temperature of the views term (SimCLR's 0.1)
VIEWS_LOGIT_SCALE = torch.tensor(math.log(10.0))


@dataclass(frozen=True)
class PairsTable:
    """``pairs.tsv`` grouped by image: its captions, source, dataset, and a key shared by identical captions."""

    images: tuple[str, ...]
    captions: tuple[str, ...]  # unique caption texts
    image_captions: tuple[tuple[int, ...], ...]  # caption indices of each image
    datasets: tuple[str, ...]
    sources: tuple[str, ...]
    #: images with the same key have the same captions (they are positives of each other)
    keys: np.ndarray


def read_pairs(trainset: Path) -> PairsTable:
    """Read a ``build-trainset`` folder's ``pairs.tsv``."""
    path = trainset / PAIRS_FILE
    if not path.is_file():
        raise InputError(f"{path} not found; build it with `remoteclip-explorer build-trainset --out {trainset}`")
    by_image: dict[str, list[str]] = {}
    meta: dict[str, tuple[str, str]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            by_image.setdefault(row["filepath"], []).append(row["caption"])
            meta[row["filepath"]] = (row["source"], row["dataset"])
    images = tuple(by_image)
    captions = tuple(dict.fromkeys(c for caps in by_image.values() for c in caps))
    index = {c: i for i, c in enumerate(captions)}
    groups: dict[tuple[str, ...], int] = {}
    keys = np.array([groups.setdefault(tuple(sorted(by_image[i])), len(groups)) for i in images], dtype=np.int64)
    return PairsTable(
        images=images,
        captions=captions,
        image_captions=tuple(tuple(index[c] for c in by_image[i]) for i in images),
        datasets=tuple(meta[i][1] for i in images),
        sources=tuple(meta[i][0] for i in images),
        keys=keys,
    )


def view_kind(view: int) -> str:
    """How view ``view`` of an image is made: ``plain`` (view 0), then ``crop`` and ``coarse`` in turn."""
    if view == 0:
        return "plain"
    return "crop" if view % 2 else "coarse"


class CoarserGround:
    """The image as a coarser sensor would see it: resampled to 1/2-1/6 of its pixels per side and back up."""

    def __init__(self, factors: tuple[float, float] = (2.0, 6.0)) -> None:
        self.factors = factors

    def __call__(self, image: Image.Image) -> Image.Image:
        factor = random.uniform(*self.factors)
        width, height = image.size
        small = image.resize((max(8, round(width / factor)), max(8, round(height / factor))), Image.Resampling.BOX)
        return small.resize((width, height), Image.Resampling.BICUBIC)


def view_transform(image_px: int, mean: Sequence[float], std: Sequence[float],
                   coarse: bool = False) -> Callable[[Image.Image], torch.Tensor]:
    """An augmented view: random resized crop (scale 0.35-1), flips and right-angle rotations (and, with
    ``coarse``, :class:`CoarserGround`), normalised."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.RandomResizedCrop(image_px, scale=(0.35, 1.0), interpolation=transforms.InterpolationMode.BICUBIC),
        FlipsAndRightAngles(),
        *([CoarserGround()] if coarse else []),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


def _load_cache(cache: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The cache's index, if it was made the same way, with the same first views."""
    if not (cache / CACHE_META).is_file():
        return None
    stored: dict[str, Any] = json.loads((cache / CACHE_META).read_text())
    kinds, stored_kinds = meta["view_kinds"], stored["meta"].get("view_kinds", [])
    same = {k: v for k, v in stored["meta"].items() if k != "view_kinds"} == {
        k: v for k, v in meta.items() if k != "view_kinds"}
    shared = min(len(kinds), len(stored_kinds))
    if not same or stored_kinds[:shared] != kinds[:shared]:
        raise InputError(f"feature cache {cache} was made with {stored['meta']}, not {meta}; use another --cache")
    return stored


def cache_features(trainset: Path, cache: Path, views: int = 3, batch_size: int = 64, seed: int = 0,
                   progress: bool = True) -> None:
    """Compute (or complete) the frozen towers' features of every image view and caption of ``trainset``.

    Writes ``image_features.npy`` (images, views, 1280) and ``text_features.npy`` (captions, 384) as fp16, and
    ``cache.json`` (the image and caption order). Images already in the cache are not computed again.
    """
    import open_clip

    table = read_pairs(trainset)
    model = open_clip.create_model("explorer-small", pretrained_hf=True)
    model.load_state_dict(build_init_state("explorer-small"))
    model.eval().to(memory_format=torch.channels_last)
    cfg = model.visual.preprocess_cfg
    image_px = model.visual.image_size[0]
    meta = {"view_kinds": [view_kind(view) for view in range(views)], "image_px": image_px, "seed": seed,
            "trunk": "efficientnet_lite0 ImageNet"}
    cache.mkdir(parents=True, exist_ok=True)
    stored = _load_cache(cache, meta)
    cached_views = len(stored["meta"]["view_kinds"]) if stored else 0
    views = max(views, cached_views)  # a cache keeps every view it has, and new images get as many
    kinds = [view_kind(view) for view in range(views)]
    meta["view_kinds"] = kinds
    done: list[str] = list(stored["images"]) if stored else []
    known: list[str] = list(stored["captions"]) if stored else []
    seen = set(done)
    todo = [name for name in table.images if name not in seen]
    preprocess = open_clip.image_transform(image_px, is_train=False, mean=cfg["mean"], std=cfg["std"])
    make_view = {"plain": preprocess, "crop": view_transform(image_px, cfg["mean"], cfg["std"]),
                 "coarse": view_transform(image_px, cfg["mean"], cfg["std"], coarse=True)}
    if todo or cached_views < views:  # a complete cache is not read here: training reads it
        _compute_views(model, trainset, cache, done, todo, cached_views, kinds, make_view, batch_size, seed,
                       progress)
    known_set = set(known)
    new_captions = [c for c in table.captions if c not in known_set]
    if new_captions:
        text = _text_features(model, new_captions, progress)
        np.save(cache / TEXT_FEATURES, np.concatenate([np.load(cache / TEXT_FEATURES), text]) if known else text)
    (cache / CACHE_META).write_text(json.dumps({"meta": meta, "images": [*done, *todo],
                                                "captions": [*known, *new_captions]}))


def _compute_views(model: Any, trainset: Path, cache: Path, done: list[str], todo: list[str], cached_views: int,
                   kinds: list[str], make_view: dict[str, Callable[[Image.Image], torch.Tensor]], batch_size: int,
                   seed: int, progress: bool) -> None:
    """Write ``image_features.npy``: the cached images' missing views, then every view of the new images."""
    views = len(kinds)
    width = model.visual.trunk.num_features
    old = np.load(cache / IMAGE_FEATURES) if done else np.zeros((0, cached_views, width), dtype=np.float16)
    features = np.zeros((len(done) + len(todo), views, width), dtype=np.float16)
    features[:len(done), :cached_views] = old
    # (image index range, views to compute): the new views of cached images, then every view of new images
    work = [(0, len(done), range(cached_views, views)), (len(done), len(todo), range(views))]
    names_all = [*done, *todo]
    rng_state = random.getstate(), torch.random.get_rng_state()
    with torch.inference_mode():
        for first, count, todo_views in work:
            if count == 0 or not todo_views:
                continue
            for start in tqdm(range(first, first + count, batch_size), desc="image features", unit="batch",
                              disable=not progress):
                names = names_all[start:min(start + batch_size, first + count)]
                pictures = [Image.open(trainset / name).convert("RGB") for name in names]
                for view in todo_views:
                    seed_batch = int(hashlib.sha256(f"{seed}/{view}/{names[0]}".encode()).hexdigest()[:8], 16)
                    random.seed(seed_batch)
                    torch.manual_seed(seed_batch)
                    batch = torch.stack([make_view[kinds[view]](p) for p in pictures])
                    features[start:start + len(names), view] = model.visual.trunk(
                        batch.contiguous(memory_format=torch.channels_last)).numpy()
    random.setstate(rng_state[0])
    torch.random.set_rng_state(rng_state[1])
    np.save(cache / IMAGE_FEATURES, features)


def _text_features(model: torch.nn.Module, captions: Sequence[str], progress: bool,
                   batch_size: int = 256) -> np.ndarray:
    """The frozen text transformer's mean-pooled output of every caption (before the projection head)."""
    import open_clip

    tokenizer = open_clip.get_tokenizer("explorer-small")
    text: Any = model.text
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(captions), batch_size), desc="text features", unit="batch",
                          disable=not progress):
            tokens = tokenizer(list(captions[start:start + batch_size]))
            mask = (tokens != text.config.pad_token_id).long()
            hidden = text.transformer(input_ids=tokens, attention_mask=mask)
            out.append(text.pooler(hidden, mask).numpy().astype(np.float16))
    return np.concatenate(out)


@dataclass
class HeadsConfig:
    """One run of :func:`train_heads`."""

    trainset: Path
    cache: Path
    out: Path
    #: train on these datasets only (all if empty): the ablations
    datasets: tuple[str, ...] = ()
    #: train on the first ``views`` cached views of each image (:func:`view_kind`)
    views: int = 3
    epochs: int = 40
    batch_size: int = 1024
    lr: float = 1e-3
    wd: float = 0.05
    warmup: int = 50
    #: a dataset of n images is drawn with weight n ** balance (1: as is, 0: every dataset alike)
    balance: float = 0.5
    seed: int = 0
    #: weight of the views term: two cached views of each image in the batch are told apart from the others'
    #: (SimCLR's loss on the image head, as SLIP adds it to CLIP's), at the fixed VIEWS_LOGIT_SCALE
    views_weight: float = 0.0
    log_every: int = 20
    losses: list[tuple[float, float]] = field(default_factory=list)


def dataset_weights(datasets: Sequence[str], balance: float) -> np.ndarray:
    """Sampling probability of each image: its dataset's size to the power ``balance``, shared by its images."""
    sizes = Counter(datasets)
    weights = np.array([sizes[d] ** balance / sizes[d] for d in datasets])
    return weights / weights.sum()


def multi_positive_loss(image: torch.Tensor, text: torch.Tensor, keys: torch.Tensor,
                        logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric contrastive loss where pairs with the same key are all positives (targets spread over them)."""
    logits = logit_scale.exp() * image @ text.T
    targets = (keys[:, None] == keys[None, :]).float()
    targets = targets / targets.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def train_heads(cfg: HeadsConfig, progress: bool = True) -> Path:
    """Train explorer-small's heads on cached features; writes ``model.pt`` (OpenCLIP state dict), the shipped
    ``weights.safetensors`` (trained tensors, fp16), ``loss.csv``/``loss.png`` and ``train.json``."""
    import open_clip
    from safetensors.torch import save_file

    if cfg.out.exists() and any(cfg.out.iterdir()):
        raise InputError(f"run folder {cfg.out} is not empty; choose another --out or delete it")
    table = read_pairs(cfg.trainset)
    stored = json.loads((cfg.cache / CACHE_META).read_text()) if (cfg.cache / CACHE_META).is_file() else None
    if stored is None:
        raise InputError(f"no feature cache in {cfg.cache}; run `remoteclip-explorer train --heads` with --cache")
    row = {name: i for i, name in enumerate(stored["images"])}
    missing = [name for name in table.images if name not in row]
    if missing:
        raise InputError(f"{len(missing)} images of {cfg.trainset} are not in {cfg.cache} (e.g. {missing[0]})")
    keep = np.array([not cfg.datasets or d in cfg.datasets for d in table.datasets])
    if not keep.any():
        raise InputError(f"no images of datasets {list(cfg.datasets)} in {cfg.trainset}")
    picked = np.flatnonzero(keep)
    features = torch.from_numpy(
        np.load(cfg.cache / IMAGE_FEATURES)[[row[table.images[i]] for i in picked], :cfg.views])
    caption_row = {c: i for i, c in enumerate(stored["captions"])}
    text_features = torch.from_numpy(np.load(cfg.cache / TEXT_FEATURES))
    image_captions = [[caption_row[table.captions[c]] for c in table.image_captions[i]] for i in picked]
    keys = torch.from_numpy(table.keys[picked])
    probabilities = dataset_weights([table.datasets[i] for i in picked], cfg.balance)

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = open_clip.create_model("explorer-small", pretrained_hf=True)
    model.load_state_dict(build_init_state("explorer-small"))
    visual_head, text_head = model.visual.head, model.text.proj  # type: ignore[union-attr]
    params = [*visual_head.parameters(), *text_head.parameters(), model.logit_scale]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.wd)
    steps_per_epoch = max(1, len(picked) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - cfg.warmup) / max(1, total - cfg.warmup)))

    visual_head.train()
    text_head.train()
    views = features.shape[1]
    for step in tqdm(range(total), desc="training heads", unit="step", disable=not progress):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        batch = rng.choice(len(picked), size=cfg.batch_size, replace=len(picked) < cfg.batch_size, p=probabilities)
        rows = torch.from_numpy(batch)
        view = torch.from_numpy(rng.integers(0, views, size=len(batch)))
        image_in = features[rows, view].float()
        captions = [image_captions[i][rng.integers(len(image_captions[i]))] for i in batch]
        text_in = text_features[torch.tensor(captions)].float()
        image_out = F.normalize(visual_head(image_in), dim=-1)
        text_out = F.normalize(text_head(text_in), dim=-1)
        loss = multi_positive_loss(image_out, text_out, keys[rows], model.logit_scale)
        if cfg.views_weight and views > 1:
            other = (view + torch.from_numpy(rng.integers(1, views, size=len(batch)))) % views
            second = F.normalize(visual_head(features[rows, other].float()), dim=-1)
            loss = loss + cfg.views_weight * multi_positive_loss(image_out, second, rows, VIEWS_LOGIT_SCALE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % cfg.log_every == 0 or step == total - 1:
            cfg.losses.append((step / steps_per_epoch, float(loss.detach())))
    model.eval()
    cfg.out.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    torch.save(state, cfg.out / "model.pt")
    shipped = {k: v.detach().half().contiguous() for k, v in state.items() if k.startswith(TRAINED_PREFIXES)}
    if any(k.startswith((TRUNK_PREFIX, TEXT_PREFIX)) for k in shipped):
        raise AssertionError("a frozen package tower would be shipped")
    save_file(shipped, str(cfg.out / "weights.safetensors"))
    write_loss_points(cfg.losses, cfg.out / "loss.csv", cfg.out / "loss.png", cfg.out.name)
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k != "losses"}
    summary |= {"images": len(picked), "steps": total, "final_loss": cfg.losses[-1][1],
                "logit_scale": float(model.logit_scale.exp())}
    (cfg.out / "train.json").write_text(json.dumps(summary, indent=2))
    return cfg.out / "model.pt"
