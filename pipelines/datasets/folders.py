"""Class-folder layouts of scene datasets (``DATA/<class>/*.jpg``, or under ``train/``, ``val/``, ``test/``).

The class name is the folder name made readable by :func:`readable_class_name`: ``_`` becomes a space,
CamelCase is split (``RiverLake`` -> ``river lake``), and an ordinal letter prefix shared by all folders
(RSSCN7's ``aGrass``, ``bField`` … ``gParking``) is dropped. This covers EuroSAT, RESISC45, PatternNet,
WHU-RS19, UCM (``UCMerced_LandUse/Images``) and RSSCN7 as distributed.
"""

from __future__ import annotations

import re
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
#: sub-folders that split a dataset rather than name a class
SPLIT_FOLDERS: tuple[str, ...] = ("train", "val", "test")

#: readable names of the UC Merced classes whose folder names run words together
_UCM_READABLE = {
    "baseballdiamond": "baseball diamond",
    "denseresidential": "dense residential",
    "golfcourse": "golf course",
    "mediumresidential": "medium residential",
    "mobilehomepark": "mobile home park",
    "parkinglot": "parking lot",
    "sparseresidential": "sparse residential",
    "storagetanks": "storage tanks",
    "tenniscourt": "tennis court",
}


def images_in(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def class_folders(root: Path) -> list[Path]:
    """The sub-folders of ``root`` that hold images (hidden ones skipped), sorted."""
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and images_in(d))


def has_ordinal_prefix(names: list[str]) -> bool:
    """RSSCN7 style: every name is a lower-case letter then CamelCase, letters a, b, c, … in order."""
    if len(names) < 2 or not all(re.fullmatch(r"[a-z][A-Z]\w*", n) for n in names):
        return False
    return [n[0] for n in sorted(names)] == [chr(ord("a") + i) for i in range(len(names))]


def readable_class_name(folder_name: str, strip_prefix: bool = False) -> str:
    """``DenseResidential`` -> ``dense residential``; with strip ``aGrass`` -> ``grass``."""
    name = folder_name[1:] if strip_prefix else folder_name
    name = _UCM_READABLE.get(name, name)
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.replace("_", " "))
    return " ".join(name.lower().split())


def labelled_from_folders(root: Path, strip_prefix: bool) -> list[tuple[Path, str]]:
    """(image, readable class name) for every image of every class folder directly under ``root``."""
    return [
        (path, readable_class_name(folder.name, strip_prefix))
        for folder in class_folders(root)
        for path in images_in(folder)
    ]


def split_parts(root: Path) -> list[Path]:
    """``root``'s ``train/``, ``val/``, ``test/`` folders that exist (empty when it has no ``train/``)."""
    if not (root / "train").is_dir():
        return []
    return [root / name for name in SPLIT_FOLDERS if (root / name).is_dir()]


def labelled_images(root: Path) -> list[tuple[Path, str]]:
    """Every (image, class name) of a class-folder dataset, its split folders (if any) merged."""
    parts = split_parts(root) or [root]
    strip = has_ordinal_prefix(sorted({d.name for part in parts for d in class_folders(part)}))
    return [pair for part in parts for pair in labelled_from_folders(part, strip)]
