"""Counting sets built from boxes, for the RemoteCount protocol and area counts.

An image is cut into non-overlapping square chips (:func:`tiles.grid.iter_windows`; ``chip_px=None`` keeps the
whole image as one chip). A box counts in the chip that holds its centre, so the chips' true counts add up
to the image's. Chips with 1..10 objects form the RemoteCount set (top-1..top-10 accuracy); every chip's
estimate adds to its image's area count (mean absolute error against the image's box count).

Layouts understood by :func:`read_count_set` (the readers are :mod:`pipelines.datasets.boxes`):

- Airbus aircraft: ``DATA/annotations.csv`` (``id,image_id,geometry,class``) with the images in ``DATA/images/``
  or ``DATA/``; when the data is split into ``DATA/train/`` and a held-out ``DATA/valid/`` (or ``test/``,
  ``val/``), as the shared ``airbus-aircraft`` is, the held-out folder's images;
- Pascal VOC: ``DATA/annotations/*.xml`` (or ``Annotations/``) with the images in ``DATA/images/``
  (or ``JPEGImages/``): every annotated image;
- DOTA: ``DATA/labelTxt/*.txt`` with the images in ``DATA/images/``.

``split="airbus-aircraft"`` or ``split="ships-google-earth"`` (``evaluate --split``) keeps only the held-out images
of that shared dataset's fixed split (:func:`pipelines.datasets.splits.split_folder`) applied to the folder given;
a folder's name never chooses a split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipelines.datasets import boxes as box_readers
from pipelines.datasets import splits
from remoteclip.errors import InputError
from remoteclip.prompts import MAX_COUNT
from tiles.errors import RasterReadError
from tiles.grid import ChipSpec, iter_windows

#: the shared datasets whose fixed split ``read_count_set(..., split=NAME)`` can use (images with boxes)
COUNT_SPLITS: tuple[str, ...] = ("airbus-aircraft", "ships-google-earth")


@dataclass(frozen=True)
class CountChip:
    """A square chip ``(col_off, row_off, side_px)`` of an image and its true object count."""

    col_off: int
    row_off: int
    side_px: int
    true: int

    @property
    def in_remotecount_range(self) -> bool:
        """Whether the chip holds 1..10 objects, the counts RemoteCount's captions rank."""
        return 1 <= self.true <= MAX_COUNT


@dataclass(frozen=True)
class TrueCounts:
    """An image, its true object count and its chips."""

    path: Path
    true: int
    chips: tuple[CountChip, ...]


@dataclass(frozen=True)
class CountSet:
    """Images of one object kind cut into chips, for counting evaluation."""

    name: str
    object_name: str
    images: tuple[TrueCounts, ...]


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as exc:
        raise RasterReadError(f"cannot read image {path}: {exc}; convert it to JPEG/PNG/8-bit TIFF") from exc


def true_counts(annotated: box_readers.ImageBoxes, labels: set[str], chip_px: int | None) -> TrueCounts:
    """Cut one annotated image into chips and count the boxes labelled ``labels`` by their centres."""
    width, height = _image_size(annotated.image)
    centres = [b.center for b in annotated.boxes if b.label in labels]
    if chip_px is None or chip_px >= max(width, height):
        side = max(width, height)
        windows = [(0, 0, side)]
    else:
        windows = [
            (w.col_off, w.row_off, w.span_px) for w in iter_windows(width, height, ChipSpec(chip_px=chip_px))
        ]
    counts: Counter[int] = Counter()
    for x, y in centres:
        # clamp into the image so boxes touching the border still land in an edge chip
        x, y = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
        counts[next(i for i, (c, r, s) in enumerate(windows) if c <= x < c + s and r <= y < r + s)] += 1
    chips = tuple(CountChip(c, r, s, counts[i]) for i, (c, r, s) in enumerate(windows))
    return TrueCounts(annotated.image, len(centres), chips)


def _subfolder(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / name for name in names if (root / name).is_dir()), None)


def _image_folder(root: Path) -> Path:
    return _subfolder(root, ("images", "JPEGImages")) or root


def _airbus_image_folder(root: Path) -> Path:
    """``images/`` or the folder itself; of data split into ``train/`` and a held-out folder, the latter."""
    held_out = _subfolder(root, ("valid", "test", "val"))
    if held_out is not None and (root / "train").is_dir() and not (root / "images").is_dir():
        return held_out
    return _image_folder(root)


def _read_annotations(root: Path) -> list[box_readers.ImageBoxes]:
    if (root / "annotations.csv").is_file():
        return box_readers.read_airbus_csv(root / "annotations.csv", _airbus_image_folder(root))
    voc = _subfolder(root, ("annotations", "Annotations"))
    if voc is not None:
        return [box_readers.read_voc_xml(x, _image_folder(root)) for x in sorted(voc.glob("*.xml"))]
    if (root / "labelTxt").is_dir():
        images = {p.stem: p for p in _image_folder(root).iterdir() if p.is_file()}
        return [
            box_readers.read_dota_labeltxt(txt, images[txt.stem])
            for txt in sorted((root / "labelTxt").glob("*.txt"))
            if txt.stem in images
        ]
    raise InputError(
        f"no boxes found in {root}: expected annotations.csv (Airbus), annotations/*.xml (Pascal VOC) "
        "or labelTxt/*.txt (DOTA) next to the images"
    )


def _held_out(root: Path, split: str) -> list[box_readers.ImageBoxes]:
    """The annotated images of the held-out part of the fixed split ``split`` applied to ``root``."""
    splits.require_split(split, COUNT_SPLITS, "counting")
    held_out = splits.split_folder(split, root).test
    if (root / "annotations.csv").is_file():
        annotated = box_readers.read_airbus_csv(root / "annotations.csv", held_out[0].parent)
    else:
        annotated = _read_annotations(root)
    kept = set(held_out)
    return [a for a in annotated if a.image in kept]


def read_count_set(
    root: Path, object_name: str | None = None, chip_px: int | None = None, split: str | None = None
) -> CountSet:
    """A counting set from a folder of boxed images.

    Args:
        root: the dataset folder (see the module docstring for layouts).
        object_name: the canonical box label to count (``airplane``, ``ship``, ``boat``, ``small vehicle``…);
            by default the most common label.
        chip_px: side of the square chips in source pixels; ``None`` counts whole images.
        split: the name of a shared dataset (:data:`COUNT_SPLITS`) whose fixed split's held-out images to count,
            or ``None`` for the images of the layout (the folder's name plays no part in this choice).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"counting data {root} is not a folder of images with boxes")
    annotated = _read_annotations(root) if split is None else _held_out(root, split)
    label_counts = Counter(b.label for a in annotated for b in a.boxes)
    if not label_counts:
        raise InputError(f"the annotations in {root} hold no boxes")
    if object_name is None:
        object_name = label_counts.most_common(1)[0][0]
    object_name = box_readers.canonical_label(object_name)
    if object_name not in label_counts:
        raise InputError(
            f"no {object_name!r} boxes in {root}; labels there: {', '.join(sorted(label_counts))}"
        )
    kept = [a for a in annotated if any(b.label == object_name for b in a.boxes)]
    images = tuple(true_counts(a, {object_name}, chip_px) for a in kept)
    return CountSet(name=root.name if split is None else split, object_name=object_name, images=images)
