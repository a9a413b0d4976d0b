"""Fixed, documented evaluation splits of ``../shared/data`` (shared by ``build-trainset`` and ``evaluate``).

Rules (deterministic, independent of file order and machine):

- ``airbus-aircraft``: ``train/`` is for training, ``valid/`` is held out entirely.
- ``rsscn7``, ``ucm-captions``, ``ships-google-earth``: within each class, images are ranked by
  ``sha256("<dataset>/<image id>")`` and the first ``round(0.2 * n)`` are held out (exactly 20 % per class).
  RSSCN7's class is its folder (12 of 60 held out per class); UCM's class is ``UCM_CLASSES[(id - 1) // 100]``
  (16 of 80 per class); ships-google-earth has one class (77 of 386 held out).
- Every other source (DOTA, DeepForest, building footprints, Kampala masks) is training data only.

Images are identified by their file stem (``boat12``, ``1001``, ``aGrass/a001``'s ``a001``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from remoteclip.errors import InputError

HELD_OUT_FRACTION = 0.2

#: the 21 UC Merced classes in alphabetical order; an image id's class is ``UCM_CLASSES[(id - 1) // 100]``
UCM_CLASSES: tuple[str, ...] = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential",
    "forest", "freeway", "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark",
    "overpass", "parkinglot", "river", "runway", "sparseresidential", "storagetanks", "tenniscourt",
)


@dataclass(frozen=True)
class Split:
    """One dataset's images, each with its class, divided into training and held-out parts."""

    dataset: str
    train: tuple[Path, ...]
    test: tuple[Path, ...]
    labels: dict[Path, str]


def _rank_key(dataset: str, image_id: str) -> str:
    return hashlib.sha256(f"{dataset}/{image_id}".encode()).hexdigest()


def split_by_hash(dataset: str, labelled: Iterable[tuple[Path, str]]) -> Split:
    """Hold out the first ``round(0.2 * n)`` images of each class ranked by the hash of their id."""
    by_class: dict[str, list[Path]] = {}
    labels: dict[Path, str] = {}
    for path, label in labelled:
        by_class.setdefault(label, []).append(path)
        labels[path] = label
    train: list[Path] = []
    test: list[Path] = []
    for paths in by_class.values():
        ranked = sorted(paths, key=lambda p: _rank_key(dataset, p.stem))
        n_test = round(HELD_OUT_FRACTION * len(ranked))
        test.extend(ranked[:n_test])
        train.extend(ranked[n_test:])
    return Split(dataset, tuple(sorted(train)), tuple(sorted(test)), labels)


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise InputError(f"data folder {path} not found; pass --data pointing at ../shared/data")
    return path


def ucm_class(image_id: int) -> str:
    """The UC Merced class of a UCM-captions image id (1-based)."""
    if not 1 <= image_id <= 100 * len(UCM_CLASSES):
        raise InputError(f"UCM image id {image_id} is outside 1..{100 * len(UCM_CLASSES)}")
    return UCM_CLASSES[(image_id - 1) // 100]


def rsscn7(data: Path) -> Split:
    """RSSCN7: class = folder name (``aGrass`` ...), 20 % of each class held out."""
    root = _require_dir(data / "rsscn7")
    labelled = [(p, p.parent.name) for p in sorted(root.glob("*/*.jpg"))]
    return split_by_hash("rsscn7", labelled)


def ucm_captions(data: Path) -> Split:
    """UCM-captions train images: class from the image id, 20 % of each class held out."""
    root = _require_dir(data / "ucm-captions" / "images")
    labelled = [(p, ucm_class(int(p.stem))) for p in sorted(root.glob("*.jpg"))]
    return split_by_hash("ucm-captions", labelled)


def ships_google_earth(data: Path) -> Split:
    """Ships in Google Earth: one class (``boat``), 20 % held out."""
    root = _require_dir(data / "ships-google-earth" / "images")
    return split_by_hash("ships-google-earth", [(p, "boat") for p in sorted(root.glob("*.jpg"))])


def airbus_aircraft(data: Path) -> Split:
    """Airbus aircraft: ``train/`` trains, ``valid/`` is held out entirely."""
    root = _require_dir(data / "airbus-aircraft")
    train = tuple(sorted((root / "train").glob("*.jpg")))
    test = tuple(sorted((root / "valid").glob("*.jpg")))
    return Split("airbus-aircraft", train, test, {p: "airplane" for p in train + test})


#: dataset name -> split function, for ``evaluate`` and ``build-trainset``
SPLITS: dict[str, Callable[[Path], Split]] = {
    "rsscn7": rsscn7,
    "ucm-captions": ucm_captions,
    "ships-google-earth": ships_google_earth,
    "airbus-aircraft": airbus_aircraft,
}


def get_split(name: str, data: Path) -> Split:
    """The split of dataset ``name`` under the data root ``data``."""
    if name not in SPLITS:
        raise InputError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
    return SPLITS[name](data)
