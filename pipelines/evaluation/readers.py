"""Readers for the evaluation data formats users already have.

Classification (zero-shot, linear probe, k-NN, few-shot): :func:`read_classification`

- a folder per class: ``DATA/<class>/*.jpg``. The class name is the folder name made readable by
  :func:`readable_class_name`: ``_`` becomes a space, CamelCase is split (``RiverLake`` -> ``river lake``),
  and an ordinal letter prefix shared by all folders (RSSCN7's ``aGrass``, ``bField`` … ``gParking``) is
  dropped.
  This covers EuroSAT, AID, RESISC45, UCM (``UCMerced_LandUse/Images``) and RSSCN7 as distributed.
- ``DATA/train/<class>/…`` and ``DATA/test/<class>/…`` (optionally ``val/``): the folders are the split.
- otherwise the held-out part is chosen with :func:`pipelines.datasets.splits.split_by_hash` (20 % of each class,
  keyed by the folder's name) for the probes, and zero-shot scores every image.
- ``split="rsscn7"`` or ``split="ucm-captions"`` (``evaluate --split``) asks for the fixed split of that shared
  dataset (:func:`pipelines.datasets.splits.split_folder`), applied to the folder given: zero-shot then scores
  its held-out part only. A folder's name never chooses a split.

Retrieval: :func:`read_captions`

- a CSV/TSV with columns ``filepath`` and ``caption`` (or open_clip's ``title``); paths relative to the file;
  several rows with the same image give it several captions;
- a Karpathy-style JSON (``dataset_rsicd.json``, ``dataset_RSITMD.json``, UCM's ``dataset.json``) in a folder
  with the images (or an ``images/`` subfolder): its ``test`` split;
- the layout of ``../shared/data/ucm-captions``: ``DATA/images/<id>.jpg`` with the captions in
  ``DATA/../captions/ucm/train_*.txt`` (one filename line per image, five caption lines per image;
  :func:`read_caption_lines` reads that layout and the test layout where each filename line is repeated once
  per caption): every image, or with ``split="ucm-captions"`` (``evaluate --split``) its held-out 20 % only.

Counting sets from boxes are in :mod:`pipelines.evaluation.count_sets`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.datasets import splits
from pipelines.datasets.folders import (
    IMAGE_SUFFIXES,
    class_folders,
    has_ordinal_prefix,
    labelled_from_folders,
    readable_class_name,
)
from remoteclip.errors import InputError

#: the shared datasets whose fixed split ``read_classification(..., split=NAME)`` can use (several classes)
CLASSIFICATION_SPLITS: tuple[str, ...] = ("rsscn7", "ucm-captions")
#: the shared datasets whose fixed split ``read_captions(..., split=NAME)`` can use (images with captions)
CAPTION_SPLITS: tuple[str, ...] = ("ucm-captions",)


@dataclass(frozen=True)
class LabelledImages:
    """Image paths with integer class labels."""

    paths: tuple[Path, ...]
    labels: np.ndarray  # (N,) int64 indices into the dataset's classes


@dataclass(frozen=True)
class ClassificationSet:
    """A labelled dataset divided into a training part and a held-out test part."""

    name: str
    classes: tuple[str, ...]
    train: LabelledImages
    test: LabelledImages
    #: whether the held-out part is fixed, by the data's ``train/``/``test/`` folders or by a split asked for
    #: by name; else (a split by hash for the probes only) zero-shot uses every image
    fixed_split: bool

    def zero_shot_images(self) -> LabelledImages:
        """The images zero-shot is scored on: the held-out part of a fixed split, else all of them."""
        if self.fixed_split:
            return self.test
        return LabelledImages(
            self.train.paths + self.test.paths, np.concatenate([self.train.labels, self.test.labels])
        )


@dataclass(frozen=True)
class CaptionSet:
    """Images with one or more captions each, for image-text retrieval."""

    name: str
    images: tuple[Path, ...]
    captions: tuple[str, ...]
    caption_image: np.ndarray  # (T,) index into ``images`` of each caption's image


def _to_labelled(pairs: list[tuple[Path, str]], classes: tuple[str, ...]) -> LabelledImages:
    index = {c: i for i, c in enumerate(classes)}
    pairs = sorted(pairs)
    return LabelledImages(tuple(p for p, _ in pairs), np.array([index[c] for _, c in pairs], dtype=np.int64))


def _from_split(
    split: splits.Split, rename: dict[str, str] | None = None, fixed: bool = True
) -> ClassificationSet:
    rename = rename or {}
    labels = {p: rename.get(c, c) for p, c in split.labels.items()}
    classes = tuple(sorted(set(labels.values())))
    return ClassificationSet(
        name=split.dataset,
        classes=classes,
        train=_to_labelled([(p, labels[p]) for p in split.train], classes),
        test=_to_labelled([(p, labels[p]) for p in split.test], classes),
        fixed_split=fixed,
    )


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise InputError(
            f"{what} {path} is not a folder; pass --data pointing at a folder with one subfolder per class"
        )


def _named_split(path: Path, split: str) -> ClassificationSet:
    """The fixed split ``split`` of a shared dataset applied to the folder ``path``."""
    splits.require_split(split, CLASSIFICATION_SPLITS, "classification")
    shared = splits.split_folder(split, path)
    names = sorted(set(shared.labels.values()))
    if len(names) < 2:
        raise InputError(
            f"the {split} split of {path} finds {len(names)} class(es); classification needs at least two "
            f"({path}/{splits.FOLDER_LAYOUTS[split]})"
        )
    strip = has_ordinal_prefix(names)
    return _from_split(shared, {n: readable_class_name(n, strip) for n in names})


def read_classification(path: Path, split: str | None = None) -> ClassificationSet:
    """A classification dataset from a folder (see the module docstring for the layouts understood).

    Args:
        path: the dataset folder.
        split: the name of a shared dataset (:data:`CLASSIFICATION_SPLITS`) whose fixed split to use, or
            ``None``: the data's own ``train/``/``test/`` folders if it has them, else a split by hash for the
            probes (zero-shot then scores every image). The folder's name plays no part in this choice.
    """
    path = Path(path)
    _require_dir(path, "classification data")
    if split is not None:
        return _named_split(path, split)
    if (path / "train").is_dir() and (path / "test").is_dir():
        parts = {
            name: class_folders(path / name) for name in ("train", "val", "test") if (path / name).is_dir()
        }
        strip = has_ordinal_prefix(sorted({d.name for folders in parts.values() for d in folders}))
        train = labelled_from_folders(path / "train", strip)
        if "val" in parts:
            train += labelled_from_folders(path / "val", strip)
        test = labelled_from_folders(path / "test", strip)
        classes = tuple(sorted({c for _, c in train + test}))
        return ClassificationSet(
            path.name, classes, _to_labelled(train, classes), _to_labelled(test, classes), True
        )
    folders = class_folders(path)
    if len(folders) < 2:
        raise InputError(
            f"{path} has {len(folders)} class folder(s) with images; classification needs at least two "
            "(DATA/<class>/*.jpg, or DATA/train/<class>/ and DATA/test/<class>/; for a shared dataset's fixed "
            f"split pass --split, one of {', '.join(CLASSIFICATION_SPLITS)})"
        )
    labelled = labelled_from_folders(path, has_ordinal_prefix([d.name for d in folders]))
    return _from_split(splits.split_by_hash(path.name, labelled), fixed=False)


def limit_per_class(data: ClassificationSet, per_class: int) -> ClassificationSet:
    """``data`` with zero-shot scored on at most ``per_class`` images of each class (the first by the hash of
    ``"<name>/<image stem>"``; the rest become the training part), for sets too large to embed in full."""
    images = data.zero_shot_images()
    labelled = [(path, data.classes[label]) for path, label in zip(images.paths, images.labels, strict=True)]
    test: list[tuple[Path, str]] = []
    train: list[tuple[Path, str]] = []
    for cls in data.classes:
        ranked = sorted((pair for pair in labelled if pair[1] == cls),
                        key=lambda pair: splits.rank_key(data.name, pair[0].stem))
        test += ranked[:per_class]
        train += ranked[per_class:]
    return ClassificationSet(data.name, data.classes, _to_labelled(train, data.classes),
                             _to_labelled(test, data.classes), fixed_split=True)


def validation_split(train: LabelledImages, name: str) -> tuple[LabelledImages, LabelledImages]:
    """Divide a training part into fit and validation parts (20 % of each class, by hash)."""
    split = splits.split_by_hash(f"{name}/validation", zip(train.paths, train.labels.tolist(), strict=True))
    position = {p: i for i, p in enumerate(train.paths)}

    def part(paths: tuple[Path, ...]) -> LabelledImages:
        idx = np.array([position[p] for p in paths], dtype=np.int64)
        return LabelledImages(paths, train.labels[idx] if len(idx) else train.labels[:0])

    return part(split.train), part(split.test)


# --- retrieval ---------------------------------------------------------------------------------------------


def _caption_set(name: str, pairs: list[tuple[Path, str]]) -> CaptionSet:
    if not pairs:
        raise InputError(f"no image-caption pairs found in {name}")
    images = tuple(sorted({p for p, _ in pairs}))
    index = {p: i for i, p in enumerate(images)}
    return CaptionSet(
        name=name,
        images=images,
        captions=tuple(c for _, c in pairs),
        caption_image=np.array([index[p] for p, _ in pairs], dtype=np.int64),
    )


def read_caption_csv(csv_path: Path) -> CaptionSet:
    """``filepath,caption`` rows (comma or tab separated, with a header); paths relative to the CSV."""
    csv_path = Path(csv_path)
    with csv_path.open(newline="", encoding="utf-8") as f:
        header = f.readline()
        f.seek(0)
        reader = csv.DictReader(f, delimiter="\t" if "\t" in header else ",")
        fields = reader.fieldnames or []
        text_field = next((c for c in ("caption", "title") if c in fields), None)
        if "filepath" not in fields or text_field is None:
            raise InputError(
                f"{csv_path} needs a header with columns 'filepath' and 'caption'; found {fields}"
            )
        pairs = [(csv_path.parent / row["filepath"], row[text_field].strip()) for row in reader]
    missing = [str(p) for p, _ in pairs if not p.is_file()]
    if missing:
        raise InputError(f"{len(missing)} image(s) listed in {csv_path} do not exist, e.g. {missing[0]}")
    return _caption_set(csv_path.stem, pairs)


def _find_image(images_dir: Path, filename: str) -> Path:
    """``images_dir/filename``, or its stem with another image suffix (UCM's ``.tif`` stored as ``.jpg``)."""
    exact = images_dir / filename
    if exact.is_file():
        return exact
    for suffix in IMAGE_SUFFIXES:
        candidate = (images_dir / filename).with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise InputError(f"image {filename} named by the captions was not found in {images_dir}")


def read_caption_lines(images_dir: Path, filenames_txt: Path, captions_txt: Path) -> list[tuple[Path, str]]:
    """Pairs from line-aligned ``*_filename.txt``/``*_caps.txt`` (AMFMN: UCM, RSICD, RSITMD, Sydney)."""
    names = [line.strip() for line in filenames_txt.read_text().splitlines() if line.strip()]
    caps = [line.strip() for line in captions_txt.read_text().splitlines() if line.strip()]
    if len(caps) == len(names):
        per_name = 1
    elif names and len(caps) % len(names) == 0:
        per_name = len(caps) // len(names)
    else:
        raise InputError(
            f"{captions_txt} has {len(caps)} captions for {len(names)} file names in {filenames_txt}"
        )
    return [(_find_image(images_dir, names[i // per_name]), cap) for i, cap in enumerate(caps)]


def read_karpathy_json(json_path: Path, split: str = "test") -> CaptionSet:
    """The ``split`` images of a Karpathy-style JSON (``{"images": [{"filename", "sentences"…}]}``)."""
    json_path = Path(json_path)
    images_dir = json_path.parent / "images" if (json_path.parent / "images").is_dir() else json_path.parent
    records = json.loads(json_path.read_text()).get("images", [])
    pairs = [
        (_find_image(images_dir, rec["filename"]), sentence["raw"].strip())
        for rec in records
        if rec.get("split") == split
        for sentence in rec.get("sentences", [])
    ]
    return _caption_set(f"{json_path.parent.name}/{split}", pairs)


def _ucm_captions_dir(path: Path) -> Path:
    return path.parent / "captions" / "ucm"


def _is_ucm_captions_layout(path: Path) -> bool:
    """``path/images/`` with its captions in ``path/../captions/ucm/train_*.txt`` (``../shared/data``)."""
    captions_dir = _ucm_captions_dir(path)
    return (path / "images").is_dir() and all(
        (captions_dir / name).is_file() for name in ("train_filename.txt", "train_caps.txt")
    )


def read_ucm_captions(path: Path, held_out_only: bool = False) -> CaptionSet:
    """The images of a folder laid out as ``../shared/data/ucm-captions`` with their five human captions each.

    ``held_out_only``: only the held-out 20 % of each class of the fixed ``ucm-captions`` split.
    """
    path = Path(path)
    if not _is_ucm_captions_layout(path):
        raise InputError(
            f"{path} is not laid out as ucm-captions: expected {path}/images/<id>.jpg with the captions in "
            f"{_ucm_captions_dir(path)}/train_filename.txt and train_caps.txt"
        )
    captions_dir = _ucm_captions_dir(path)
    pairs = read_caption_lines(
        path / "images", captions_dir / "train_filename.txt", captions_dir / "train_caps.txt"
    )
    if not held_out_only:
        return _caption_set(path.name, pairs)
    held_out = set(splits.split_folder("ucm-captions", path).test)
    return _caption_set("ucm-captions", [(p, c) for p, c in pairs if p in held_out])


def read_captions(path: Path, split: str | None = None) -> CaptionSet:
    """A retrieval dataset: CSV/TSV, a folder with a Karpathy JSON, or a folder laid out as ``ucm-captions``.

    Args:
        path: the file or folder.
        split: ``"ucm-captions"`` (:data:`CAPTION_SPLITS`) for the held-out part of the fixed ``ucm-captions``
            split of a folder laid out as ``../shared/data/ucm-captions``; ``None``: every image given (a
            Karpathy JSON: its own ``test`` split). The folder's name plays no part in this choice.
    """
    path = Path(path)
    if split is not None:
        splits.require_split(split, CAPTION_SPLITS, "retrieval")
        if not path.is_dir():
            raise InputError(
                f"--split {split} applies to a folder laid out as ../shared/data/{split}, not to the file {path}"
            )
        return read_ucm_captions(path, held_out_only=True)
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
        return read_caption_csv(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return read_karpathy_json(path)
    if path.is_dir():
        karpathy = sorted(path.glob("dataset*.json"))
        if karpathy:
            return read_karpathy_json(karpathy[0])
        if _is_ucm_captions_layout(path):
            return read_ucm_captions(path)
    raise InputError(
        f"cannot read captions from {path}: pass a CSV with columns filepath,caption, a Karpathy-style "
        "dataset_*.json, or ../shared/data/ucm-captions"
    )
