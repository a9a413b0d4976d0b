"""``build-trainset --source-dir``: scene sets as class folders, detection sets in VOC/YOLO/COCO/DOTA layouts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.datasets import splits
from pipelines.training.captions import scene_captions
from pipelines.training.source_boxes import DETECTION_CHIP_PX, DETECTION_LEVELS, detection_scenes
from pipelines.training.source_dir import (
    CLASS_PHRASES,
    held_out_source_images,
    source_dir_images,
    source_dir_scenes,
)
from pipelines.training.sources import BoxScene
from remoteclip.errors import InputError


def save_image(path: Path, size: tuple[int, int] = (64, 64), seed: int = 0) -> Path:
    """A small random RGB image at ``path`` (folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def label_counts(scenes: list[BoxScene]) -> Counter[str]:
    return Counter(box.label for scene in scenes for box in scene.boxes.boxes)


def test_scene_sets_get_five_captions_per_image_from_their_class(tmp_path: Path) -> None:
    for name in ("AnnualCrop", "River"):
        for i in range(2):
            save_image(tmp_path / "eurosat" / name / f"{name}_{i}.jpg", seed=i)
    for split in ("train", "test"):
        for name in ("beach", "forest"):
            save_image(tmp_path / "resisc45" / split / name / f"{name}_{split}.jpg")
    items = list(source_dir_images(tmp_path))
    assert Counter(item.dataset for item in items) == {"eurosat": 4, "resisc45": 4}
    assert all(item.source == "scene" and len(item.captions) == 5 for item in items)
    by_image = {item.image.name: item.captions for item in items}
    assert by_image["AnnualCrop_0.jpg"] == tuple(scene_captions(*CLASS_PHRASES["annual crop"]))
    assert by_image["forest_test.jpg"] == tuple(scene_captions(*CLASS_PHRASES["forest"]))
    assert list(source_dir_scenes(tmp_path)) == []


def test_held_out_source_is_not_read_but_held_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(splits, "HELD_OUT_SOURCES", ("patternnet", "oilwells"))
    kept = [save_image(tmp_path / "whu-rs19" / c / f"{c}.jpg") for c in ("desert", "lake")]
    held = [save_image(tmp_path / "patternnet" / c / f"{c}.jpg") for c in ("beach", "island")]
    held += [write_voc(tmp_path / "oilwells"), tmp_path / "oilwells" / "JPEGImages" / "0_2.jpg"]  # every image
    assert {item.image for item in source_dir_images(tmp_path)} == set(kept)
    assert list(source_dir_scenes(tmp_path)) == []
    assert sorted(held_out_source_images(tmp_path)) == sorted(held)
    assert held_out_source_images(None) == []


def test_evaluation_sets_are_refused(tmp_path: Path) -> None:
    save_image(tmp_path / "aid" / "Airport" / "a.jpg")
    save_image(tmp_path / "aid" / "Beach" / "b.jpg")
    with pytest.raises(InputError, match="aid"):
        list(source_dir_images(tmp_path))
    with pytest.raises(InputError, match="not a folder"):
        list(source_dir_scenes(tmp_path / "nothing"))


def write_voc(root: Path) -> Path:
    """A VOC set: one image with two oil wells, an annotation without its image, one image without objects."""
    image = save_image(root / "JPEGImages" / "0_1.jpg", (512, 512))
    save_image(root / "JPEGImages" / "0_2.jpg", (512, 512))
    obj = "<object><name>oilwell</name><bndbox><xmin>{}</xmin><ymin>10</ymin><xmax>{}</xmax><ymax>40</ymax>" \
          "</bndbox></object>"
    (root / "Annotations").mkdir(parents=True)
    for stem, objects in (("0_1", obj.format(10, 40) + obj.format(300, 330)), ("0_3", obj.format(1, 5)),
                          ("0_2", "")):
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename>{objects}</annotation>")
    return image


def test_voc_layout(tmp_path: Path) -> None:
    image = write_voc(tmp_path / "nepu-owod-oilwell")
    [scene] = detection_scenes(tmp_path / "nepu-owod-oilwell")
    assert scene == BoxScene("b2c", "nepu-owod-oilwell", scene.boxes, DETECTION_CHIP_PX, DETECTION_LEVELS,
                             exhaustive=True)
    assert scene.boxes.image == image and scene.boxes.counts() == {"oil well": 2}


def test_flat_yolo_layout_with_a_names_file(tmp_path: Path) -> None:
    root = tmp_path / "kit-ais-cars"
    save_image(root / "MOS1.png", (400, 100))
    (root / "MOS1.txt").write_text("0 0.5 0.5 0.05 0.2\n0 0.1 0.5 0.05 0.2\n2 0.8 0.5 0.1 0.3\n")
    save_image(root / "MOS2.png", (400, 100))
    (root / "MOS2.txt").write_text("3 0.5 0.5 0.05 0.2\n")
    (root / "MOS3.txt").write_text("0 0.5 0.5 0.05 0.2\n")  # its image is missing
    (root / "aerial.names").write_text("car\ntruck\nbus\nminibus\ncyclist\n")
    scenes = detection_scenes(root)
    assert [s.boxes.image.name for s in scenes] == ["MOS1.png", "MOS2.png"]
    assert label_counts(scenes) == {"car": 2, "bus": 1, "minibus": 1}
    assert scenes[0].boxes.boxes[0].xmin == pytest.approx(190)


def write_yolo_tree(root: Path) -> None:
    """YOLO images/{train,val} + labels/{train,val} with data.yaml; one background tile without boxes."""
    for split, stem, lines in (("train", "tile_0", "0 0.5 0.5 0.1 0.1\n0 0.2 0.2 0.1 0.1\n"),
                               ("val", "tile_1", "0 0.5 0.5 0.1 0.1\n"), ("val", "tile_2", "")):
        save_image(root / "images" / split / f"{stem}.png", (128, 128))
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / f"{stem}.txt").write_text(lines)
    (root / "data.yaml").write_text("path: /elsewhere\ntrain: images/train\nval: images/val\nnc: 1\n"
                                    "names: ['oil_palm']\n")


def test_yolo_layout_with_a_labels_tree_and_data_yaml(tmp_path: Path) -> None:
    write_yolo_tree(tmp_path / "palms")
    scenes = detection_scenes(tmp_path / "palms")
    assert [s.boxes.image.name for s in scenes] == ["tile_0.png", "tile_1.png"]
    assert label_counts(scenes) == {"palm tree": 3}


def write_roboflow_coco(folder: Path, stems: list[str], boxes_per_image: int) -> None:
    """A Roboflow COCO export folder: images beside ``_annotations.coco.json`` (class ``0`` under palm-tree)."""
    images, annotations = [], []
    for i, stem in enumerate(stems):
        save_image(folder / f"{stem}.jpg", (512, 512), seed=i)
        images.append({"id": i, "file_name": f"{stem}.jpg", "width": 512, "height": 512})
        annotations += [{"id": len(annotations) + k, "image_id": i, "category_id": 1,
                         "bbox": [20 * k, 30, 40, 40], "iscrowd": 0} for k in range(boxes_per_image)]
    images.append({"id": 99, "file_name": "gone.jpg", "width": 512, "height": 512})  # not in the folder
    annotations.append({"id": 999, "image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5]})
    (folder / "_annotations.coco.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 0, "name": "palm-tree", "supercategory": "none"},
                       {"id": 1, "name": "0", "supercategory": "palm-tree"}]}))


def test_coco_is_used_alone_when_a_folder_also_holds_a_yolo_export(tmp_path: Path) -> None:
    root = tmp_path / "oil-palm"
    write_roboflow_coco(root / "oil_palm_coco_v3" / "valid", ["a", "b"], 3)
    write_roboflow_coco(root / "oil_palm_coco_v3" / "test", ["c"], 2)
    write_yolo_tree(root / "oil_palm_yolo_v1")
    scenes = detection_scenes(root)
    assert sorted(s.boxes.image.name for s in scenes) == ["a.jpg", "b.jpg", "c.jpg"]
    assert label_counts(scenes) == {"palm tree": 8}
    assert {s.dataset for s in scenes} == {"oil-palm"}


def test_a_roboflow_export_with_split_folders_is_a_detection_set_not_a_scene_set(tmp_path: Path) -> None:
    write_roboflow_coco(tmp_path / "palms" / "valid", ["a"], 1)
    write_roboflow_coco(tmp_path / "palms" / "test", ["b"], 1)
    assert list(source_dir_images(tmp_path)) == []
    assert [s.boxes.image.name for s in source_dir_scenes(tmp_path)] == ["b.jpg", "a.jpg"]


def test_coco_layout_with_an_annotations_folder(tmp_path: Path) -> None:
    root = tmp_path / "xview-coco"
    save_image(root / "train2017" / "a.jpg", (300, 300))
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [5, 5, 20, 10]}],
        "categories": [{"id": 3, "name": "Small-Vehicle"}]}))
    [scene] = detection_scenes(root)
    assert scene.boxes.image == root / "train2017" / "a.jpg" and scene.boxes.counts() == {"small vehicle": 1}


def test_dota_layout(tmp_path: Path) -> None:
    root = tmp_path / "dota-v1"
    save_image(root / "images" / "P1.png", (300, 300))
    (root / "labelTxt").mkdir()
    (root / "labelTxt" / "P1.txt").write_text("imagesource:GoogleEarth\ngsd:0.3\n"
                                              "10 0 20 10 10 20 0 10 ship 0\n1 1 5 1 5 3 1 3 small-vehicle 1\n")
    (root / "labelTxt" / "P2.txt").write_text("10 0 20 10 10 20 0 10 ship 0\n")  # no image
    [scene] = detection_scenes(root)
    assert scene.boxes.image.name == "P1.png" and scene.boxes.counts() == {"ship": 1, "small vehicle": 1}


def test_a_folder_in_no_detection_layout_gives_no_scenes(tmp_path: Path) -> None:
    save_image(tmp_path / "loose" / "a.png")
    (tmp_path / "loose" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # YOLO-like, but no class names
    (tmp_path / "loose" / "notes.json").write_text('{"images": []}')
    assert detection_scenes(tmp_path / "loose") == []
