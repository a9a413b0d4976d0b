"""Detection sets of ``build-trainset --source-dir DIR``: labelled boxes in a standard layout, as B2C scenes.

One dataset folder (``DIR/<dataset>``) is read in the first of these layouts found in it (searched recursively):

1. COCO: a JSON with ``images``, ``annotations`` and ``categories`` (Roboflow's ``_annotations.coco.json``
   beside the images, or ``annotations/instances_<split>.json`` beside ``<split>/`` or ``images/``);
2. Pascal VOC: ``Annotations/*.xml`` beside ``JPEGImages/``;
3. DOTA: ``labelTxt/*.txt`` beside ``images/``;
4. YOLO: images with a same-name ``.txt`` beside them or in the parallel ``labels/`` tree (``images/`` ->
   ``labels/``), class names from a ``*.names`` file, ``classes.txt`` or the ``names:`` of a ``*.yaml``
   (``data.yaml``).

Only one layout is read because a folder holding several exports holds the same images several times
(oil-palm's ``oil_palm_coco_v3`` and ``oil_palm_yolo_v1`` are the same drone tiles): COCO is then used and the
YOLO copy ignored, so no image is trained on twice. Annotations of images that are missing are skipped, and
so are images without boxes. The sets box every object of their classes, so their scenes are exhaustive (they
also give empty chips).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import yaml

from pipelines.datasets.boxes import (
    ImageBoxes,
    read_coco_json,
    read_dota_labeltxt,
    read_voc_xml,
    read_yolo_txt,
)
from pipelines.datasets.folders import IMAGE_SUFFIXES
from pipelines.training.sources import BoxScene
from remoteclip.errors import InputError

#: chips of 256 source pixels and of 512 (as DOTA in ``sources``): a 430 x 1764 strip gives 6 + its centre
#: square, a 512 px tile 4 + 1 + 1, a 1024 px scene 16 + 4 + 1 windows (only those with boxes become chips)
DETECTION_CHIP_PX = 256
DETECTION_LEVELS: tuple[int, ...] = (1, 2)


def _files(folder: Path, pattern: str) -> list[Path]:
    """Files under ``folder`` matching ``pattern``, hidden folders skipped, sorted."""
    return sorted(p for p in folder.rglob(pattern)
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _image_beside(folder: Path, stem: str) -> Path | None:
    """The image ``folder/<stem>.<image suffix>``, if there is one."""
    for suffix in sorted(IMAGE_SUFFIXES):
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def coco_files(folder: Path) -> list[Path]:
    """The COCO detection JSONs under ``folder``."""
    found = []
    for path in _files(folder, "*.json"):
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(content, dict) and {"images", "annotations", "categories"} <= content.keys():
            found.append(path)
    return found


def coco_boxes(folder: Path) -> list[ImageBoxes]:
    """The images of every COCO JSON under ``folder``, found beside the JSON or in a sibling image folder."""
    out = []
    for path in coco_files(folder):
        listed = read_coco_json(path, path.parent)
        names = [b.image.relative_to(path.parent) for b in listed]
        split = path.stem.split("_")[-1]
        candidates = [path.parent, path.parent.parent / split, path.parent.parent / "images",
                      path.parent.parent / "images" / split]
        image_dir = next((d for d in candidates if any((d / n).is_file() for n in names[:20])), path.parent)
        out += [replace(b, image=image_dir / n) for b, n in zip(listed, names)]
    return out


def voc_boxes(folder: Path) -> list[ImageBoxes]:
    """Every ``Annotations/*.xml`` under ``folder`` with its image in the sibling ``JPEGImages/``."""
    out = []
    for xml_dir in sorted(d for d in folder.rglob("Annotations") if d.is_dir()):
        images = xml_dir.parent / "JPEGImages"
        if not images.is_dir():
            continue
        for xml in sorted(xml_dir.glob("*.xml")):
            boxes = read_voc_xml(xml, images)
            if not boxes.image.is_file():
                fallback = _image_beside(images, xml.stem)
                boxes = replace(boxes, image=fallback) if fallback else boxes
            out.append(boxes)
    return out


def dota_boxes(folder: Path) -> list[ImageBoxes]:
    """Every ``labelTxt/*.txt`` under ``folder`` with its image in the sibling ``images/``."""
    out = []
    for labels in sorted(d for d in folder.rglob("labelTxt") if d.is_dir()):
        for txt in sorted(labels.glob("*.txt")):
            image = _image_beside(labels.parent / "images", txt.stem)
            if image is not None:
                out.append(read_dota_labeltxt(txt, image))
    return out


def yolo_names(folder: Path) -> list[str] | None:
    """The YOLO class names under ``folder``: a ``*.names`` file, ``classes.txt`` or a ``*.yaml``'s ``names:``."""
    listed = _files(folder, "*.names") + _files(folder, "classes.txt")
    if listed:
        return [line.strip() for line in listed[0].read_text().splitlines() if line.strip()]
    yamls = _files(folder, "*.yaml") + _files(folder, "*.yml")
    for path in sorted(yamls, key=lambda p: (p.stem != "data", p)):
        try:
            names = (yaml.safe_load(path.read_text()) or {}).get("names")
        except (yaml.YAMLError, AttributeError) as exc:
            raise InputError(f"cannot read YOLO class names from {path}: {exc}") from exc
        if isinstance(names, dict):
            return [str(names[key]) for key in sorted(names)]
        if isinstance(names, list):
            return [str(name) for name in names]
    return None


def _yolo_label(image: Path, folder: Path) -> Path | None:
    """The YOLO label file of ``image``: a same-name ``.txt`` beside it or in the parallel ``labels/`` tree."""
    beside = image.with_suffix(".txt")
    if beside.is_file():
        return beside
    parts = list(image.relative_to(folder).parts)
    if "images" in parts:
        at = len(parts) - 1 - parts[::-1].index("images")
        parts[at] = "labels"
        parallel = (folder / Path(*parts)).with_suffix(".txt")
        if parallel.is_file():
            return parallel
    return None


def yolo_boxes(folder: Path) -> list[ImageBoxes]:
    """Every image under ``folder`` with a YOLO label file (none when there are no class names)."""
    names = yolo_names(folder)
    if names is None:
        return []
    images = [p for p in _files(folder, "*") if p.suffix.lower() in IMAGE_SUFFIXES]
    labelled = [(image, label) for image in images if (label := _yolo_label(image, folder)) is not None]
    return [read_yolo_txt(label, image, names) for image, label in labelled]


#: the layouts in the order they are tried; the first that finds annotations is the one read
LAYOUTS: tuple[tuple[str, Callable[[Path], list[ImageBoxes]]], ...] = (
    ("coco", coco_boxes), ("voc", voc_boxes), ("dota", dota_boxes), ("yolo", yolo_boxes),
)


def annotated_images(folder: Path) -> tuple[str, list[ImageBoxes]] | None:
    """(layout, boxes of every annotated image that exists) of the first layout found in ``folder``, else None."""
    for layout, read in LAYOUTS:
        found = [boxes for boxes in read(folder) if boxes.image.is_file()]
        if found:
            return layout, found
    return None


def detection_scenes(folder: Path) -> list[BoxScene]:
    """The B2C scenes of a detection set in a standard layout (images with at least one box); [] otherwise."""
    annotated = annotated_images(folder)
    if annotated is None:
        return []
    return [BoxScene("b2c", folder.name, boxes, DETECTION_CHIP_PX, DETECTION_LEVELS, exhaustive=True)
            for boxes in annotated[1] if boxes.boxes]
