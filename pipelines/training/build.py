"""The trainset builder: image-caption pairs from ``../shared/data`` by B2C, M2B and captions.

Output folder layout (what ``remoteclip-explorer train --trainset`` and ``open_clip_train --train-data`` read)::

    pairs.tsv          filepath<TAB>caption<TAB>source<TAB>dataset, one row per caption (5 per image);
                       filepath is relative to the folder; source is b2c | m2b | human | scene
    images/<dataset>/  the chips and images, ``--out-px`` square, WebP (small enough to move to a GPU machine)
                       or JPEG
    manifest.csv.gz    source,image,phash: one row per training image (its dataset, its path here, its 64-bit
                       perceptual hash as 16 hex digits), to audit what a model saw
    DATASET_CARD.md    pairs per source and dataset, caption examples
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipelines.datasets import splits
from pipelines.datasets.boxes import clip_boxes
from pipelines.training.captions import b2c_captions, empty_captions
from pipelines.training.dedup import MAX_DISTANCE, NearDuplicateFilter, perceptual_hash
from pipelines.training.source_dir import held_out_source_images, source_dir_images, source_dir_scenes
from pipelines.training.sources import BOX_SOURCES, CAPTION_SOURCES, BoxScene, CaptionedImage, held_out_images
from pipelines.training.train import PAIRS_FILE
from remoteclip.errors import InputError
from tiles.grid import ChipSpec, ChipWindow, iter_windows
from tiles.reader import open_scene

CARD_FILE = "DATASET_CARD.md"
MANIFEST_FILE = "manifest.csv.gz"
PAIR_COLUMNS = ("filepath", "caption", "source", "dataset")
MANIFEST_COLUMNS = ("source", "image", "phash")
#: the card shows the n-th image of each dataset for these n (spread over its scenes)
EXAMPLE_AT = frozenset({1, 40, 150, 400, 1000})
#: an exhaustively labelled scene gives at most this many chips without boxes per chip with boxes
EMPTY_PER_BOXED = 0.5


@dataclass
class TrainsetStats:
    """What was written and what was dropped, for the dataset card."""

    images: Counter[tuple[str, str]] = field(default_factory=Counter)
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    empty: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: (dataset, image path in the trainset, perceptual hash of the written file as 16 hex digits) per image
    manifest: list[tuple[str, str, str]] = field(default_factory=list)


def scene_windows(width: int, height: int, scene: BoxScene) -> Iterator[ChipWindow]:
    """Full (unclipped) grid windows at each level, then the image's centre square."""
    if scene.levels:
        for window in iter_windows(width, height, ChipSpec(chip_px=scene.chip_px, levels=scene.levels)):
            if window.width == window.span_px and window.height == window.span_px:
                yield window
    side = min(width, height)
    yield ChipWindow(level=0, col_off=(width - side) // 2, row_off=(height - side) // 2,
                     width=side, height=side, span_px=side)


def _bounds(window: ChipWindow) -> tuple[int, int, int, int]:
    return window.col_off, window.row_off, window.col_off + window.width, window.row_off + window.height


def _chip_name(scene: BoxScene, window: ChipWindow) -> str:
    return f"{scene.boxes.image.stem}_L{window.level}_{window.col_off}_{window.row_off}"


def box_scene_chips(scene: BoxScene, out_px: int) -> Iterator[tuple[str, np.ndarray, list[str]]]:
    """(chip name, uint8 chip, five B2C captions) for every chip of the scene that holds at least one box."""
    with open_scene(scene.boxes.image) as raster:
        for window in scene_windows(raster.width, raster.height, scene):
            boxes = clip_boxes(scene.boxes.boxes, _bounds(window))
            if not boxes:
                continue
            chip = raster.read_chip(window, out_px, min_valid=0.9)
            if chip is not None:
                yield _chip_name(scene, window), chip, b2c_captions(boxes, window.width, window.height)


def empty_scene_chips(scene: BoxScene, out_px: int, boxed: int) -> Iterator[tuple[str, np.ndarray, list[str]]]:
    """Up to ``boxed * EMPTY_PER_BOXED`` chips that no box touches, from an exhaustively labelled scene only.

    The chips are drawn in an order seeded by the image name (rebuilds give the same ones) and captioned with
    the absence of the scene's classes, so the model sees "no airplanes" as well as "one airplane".
    """
    wanted = int(boxed * EMPTY_PER_BOXED)
    labels = {box.label for box in scene.boxes.boxes}
    if not scene.exhaustive or not labels or wanted == 0:
        return
    captions = empty_captions(labels)
    with open_scene(scene.boxes.image) as raster:
        windows = [window for window in scene_windows(raster.width, raster.height, scene)
                   if not clip_boxes(scene.boxes.boxes, _bounds(window), min_visible=0.0)]
        order = np.random.default_rng(zlib.crc32(scene.boxes.image.name.encode())).permutation(len(windows))
        for index in order:
            chip = raster.read_chip(windows[index], out_px, min_valid=0.9)
            if chip is not None:
                yield _chip_name(scene, windows[index]), chip, list(captions)
                wanted -= 1
                if wanted == 0:
                    return


def captioned_chip(item: CaptionedImage, out_px: int) -> np.ndarray:
    """The image of a captioned pair, resized to ``out_px`` square."""
    with Image.open(item.image) as image:
        return np.asarray(image.convert("RGB").resize((out_px, out_px), Image.Resampling.BICUBIC))


class TrainsetWriter:
    """Writes chips as JPEG and their captions as rows of ``pairs.tsv``, skipping near duplicates.

    A context manager: ``pairs.tsv`` is open from ``__init__`` until the ``with`` block ends.
    """

    def __init__(self, out: Path, image_format: str, quality: int, dedup: NearDuplicateFilter) -> None:
        self.out = out
        self.image_format = image_format
        self.quality = quality
        self.dedup = dedup
        self.stats = TrainsetStats()
        self._file = open(out / PAIRS_FILE, "w", newline="")  # noqa: SIM115  (closed by __exit__)
        self._rows = csv.writer(self._file, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
        self._rows.writerow(PAIR_COLUMNS)

    def add(self, source: str, dataset: str, name: str, chip: np.ndarray, captions: list[str],
            empty: bool = False) -> None:
        """Write one image and its captions unless it nearly duplicates an earlier or a held-out image.

        ``empty``: the image holds none of its scene's classes (counted apart on the card).
        """
        image = Image.fromarray(chip)
        phash = perceptual_hash(image)
        if not self.dedup.keep(phash):
            self.stats.duplicates[dataset] += 1
            return
        self.stats.empty[source, dataset] += empty
        relative = Path("images") / dataset / f"{name}.{self.image_format}"
        (self.out / relative).parent.mkdir(parents=True, exist_ok=True)
        image.save(self.out / relative, quality=self.quality)
        for caption in captions:
            self._rows.writerow((relative.as_posix(), caption, source, dataset))
        self.stats.images[source, dataset] += 1
        with Image.open(self.out / relative) as written:  # lossy WebP/JPEG can move the hash a bit or two
            self.stats.manifest.append((dataset, relative.as_posix(), f"{perceptual_hash(written):016x}"))
        self.stats.pairs[source, dataset] += len(captions)
        if self.stats.images[source, dataset] in EXAMPLE_AT:
            self.stats.examples.setdefault(dataset, []).append(f"`{relative.as_posix()}`: " + " / ".join(captions))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()


def write_manifest(rows: list[tuple[str, str, str]], path: Path) -> Path:
    """The training images as gzipped CSV ``source,image,phash``."""
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    return path


def write_trainset(data: Path, out: Path, out_px: int = 160, image_format: str = "webp", quality: int = 80,
                   progress: bool = True, source_dir: Path | None = None) -> TrainsetStats:
    """Build the training pairs from ``data`` (``../shared/data``) and ``source_dir`` into ``out``.

    ``source_dir``: public datasets in their standard layouts (:mod:`pipelines.training.source_dir`).
    Returns what was written.
    """
    if not (data / "rsscn7").is_dir():
        raise InputError(f"{data} does not look like ../shared/data (no rsscn7/ inside); pass --data")
    out.mkdir(parents=True, exist_ok=True)
    dedup = NearDuplicateFilter()
    for path in held_out_images(data) + held_out_source_images(source_dir):
        with Image.open(path) as image:
            dedup.add(perceptual_hash(image.convert("RGB")))
    held_out = len(dedup)
    box_scenes = [scene for make in BOX_SOURCES for scene in make(data)]
    captioned = [item for make in CAPTION_SOURCES for item in make(data)]
    if source_dir is not None:
        box_scenes += source_dir_scenes(source_dir)
        captioned += source_dir_images(source_dir)
    with TrainsetWriter(out, image_format, quality, dedup) as writer:
        for scene in tqdm(box_scenes, desc="B2C/M2B scenes", unit="scene", disable=not progress):
            boxed = 0
            for name, chip, captions in box_scene_chips(scene, out_px):
                writer.add(scene.source, scene.dataset, name, chip, captions)
                boxed += 1
            for name, chip, captions in empty_scene_chips(scene, out_px, boxed):
                writer.add(scene.source, scene.dataset, name, chip, captions, empty=True)
        for item in tqdm(captioned, desc="captioned images", unit="image", disable=not progress):
            writer.add(item.source, item.dataset, item.image.stem, captioned_chip(item, out_px), list(item.captions))
    write_manifest(writer.stats.manifest, out / MANIFEST_FILE)
    provenance = source_provenance(source_dir) if source_dir is not None else []
    (out / CARD_FILE).write_text(dataset_card(writer.stats, held_out, out_px, image_format, quality, provenance))
    return writer.stats


def source_provenance(source_dir: Path) -> list[dict[str, Any]]:
    """Where each ``--source-dir`` dataset came from: the entries of the ``*.json`` lists beside the datasets
    (``dataset``, ``repo``, ``commit``, ``licence``, ...), as the fetch that brought them wrote them."""
    entries: list[dict[str, Any]] = []
    for path in sorted(source_dir.glob("*.json")):
        listed = json.loads(path.read_text())
        entries += [entry for entry in listed if isinstance(entry, dict) and "dataset" in entry]
    return sorted(entries, key=lambda entry: str(entry["dataset"]))


def dataset_card(stats: TrainsetStats, held_out: int, out_px: int, image_format: str, quality: int,
                 provenance: Sequence[dict[str, Any]] = ()) -> str:
    """The dataset card: pairs per source and dataset, duplicates dropped, provenance, caption examples."""
    lines = [
        "# Dataset card: RemoteCLIP Explorer training pairs",
        "",
        "Built by `remoteclip-explorer build-trainset --data ../shared/data --source-dir data/sources --out trainset/`",
        "from the real imagery in `../shared/data` and the public datasets fetched into `data/sources` (never",
        "committed; licences below and per source folder in `../shared/data`; several are research-only, so the",
        "pairs are never redistributed with the project). Held-out evaluation images (`pipelines/datasets/splits.py`:",
        "`airbus-aircraft/valid`, 20 % of rsscn7, ucm-captions and ships-google-earth per class, and the datasets",
        f"kept out whole: {', '.join(splits.HELD_OUT_SOURCES)}) are excluded,",
        f"and so is any chip whose perceptual hash is within {MAX_DISTANCE} bits of one of those {held_out} held-out",
        f"images or of an earlier chip. Images are {out_px} px squares, {image_format.upper()} quality {quality}; five captions",
        "per image.",
        "",
        "Sources: `b2c` = Box-to-Caption on chips cut at several scales from labelled scenes (airbus-aircraft/train,",
        "ships-google-earth, DOTA/DIOR samples, DeepForest trees, building footprints over xView2 Joplin and SpaceNet);",
        "`m2b` = Mask-to-Box on Kampala building masks, then B2C; `human` = UCM-captions; `scene` = RSSCN7 labels",
        "turned into template captions. From `--source-dir`: scene sets (class folders) through the same templates,",
        "detection sets (VOC, YOLO, COCO, DOTA layouts) through B2C. Every image is listed with its perceptual hash",
        "in `manifest.csv.gz` (shipped as `docs/trainset-manifest.csv.gz`).",
        "",
        "Empty chips: scenes whose boxes cover every object of their classes (airbus-aircraft, ships-google-earth,",
        f"DOTA/DIOR) also give chips that no box touches, at most {EMPTY_PER_BOXED:g} per chip with boxes, drawn in",
        "an order seeded by the image name and captioned with the absence of the scene's classes",
        '("There are no airplanes in the image.", "A satellite photo of no airplanes.").',
        "",
        "| source | dataset | images | of which empty | pairs | near duplicates dropped |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (source, dataset), images in sorted(stats.images.items()):
        lines.append(f"| {source} | {dataset} | {images} | {stats.empty[source, dataset]} | "
                     f"{stats.pairs[source, dataset]} | {stats.duplicates[dataset]} |")
    lines.append(f"| **all** | | **{sum(stats.images.values())}** | **{sum(stats.empty.values())}** | "
                 f"**{sum(stats.pairs.values())}** | **{sum(stats.duplicates.values())}** |")
    if provenance:
        lines += ["", "## Where the --source-dir datasets came from", "",
                  "| dataset | repository @ commit | path in the repository | licence (as upstream states) |",
                  "|---|---|---|---|"]
        lines += [f"| {entry['dataset']} | `{entry.get('repo', '?')}` @ `{entry.get('commit', '?')}` | "
                  f"{entry.get('path_in_repo', '')} | {entry.get('licence', 'not recorded')} |" for entry in provenance]
    lines += ["", "## Caption examples", ""]
    for dataset, examples in sorted(stats.examples.items()):
        lines += [f"**{dataset}**", ""] + [f"- {example}" for example in examples] + [""]
    return "\n".join(lines)
