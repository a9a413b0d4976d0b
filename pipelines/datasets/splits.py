"""Fixed, documented evaluation splits of ``../shared/data`` (shared by ``build-trainset`` and ``evaluate``).

Rules (deterministic, independent of file order and machine):

- ``airbus-aircraft``: ``train/`` is for training, ``valid/`` is held out entirely.
- ``rsscn7``, ``ucm-captions``, ``ships-google-earth``: within each class, images are ranked by
  ``sha256("<dataset>/<image id>")`` and the first ``round(0.2 * n)`` are held out (exactly 20 % per class).
  RSSCN7's class is its folder (12 of 60 held out per class); UCM's class is ``UCM_CLASSES[(id - 1) // 100]``
  (16 of 80 per class); ships-google-earth has one class (77 of 386 held out).
- Every other source (DOTA, DeepForest, building footprints, Kampala masks) is training data only.

Images are identified by their file stem (``boat12``, ``1001``, ``aGrass/a001``'s ``a001``).

``build-trainset`` reads them under a data root (:func:`get_split`). ``evaluate`` applies one only when asked
for it by name (``--split rsscn7``), to the folder it is given (:func:`split_folder`), never because a folder
happens to be named like a dataset here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
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


def rank_key(dataset: str, image_id: str) -> str:
    """The key images are ranked by to choose held-out parts: ``sha256("<dataset>/<image id>")``."""
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
        ranked = sorted(paths, key=lambda p: rank_key(dataset, p.stem))
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


def rsscn7_folder(root: Path) -> Split:
    """RSSCN7 in folder ``root`` (``root/<class>/*.jpg``): class = folder name, 20 % of each class held out."""
    labelled = [(p, p.parent.name) for p in sorted(Path(root).glob("*/*.jpg"))]
    return split_by_hash("rsscn7", labelled)


def rsscn7(data: Path) -> Split:
    """RSSCN7: class = folder name (``aGrass`` ...), 20 % of each class held out."""
    return rsscn7_folder(_require_dir(data / "rsscn7"))


def ucm_captions_folder(root: Path) -> Split:
    """UCM-captions train images in folder ``root`` (``root/images/<id>.jpg``), 20 % of each class held out."""
    labelled = [(p, ucm_class(int(p.stem))) for p in sorted((Path(root) / "images").glob("*.jpg"))]
    return split_by_hash("ucm-captions", labelled)


def ucm_captions(data: Path) -> Split:
    """UCM-captions train images: class from the image id, 20 % of each class held out."""
    _require_dir(data / "ucm-captions" / "images")
    return ucm_captions_folder(data / "ucm-captions")


def ships_google_earth_folder(root: Path) -> Split:
    """Ships in Google Earth in folder ``root`` (``root/images/*.jpg``): one class, 20 % held out."""
    images = sorted((Path(root) / "images").glob("*.jpg"))
    return split_by_hash("ships-google-earth", [(p, "boat") for p in images])


def ships_google_earth(data: Path) -> Split:
    """Ships in Google Earth: one class (``boat``), 20 % held out."""
    _require_dir(data / "ships-google-earth" / "images")
    return ships_google_earth_folder(data / "ships-google-earth")


def airbus_aircraft_folder(root: Path) -> Split:
    """Airbus aircraft in folder ``root``: ``root/train/`` trains, ``root/valid/`` is held out entirely."""
    train = tuple(sorted((Path(root) / "train").glob("*.jpg")))
    test = tuple(sorted((Path(root) / "valid").glob("*.jpg")))
    return Split("airbus-aircraft", train, test, {p: "airplane" for p in train + test})


def airbus_aircraft(data: Path) -> Split:
    """Airbus aircraft: ``train/`` trains, ``valid/`` is held out entirely."""
    return airbus_aircraft_folder(_require_dir(data / "airbus-aircraft"))


#: dataset name -> split function of a data root (the dataset is the root's folder of that name), for
#: ``build-trainset``
SPLITS: dict[str, Callable[[Path], Split]] = {
    "rsscn7": rsscn7,
    "ucm-captions": ucm_captions,
    "ships-google-earth": ships_google_earth,
    "airbus-aircraft": airbus_aircraft,
}

#: dataset name -> split function of that dataset's own folder, wherever it lies and whatever it is named
FOLDER_SPLITS: dict[str, Callable[[Path], Split]] = {
    "rsscn7": rsscn7_folder,
    "ucm-captions": ucm_captions_folder,
    "ships-google-earth": ships_google_earth_folder,
    "airbus-aircraft": airbus_aircraft_folder,
}

#: the layout each split function of :data:`FOLDER_SPLITS` reads, for error messages
FOLDER_LAYOUTS: dict[str, str] = {
    "rsscn7": "<class>/*.jpg",
    "ucm-captions": "images/<id>.jpg",
    "ships-google-earth": "images/*.jpg",
    "airbus-aircraft": "train/*.jpg and valid/*.jpg",
}


def get_split(name: str, data: Path) -> Split:
    """The split of dataset ``name`` under the data root ``data``."""
    if name not in SPLITS:
        raise InputError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
    return SPLITS[name](data)


def require_split(name: str, known: Sequence[str], what: str) -> str:
    """``name`` if it is one of the ``known`` splits usable for ``what``; else an error listing them."""
    if name not in known:
        raise InputError(f"unknown {what} split {name!r}; choose one of {', '.join(known)}")
    return name


def split_folder(name: str, folder: Path) -> Split:
    """The fixed split of dataset ``name`` applied to ``folder``, a copy of that dataset (named anything).

    The rule is the one of ``name`` (the hash is keyed by ``name``, not by the folder's name), so a copy of
    ``../shared/data/rsscn7`` elsewhere gets the same held-out images as the original.
    """
    require_split(name, tuple(FOLDER_SPLITS), "dataset")
    split = FOLDER_SPLITS[name](Path(folder))
    if not split.test:
        raise InputError(
            f"{folder} has no images of the {name} split: it expects {folder}/{FOLDER_LAYOUTS[name]}"
        )
    return split


#: datasets of ``build-trainset --source-dir`` kept out of training whole, for evaluation on imagery never seen;
#: their images join the held-out images every training image is deduplicated against
HELD_OUT_SOURCES: tuple[str, ...] = ("hurricane-harvey-damage", "satellite-image-classification-4class")
#: evaluation sets that no ``--source-dir`` folder may feed into training (AID, and RSICD/RSITMD built on it)
NEVER_TRAINED: frozenset[str] = frozenset({"aid", "rsicd", "rsitmd", "ucmerced-landuse", "uc-merced"})
