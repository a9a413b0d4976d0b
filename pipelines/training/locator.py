"""Training the object locator (:mod:`remoteclip.locator`) from every box, point and mask the project has.

1. **Chips and targets.** Each labelled scene of :data:`pipelines.training.sources.BOX_SOURCES` (training
   parts only: the held-out Airbus and ships images are never read) is cut into square windows at several
   scales, read at :data:`~remoteclip.locator.CHIP_PX`; each box's centre becomes a Gaussian peak on the
   stride-8 grid of its class (:data:`OBJECT_CLASSES` groups the datasets' labels).
2. **Queries.** A chip is asked for each class it holds, and for the classes it is known *not* to hold: its
   own dataset's classes where that dataset boxes every object (``exhaustive``), and airplanes / ships on the
   sources where none can be (:data:`ABSENT_ELSEWHERE`). Unboxed classes of a partial dataset are never asked.
   The query text is one of the class's synonyms, embedded by :func:`remoteclip.locator.object_embedding`.
3. **Cached trunk.** The frozen image tower runs once per chip; the head trains on the cached feature maps
   (focal loss on the heatmap, as CenterNet), so training takes minutes on two cores.
4. **Threshold.** Images held out of the training images by hash (:data:`VALIDATION_FRACTION`) choose the
   score threshold that makes the per-image counts closest (MAE), and report object precision / recall there.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pipelines.datasets.boxes import Box, clip_boxes
from pipelines.training.dedup import NearDuplicateFilter, perceptual_hash
from pipelines.training.sources import BOX_SOURCES, BoxScene, held_out_images
from remoteclip.factory import LoadedModel
from remoteclip.locator import (
    CHIP_PX,
    STRIDE,
    LocatorHead,
    ObjectLocator,
    chips_tensor,
    find_peaks,
    object_embedding,
    score_maps,
    trunk_features,
)
from tiles.grid import ChipWindow
from tiles.reader import open_scene

log = logging.getLogger(__name__)

#: object class -> the dataset labels it groups, and the words a query may use for it (the first is its name).
#: Vehicles and trees are left out on purpose: the shared data has a handful of them (5 and 2 chips), too few
#: to learn from, and DOTA's vehicles stay a class the locator never saw, for `evaluate counting`.
OBJECT_CLASSES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "airplane": (("airplane",), ("airplane", "airplanes", "aircraft", "plane", "planes", "jet", "airliner")),
    "ship": (("ship", "boat"), ("ship", "ships", "boat", "boats", "vessel", "vessels")),
    "building": (("building",), ("building", "buildings", "house", "houses")),
    "storage tank": (("storage tank",), ("storage tank", "storage tanks", "oil tank", "tanks")),
}
#: classes known absent from every chip of the datasets named (no airplanes at sea or over houses, ...)
ABSENT_ELSEWHERE: dict[str, tuple[str, ...]] = {
    "airplane": ("ships-google-earth", "deepforest", "building-footprints", "kampala-buildings"),
    "ship": ("airbus-aircraft", "deepforest", "building-footprints", "kampala-buildings"),
}
#: source pixels per chip side, as multiples of CHIP_PX
LEVELS: tuple[int, ...] = (1, 2, 4)
#: chips with no object kept per chip with objects (the rest are not read)
EMPTY_PER_BOXED = 0.5
#: share of each dataset's images held out (by hash of the file name) to choose the threshold
VALIDATION_FRACTION = 0.15
#: a found peak matches an object whose centre is within max(this many cells, half the box) of it
MATCH_CELLS = 1.5
#: thresholds tried on the validation images
THRESHOLDS: tuple[float, ...] = tuple(np.round(np.arange(0.1, 0.91, 0.05), 2))


@dataclass(frozen=True)
class LocatorChip:
    """One training chip: its pixels, its objects per class (centre x, y and size in chip pixels), and the
    classes known absent from it."""

    dataset: str
    image: str
    pixels: np.ndarray
    objects: dict[str, list[tuple[float, float, float]]]
    absent: frozenset[str]


@dataclass
class LocatorTrainConfig:
    """What ``train-locator`` does."""

    data: Path
    out: Path
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    #: cap on chips per dataset (None: all), for quick runs and tests
    max_chips_per_dataset: int | None = None


@dataclass
class LocatorTrainResult:
    """The trained locator and what training measured."""

    locator: ObjectLocator
    chips: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def object_class(label: str) -> str | None:
    """The object class a dataset label belongs to (None: not a countable object class)."""
    return next((name for name, (labels, _) in OBJECT_CLASSES.items() if label in labels), None)


def is_validation(image: Path) -> bool:
    """Whether a training image is held out to choose the threshold (stable hash of its file name)."""
    return zlib.crc32(image.name.encode()) % 1000 < VALIDATION_FRACTION * 1000


def locator_windows(width: int, height: int) -> Iterator[ChipWindow]:
    """Square windows at each level that fit the image, plus the whole image when it is smaller than that."""
    spans = [CHIP_PX * level for level in LEVELS if CHIP_PX * level <= max(width, height)]
    for span in spans or [max(width, height)]:
        stride = span
        for row in range(0, max(height - span, 0) + 1, stride):
            for col in range(0, max(width - span, 0) + 1, stride):
                yield ChipWindow(span // CHIP_PX or 1, col, row, min(span, width), min(span, height), span)


def scene_chips(scene: BoxScene, rng: np.random.Generator) -> Iterator[LocatorChip]:
    """The chips of one labelled scene with their objects, empty chips sampled."""
    classes = {c for c in (object_class(b.label) for b in scene.boxes.boxes) if c}
    own_absent = classes if scene.exhaustive else set()
    elsewhere = {c for c, datasets in ABSENT_ELSEWHERE.items() if scene.dataset in datasets}
    with open_scene(scene.boxes.image) as raster:
        windows = list(locator_windows(raster.width, raster.height))
        boxed: list[tuple[ChipWindow, list[Box]]] = []
        empty: list[tuple[ChipWindow, list[Box]]] = []
        for window in windows:
            bounds = (
                window.col_off,
                window.row_off,
                window.col_off + window.span_px,
                window.row_off + window.span_px,
            )
            boxes = [b for b in clip_boxes(scene.boxes.boxes, bounds) if object_class(b.label)]
            (boxed if boxes else empty).append((window, boxes))
        keep = rng.permutation(len(empty))[: int(len(boxed) * EMPTY_PER_BOXED) + 1]
        for window, boxes in boxed + [empty[i] for i in keep]:
            chip = raster.read_chip(window, CHIP_PX, min_valid=0.5)
            if chip is None:
                continue
            scale = CHIP_PX / window.span_px
            objects: dict[str, list[tuple[float, float, float]]] = {}
            for box in boxes:
                objects.setdefault(object_class(box.label) or "", []).append(_centre(box, scale))
            yield LocatorChip(
                scene.dataset,
                scene.boxes.image.name,
                chip,
                objects,
                frozenset((own_absent | elsewhere) - set(objects)),
            )


def _centre(box: Box, scale: float) -> tuple[float, float, float]:
    x, y = box.center
    return x * scale, y * scale, max(1.0, np.sqrt(box.area) * scale)


def heatmap_target(objects: Sequence[tuple[float, float, float]], cells: int) -> np.ndarray:
    """Gaussian peaks (1.0 at each centre cell) on a ``cells`` × ``cells`` stride-8 grid."""
    target = np.zeros((cells, cells), dtype=np.float32)
    ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32) + 0.5
    for x, y, size in objects:
        cx, cy = min(int(x / STRIDE), cells - 1), min(int(y / STRIDE), cells - 1)
        sigma = max(0.6, size / STRIDE / 6)
        target = np.maximum(target, np.exp(-((xs - cx - 0.5) ** 2 + (ys - cy - 0.5) ** 2) / (2 * sigma**2)))
        target[cy, cx] = 1.0
    return target


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of objects (at least 1)."""
    prob = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1.0).float()
    pos_loss = -torch.log(prob) * (1 - prob) ** 2 * positive
    neg_loss = -torch.log(1 - prob) * prob**2 * (1 - target) ** 4 * (1 - positive)
    return (pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1.0)


def training_scenes(data: Path) -> list[tuple[BoxScene, str]]:
    """The labelled scenes the locator trains on, each with its image's perceptual hash (16 hex digits).

    The box sources read training parts only; a scene whose image is within
    :data:`~pipelines.training.dedup.MAX_DISTANCE` bits of an evaluation image (the held-out splits and the
    Airbus ``valid/`` airports) is left out as well.
    """
    held_out = NearDuplicateFilter()
    for path in held_out_images(data):
        with Image.open(path) as image:
            held_out.add(perceptual_hash(image.convert("RGB")))
    kept = []
    for make in BOX_SOURCES:
        for scene in make(data):
            with Image.open(scene.boxes.image) as image:
                phash = perceptual_hash(image.convert("RGB"))
            if not held_out.seen(phash):
                kept.append((scene, f"{phash:016x}"))
    return kept


def collect_chips(data: Path, max_per_dataset: int | None = None, seed: int = 0) -> list[LocatorChip]:
    """Every training chip of the :func:`training_scenes`."""
    rng = np.random.default_rng(seed)
    chips: list[LocatorChip] = []
    per_dataset: dict[str, int] = {}
    for scene, _ in training_scenes(data):
        for chip in scene_chips(scene, rng):
            if max_per_dataset is not None and per_dataset.get(chip.dataset, 0) >= max_per_dataset:
                break
            per_dataset[chip.dataset] = per_dataset.get(chip.dataset, 0) + 1
            chips.append(chip)
    return chips


def cache_features(
    model: LoadedModel, chips: Sequence[LocatorChip], batch_size: int = 32
) -> list[torch.Tensor]:
    """The frozen trunk's feature maps of every chip, stacked per stride (float16, on the CPU)."""
    stacks: list[list[torch.Tensor]] = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(chips), batch_size), desc="trunk features", unit="batch"):
            batch = chips_tensor([c.pixels for c in chips[start : start + batch_size]], model.device)
            stacks.append([f.half().cpu() for f in trunk_features(model, batch)])
    return [torch.cat([s[i] for s in stacks]) for i in range(len(stacks[0]))]


def class_embeddings(model: LoadedModel) -> dict[str, np.ndarray]:
    """Each class's synonyms embedded as queries (S, D), the class name first."""
    return {
        name: np.stack([object_embedding(model, w) for w in words])
        for name, (_, words) in OBJECT_CLASSES.items()
    }


def trained_words(texts: dict[str, np.ndarray]) -> tuple[tuple[str, ...], np.ndarray]:
    """Every query word the head was trained with: its class per row, and its embedding (W, D)."""
    classes = tuple(name for name in OBJECT_CLASSES for _ in texts[name])
    return classes, np.concatenate([texts[name] for name in OBJECT_CLASSES])


def training_queries(chips: Sequence[LocatorChip], cells: int) -> list[tuple[int, str, np.ndarray]]:
    """(chip index, class, target heatmap) for every class asked of every chip."""
    out = []
    for i, chip in enumerate(chips):
        for name in sorted(set(chip.objects) | chip.absent):
            out.append((i, name, heatmap_target(chip.objects.get(name, []), cells)))
    return out


def train_locator(model: LoadedModel, config: LocatorTrainConfig) -> LocatorTrainResult:
    """Collect chips, cache the trunk, train the head, choose the threshold on the validation images."""
    started = time.monotonic()
    chips = collect_chips(config.data, config.max_chips_per_dataset, config.seed)
    train = [c for c in chips if not is_validation(Path(c.image))]
    valid = [c for c in chips if is_validation(Path(c.image))]
    log.info("locator chips: %d training, %d validation", len(train), len(valid))
    texts = class_embeddings(model)
    features = cache_features(model, train)
    head = fit_head(features, training_queries(train, features[0].shape[-1]), texts, config)
    locator = ObjectLocator(head, model.model_id, 0.5, *trained_words(texts), {})
    threshold, figures = choose_threshold(model, locator, valid, {n: texts[n][0] for n in OBJECT_CLASSES})
    locator.threshold = threshold
    locator.validation = figures
    per_dataset: dict[str, int] = {}
    for chip in chips:
        per_dataset[chip.dataset] = per_dataset.get(chip.dataset, 0) + 1
    return LocatorTrainResult(locator, per_dataset, time.monotonic() - started)


def fit_head(
    features: Sequence[torch.Tensor],
    queries: Sequence[tuple[int, str, np.ndarray]],
    texts: dict[str, np.ndarray],
    config: LocatorTrainConfig,
) -> LocatorHead:
    """Train a head on cached feature maps: each query is (chip index, class, target heatmap), its text one
    of the class's embeddings (``texts[class]``, (S, D)) drawn at random each time."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    text_dim = next(iter(texts.values())).shape[-1]
    head = LocatorHead([f.shape[1] for f in features], text_dim)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=1e-4)
    steps = config.epochs * ((len(queries) + config.batch_size - 1) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=max(steps, 1))
    head.train()
    for epoch in range(config.epochs):
        order = rng.permutation(len(queries))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = [queries[j] for j in order[start : start + config.batch_size]]
            index = torch.tensor([b[0] for b in batch])
            text = torch.from_numpy(np.stack([texts[b[1]][rng.integers(len(texts[b[1]]))] for b in batch]))
            target = torch.from_numpy(np.stack([b[2] for b in batch]))
            loss = focal_loss(head([f[index].float() for f in features], text), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        log.info("locator epoch %d/%d: loss %.4f", epoch + 1, config.epochs, total / max(len(queries), 1))
    head.eval()
    return head


def match_counts(found: Sequence[tuple[float, float]], objects: Sequence[tuple[float, float, float]]) -> int:
    """How many objects a found peak lies close enough to (each object and each peak matched once)."""
    used: set[int] = set()
    matched = 0
    for fx, fy in found:
        best, best_d = None, None
        for j, (x, y, size) in enumerate(objects):
            d = np.hypot(fx - x, fy - y)
            if j not in used and d <= max(MATCH_CELLS * STRIDE, size / 2) and (best_d is None or d < best_d):
                best, best_d = j, d
        if best is not None:
            used.add(best)
            matched += 1
    return matched


def choose_threshold(
    model: LoadedModel, locator: ObjectLocator, chips: Sequence[LocatorChip], queries: dict[str, np.ndarray]
) -> tuple[float, dict[str, float]]:
    """The threshold whose chip counts are closest to the truth on ``chips`` (count MAE), and its figures."""
    asked = [(chip, name) for chip in chips for name in sorted(set(chip.objects) | chip.absent)]
    if not asked:
        return locator.threshold, {}
    maps = {}
    for name in sorted({name for _, name in asked}):
        group = [chip for chip, n in asked if n == name]
        maps[name] = score_maps(model, locator, [c.pixels for c in group], queries[name])
    rows = []
    for threshold in THRESHOLDS:
        errors, found_total, true_total, matched_total = [], 0, 0, 0
        seen: dict[str, int] = {}
        for chip, name in asked:
            k = seen.get(name, 0)
            seen[name] = k + 1
            peaks = find_peaks(maps[name][k], float(threshold))
            objects = chip.objects.get(name, [])
            errors.append(abs(len(peaks) - len(objects)))
            found_total += len(peaks)
            true_total += len(objects)
            matched_total += match_counts([(p.x, p.y) for p in peaks], objects)
        rows.append((float(np.mean(errors)), float(threshold), found_total, true_total, matched_total))
    mae, threshold, found, true, matched = min(rows)
    figures = {
        "chips": len(asked),
        "chip_count_mae": round(mae, 3),
        "precision": round(matched / found, 3) if found else 0.0,
        "recall": round(matched / true, 3) if true else 0.0,
        "objects": true,
    }
    return threshold, figures


def manifest_rows(data: Path) -> list[tuple[str, str, str]]:
    """(source, image, phash) of every image the locator's chips are cut from (training and threshold images);
    ``image`` is relative to ``data``."""
    rows = {(s.dataset, s.boxes.image.relative_to(data).as_posix(), phash) for s, phash in training_scenes(data)}
    return sorted(rows)
