"""Box readers for the annotation formats of ``../shared/data`` and of public detection sets: typed,
axis-aligned pixel boxes per image.

Formats: Airbus CSV, Pascal VOC XML, DIOR oriented XML, DOTA ``labelTxt``, DeepForest CSV, YOLO ``.txt``
(normalised centre boxes, or polygons) and COCO JSON (``bbox`` = x, y, width, height in pixels).

Every reader returns :class:`ImageBoxes` whose labels are canonical singular nouns (``airplane``, ``ship``,
``small vehicle``, ``tree``, ``building``), so B2C captions and counting sets use one vocabulary.
Coordinates are pixels of the image, ``(xmin, ymin, xmax, ymax)``, with the origin at the top left.
"""

from __future__ import annotations

import ast
import csv
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from remoteclip.errors import InputError

#: dataset class names -> canonical nouns (other names: lower case, ``-``/``_`` read as spaces)
LABEL_ALIASES: dict[str, str] = {
    "truncated airplane": "airplane",
    "plane": "airplane",
    "0": "tree",
    "golffield": "golf field",
    "storagetank": "storage tank",
    "groundtrackfield": "ground track field",
    "trainstation": "train station",
    "basketballcourt": "basketball court",
    "tenniscourt": "tennis court",
    "baseballfield": "baseball field",
    "palm tree": "palm tree",
    "oil palm": "palm tree",
    "oilwell": "oil well",
}


def canonical_label(name: str) -> str:
    """The canonical noun for a dataset's class name (``Truncated_airplane`` -> ``airplane``)."""
    label = " ".join(name.replace("_", " ").replace("-", " ").lower().split())
    return LABEL_ALIASES.get(label, label)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates with a canonical label."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    label: str

    @property
    def area(self) -> float:
        return max(0.0, self.xmax - self.xmin) * max(0.0, self.ymax - self.ymin)

    @property
    def center(self) -> tuple[float, float]:
        return (self.xmin + self.xmax) / 2, (self.ymin + self.ymax) / 2


@dataclass(frozen=True)
class ImageBoxes:
    """The boxes of one image."""

    image: Path
    boxes: tuple[Box, ...]

    def counts(self) -> dict[str, int]:
        """Number of boxes per label."""
        out: dict[str, int] = {}
        for box in self.boxes:
            out[box.label] = out.get(box.label, 0) + 1
        return out


def box_from_points(points: Sequence[tuple[float, float]], label: str) -> Box:
    """The axis-aligned box around a polygon or oriented box given as ``(x, y)`` points."""
    if not points:
        raise InputError(f"a box for {label!r} has no points")
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    return Box(min(xs), min(ys), max(xs), max(ys), canonical_label(label))


def clip_boxes(boxes: Iterable[Box], window: tuple[float, float, float, float],
               min_visible: float = 0.5) -> tuple[Box, ...]:
    """Boxes cut to ``window = (xmin, ymin, xmax, ymax)``, in window coordinates.

    A box is kept when at least ``min_visible`` of its area lies inside the window (slivers are dropped).
    """
    wx0, wy0, wx1, wy1 = window
    kept = []
    for box in boxes:
        inner = Box(max(box.xmin, wx0), max(box.ymin, wy0), min(box.xmax, wx1), min(box.ymax, wy1), box.label)
        if box.area > 0 and inner.xmax > inner.xmin and inner.ymax > inner.ymin \
                and inner.area >= min_visible * box.area:
            kept.append(replace(inner, xmin=inner.xmin - wx0, ymin=inner.ymin - wy0,
                                xmax=inner.xmax - wx0, ymax=inner.ymax - wy0))
    return tuple(kept)


def _xml_root(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"cannot read annotation XML {path}: {exc}") from exc


def read_airbus_csv(csv_path: Path, image_dir: Path) -> list[ImageBoxes]:
    """Airbus aircraft ``annotations.csv`` (``id,image_id,geometry,class``) for the images in ``image_dir``."""
    by_image: dict[str, list[Box]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                points = ast.literal_eval(row["geometry"])
            except (KeyError, ValueError, SyntaxError) as exc:
                raise InputError(f"bad geometry in {csv_path} row {row.get('id')}: {exc}") from exc
            by_image.setdefault(row["image_id"], []).append(box_from_points(points, row["class"]))
    images = sorted(image_dir.glob("*.jpg"))
    return [ImageBoxes(p, tuple(by_image[p.name])) for p in images if p.name in by_image]


def read_voc_xml(xml_path: Path, image_dir: Path) -> ImageBoxes:
    """A Pascal VOC annotation (``<object><name>/<bndbox>``); the image is ``image_dir/<filename>``."""
    root = _xml_root(xml_path)
    boxes = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        x0, y0, x1, y1 = (float(bb.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append(Box(x0, y0, x1, y1, canonical_label(obj.findtext("name", "object"))))
    return ImageBoxes(image_dir / root.findtext("filename", xml_path.stem + ".jpg"), tuple(boxes))


def read_dior_xml(xml_path: Path, image: Path) -> ImageBoxes:
    """A DIOR oriented-box annotation (``<robndbox>`` corners) as axis-aligned boxes."""
    corners = ("left_top", "right_top", "right_bottom", "left_bottom")
    boxes = []
    for obj in _xml_root(xml_path).iter("object"):
        rb = obj.find("robndbox")
        if rb is None:
            continue
        points = [(float(rb.findtext(f"x_{c}", "nan")), float(rb.findtext(f"y_{c}", "nan"))) for c in corners]
        boxes.append(box_from_points(points, obj.findtext("name", "object")))
    return ImageBoxes(image, tuple(boxes))


def read_dota_labeltxt(txt_path: Path, image: Path) -> ImageBoxes:
    """A DOTA ``labelTxt`` file (``x1 y1 ... x4 y4 class difficult``; header lines skipped), oriented -> axis-aligned."""
    boxes = []
    for line in txt_path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 9 or ":" in line:
            continue
        try:
            coords = [float(v) for v in parts[:8]]
        except ValueError as exc:
            raise InputError(f"bad DOTA line in {txt_path}: {line!r}") from exc
        boxes.append(box_from_points(list(zip(coords[0::2], coords[1::2])), parts[8]))
    return ImageBoxes(image, tuple(boxes))


def read_deepforest_csv(csv_path: Path, image_dir: Path, default_label: str = "tree") -> list[ImageBoxes]:
    """A DeepForest CSV (``image_path,xmin,ymin,xmax,ymax[,label]``, columns by name) grouped per image."""
    by_image: dict[str, list[Box]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                coords = [float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (KeyError, ValueError) as exc:
                raise InputError(f"{csv_path} needs numeric xmin,ymin,xmax,ymax columns: {exc}") from exc
            label = row.get("label") or default_label
            xmin, ymin, xmax, ymax = coords
            by_image.setdefault(row["image_path"], []).append(Box(xmin, ymin, xmax, ymax, canonical_label(label)))
    return [ImageBoxes(image_dir / name, tuple(b)) for name, b in sorted(by_image.items())]


def _yolo_box(parts: list[str], names: Sequence[str], size: tuple[int, int], where: str) -> Box:
    """One YOLO line (``class cx cy w h``, or ``class x1 y1 x2 y2 ...`` for a polygon) in pixels."""
    try:
        index, values = int(parts[0]), [float(v) for v in parts[1:]]
    except ValueError as exc:
        raise InputError(f"bad YOLO line in {where}: {' '.join(parts)!r}") from exc
    if not 0 <= index < len(names):
        raise InputError(f"{where}: class {index} is not among the {len(names)} class names")
    width, height = size
    if len(values) == 4:
        cx, cy, w, h = values
        return Box((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height,
                   canonical_label(names[index]))
    if len(values) >= 6 and len(values) % 2 == 0:
        return box_from_points([(x * width, y * height) for x, y in zip(values[0::2], values[1::2])],
                               names[index])
    raise InputError(f"bad YOLO line in {where}: {' '.join(parts)!r} (expected class cx cy w h)")


def read_yolo_txt(txt_path: Path, image: Path, names: Sequence[str]) -> ImageBoxes:
    """A YOLO label file (``class cx cy w h`` normalised to 0-1; class ids index ``names``) for ``image``."""
    lines = [line.split() for line in txt_path.read_text().splitlines() if line.strip()]
    if not lines:
        return ImageBoxes(image, ())
    try:
        with Image.open(image) as opened:  # reads the header only
            size = opened.size
    except OSError as exc:
        raise InputError(f"cannot open {image}, the image of {txt_path}: {exc}") from exc
    return ImageBoxes(image, tuple(_yolo_box(parts, names, size, str(txt_path)) for parts in lines))


def _coco_category_names(categories: list[dict[str, object]]) -> dict[object, str]:
    """Category id -> canonical label; Roboflow's bare-number class names stand for their supercategory."""
    names = {}
    for category in categories:
        name = str(category.get("name", "object"))
        parent = str(category.get("supercategory") or "none")
        if name.strip().isdigit() and parent != "none":
            name = parent
        names[category.get("id")] = canonical_label(name)
    return names


def read_coco_json(json_path: Path, image_dir: Path) -> list[ImageBoxes]:
    """A COCO detection JSON: every listed image (``image_dir/<file_name>``) with its boxes, crowd boxes skipped.

    Images without annotations give empty :class:`ImageBoxes`. A category named by a bare number under a
    supercategory (Roboflow exports: ``{"name": "0", "supercategory": "palm-tree"}``) takes that supercategory.
    """
    try:
        coco = json.loads(json_path.read_text())
        names = _coco_category_names(coco["categories"])
        by_image: dict[object, list[Box]] = {image["id"]: [] for image in coco["images"]}
        for annotation in coco["annotations"]:
            if annotation.get("iscrowd"):
                continue
            x, y, w, h = (float(v) for v in annotation["bbox"])
            by_image[annotation["image_id"]].append(
                Box(x, y, x + w, y + h, names.get(annotation["category_id"], "object")))
        return [ImageBoxes(image_dir / image["file_name"], tuple(by_image[image["id"]])) for image in coco["images"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read COCO annotations {json_path}: {exc!r}") from exc
