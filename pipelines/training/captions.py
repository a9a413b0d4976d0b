"""Box-to-Caption (B2C) and Mask-to-Box (M2B), RemoteCLIP's data-scaling recipe, plus scene-label captions.

B2C turns the boxes of one image into exactly five captions:

1. the objects whose box centre lies in the central region (the middle half of the image on each axis):
   ``"Two airplanes and a ship in the center of the image."`` or ``"Nothing in the center of the image."``;
2. the other objects: ``"Three boats away from the center of the image."`` or ``"Nothing else in the image."``;
3. ``"There are two airplanes and a ship in the image."`` (``is`` when the first group is one object);
4. ``"An aerial image with two airplanes and a ship."``;
5. ``"A satellite photo of 2 airplanes and 1 ship."`` (digits: the wording of the counting prompts).

Counts are words ("a"/"an", "two" ... "ten") or digits in caption 5; above 10 objects, every caption says
"many". Groups are ordered by count (largest first), then by label. A chip of an exhaustively labelled scene
that holds no box gets the same five slots stating the absence of the scene's classes (``empty_captions``):
``"Nothing in the center of the image."``, ``"Nothing else in the image."``,
``"There are no airplanes in the image."``, ``"An aerial image with no airplanes."``,
``"A satellite photo of no airplanes."`` (the wording of the counting prompts' zero).
M2B turns a binary mask into one box per connected component (8-connectivity), which then go through B2C.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

from pipelines.datasets.boxes import Box
from remoteclip.prompts import count_phrase, plural

#: scene-caption templates for a scene phrase (``"a dense forest"``) and a bare class name (``"forest"``)
SCENE_TEMPLATES: tuple[str, ...] = (
    "A satellite photo of {name}.",
    "An aerial image of {phrase}.",
    "There is {phrase} in the image.",
    "This remote sensing image shows {phrase}.",
    "A top-down view of {phrase}.",
)


def join_phrases(phrases: Sequence[str], conjunction: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c`` (``a or b`` with ``conjunction="or"``)."""
    return phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} {conjunction} {phrases[-1]}"


def _groups(boxes: Sequence[Box]) -> list[tuple[str, int]]:
    counts = Counter(box.label for box in boxes)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _listing(boxes: Sequence[Box], digits: bool = False) -> str:
    return join_phrases([count_phrase(label, n, digits) for label, n in _groups(boxes)])


def _capitalise(text: str) -> str:
    return text[0].upper() + text[1:]


def in_center(box: Box, width: float, height: float) -> bool:
    """Whether the box centre lies in the middle half of the image on both axes."""
    cx, cy = box.center
    return abs(cx - width / 2) <= width / 4 and abs(cy - height / 2) <= height / 4


def b2c_captions(boxes: Sequence[Box], width: float, height: float) -> list[str]:
    """The five B2C captions of an image of ``width`` x ``height`` pixels with these boxes (at least one)."""
    if not boxes:
        raise ValueError("B2C needs at least one box")
    center = [b for b in boxes if in_center(b, width, height)]
    other = [b for b in boxes if not in_center(b, width, height)]
    groups = _groups(boxes)
    verb = "is" if groups[0][1] == 1 else "are"
    return [
        f"{_capitalise(_listing(center))} in the center of the image." if center
        else "Nothing in the center of the image.",
        f"{_capitalise(_listing(other))} away from the center of the image." if other
        else "Nothing else in the image.",
        f"There {verb} {_listing(boxes)} in the image.",
        f"An aerial image with {_listing(boxes)}.",
        f"A satellite photo of {_listing(boxes, digits=True)}.",
    ]


def empty_captions(labels: Iterable[str]) -> list[str]:
    """The five B2C captions of an image holding none of the object classes ``labels`` (at least one)."""
    nouns = sorted({plural(label) for label in labels})
    if not nouns:
        raise ValueError("an empty-image caption needs the classes that are absent")
    absent = join_phrases(nouns, conjunction="or")
    return [
        "Nothing in the center of the image.",
        "Nothing else in the image.",
        f"There are no {absent} in the image.",
        f"An aerial image with no {absent}.",
        f"A satellite photo of no {absent}.",
    ]


def m2b_boxes(mask: np.ndarray, label: str, min_area_px: int = 1) -> list[Box]:
    """One box per 8-connected component of a binary mask (components under ``min_area_px`` pixels dropped)."""
    components, _ = ndimage.label(np.asarray(mask) > 0, structure=np.ones((3, 3), dtype=bool))
    boxes = []
    for index, slices in enumerate(ndimage.find_objects(components), start=1):
        if slices is None:
            continue
        rows, cols = slices
        if int((components[slices] == index).sum()) >= min_area_px:
            boxes.append(Box(float(cols.start), float(rows.start), float(cols.stop), float(rows.stop), label))
    return boxes


def scene_captions(name: str, phrase: str) -> list[str]:
    """Five captions for a scene labelled ``name`` (``forest``) described as ``phrase`` (``a dense forest``)."""
    return [template.format(name=name, phrase=phrase) for template in SCENE_TEMPLATES]
