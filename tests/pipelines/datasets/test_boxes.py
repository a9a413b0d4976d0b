"""Box readers on files written here and on the real annotations in ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pipelines.datasets.boxes import (
    Box,
    canonical_label,
    clip_boxes,
    read_airbus_csv,
    read_coco_json,
    read_deepforest_csv,
    read_dior_xml,
    read_dota_labeltxt,
    read_voc_xml,
    read_yolo_txt,
)
from remoteclip.errors import InputError


def test_canonical_labels() -> None:
    assert canonical_label("Truncated_airplane") == "airplane"
    assert canonical_label("small-vehicle") == "small vehicle"
    assert canonical_label("Tree") == "tree"
    assert canonical_label("palm-tree") == canonical_label("oil_palm") == "palm tree"
    assert canonical_label("oilwell") == "oil well"


def test_voc_reader(tmp_path: Path) -> None:
    xml = tmp_path / "a.xml"
    xml.write_text("<annotation><filename>a.jpg</filename>"
                   "<object><name>boat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax>"
                   "</bndbox></object><object><name>boat</name><bndbox><xmin>5</xmin><ymin>5</ymin>"
                   "<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    boxes = read_voc_xml(xml, tmp_path)
    assert boxes.image == tmp_path / "a.jpg"
    assert boxes.boxes == (Box(1, 2, 30, 40, "boat"), Box(5, 5, 9, 9, "boat"))


def test_dota_reader_makes_oriented_boxes_axis_aligned(tmp_path: Path) -> None:
    txt = tmp_path / "P1.txt"
    txt.write_text("imagesource:GoogleEarth\ngsd:0.3\n"
                   "10 0 20 10 10 20 0 10 ship 0\n"
                   "1 1 5 1 5 3 1 3 large-vehicle 1\n")
    boxes = read_dota_labeltxt(txt, tmp_path / "P1.png")
    assert boxes.boxes == (Box(0, 0, 20, 20, "ship"), Box(1, 1, 5, 3, "large vehicle"))
    assert boxes.counts() == {"ship": 1, "large vehicle": 1}


def test_dota_reader_rejects_bad_numbers(tmp_path: Path) -> None:
    txt = tmp_path / "bad.txt"
    txt.write_text("a b c d e f g h ship 0\n")
    with pytest.raises(InputError, match="bad DOTA line"):
        read_dota_labeltxt(txt, tmp_path / "bad.png")


def test_dior_reader(tmp_path: Path) -> None:
    xml = tmp_path / "d.xml"
    corners = "".join(f"<x_{c}>{x}</x_{c}><y_{c}>{y}</y_{c}>" for c, x, y in
                      (("left_top", 10, 5), ("right_top", 50, 15), ("right_bottom", 40, 60), ("left_bottom", 2, 50)))
    xml.write_text(f"<annotation><object><name>storagetank</name><robndbox>{corners}</robndbox></object></annotation>")
    assert read_dior_xml(xml, tmp_path / "d.jpg").boxes == (Box(2, 5, 50, 60, "storage tank"),)


def test_airbus_and_deepforest_csv(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").touch()
    (tmp_path / "annotations.csv").write_text(
        'id,image_id,geometry,class\n'
        '1,x.jpg,"[(10, 20), (30, 20), (30, 50), (10, 50), (10, 20)]",Airplane\n'
        '2,x.jpg,"[(0, 0), (5, 0), (5, 5), (0, 5), (0, 0)]",Truncated_airplane\n'
        '3,other.jpg,"[(0, 0), (5, 0), (5, 5), (0, 5), (0, 0)]",Airplane\n')
    [image] = read_airbus_csv(tmp_path / "annotations.csv", tmp_path)
    assert image.boxes == (Box(10, 20, 30, 50, "airplane"), Box(0, 0, 5, 5, "airplane"))
    # columns are read by name: DeepForest's *_truth.csv orders them xmin,xmax,ymin,ymax
    (tmp_path / "trees.csv").write_text("image_path,xmin,xmax,ymin,ymax,label\nx.jpg,1,82,103,235,0\n")
    [trees] = read_deepforest_csv(tmp_path / "trees.csv", tmp_path)
    assert trees.boxes == (Box(1, 103, 82, 235, "tree"),)


def test_yolo_reader_scales_normalised_centre_boxes(tmp_path: Path) -> None:
    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.1 0.2\n\n2 0.25 0.75 0.5 0.5\n1 0.1 0.1 0.3 0.1 0.2 0.4\n")
    boxes = read_yolo_txt(tmp_path / "a.txt", tmp_path / "a.png", ["car", "oil_palm", "minibus"])
    assert boxes.image == tmp_path / "a.png"
    assert [b.label for b in boxes.boxes] == ["car", "minibus", "palm tree"]
    corners = [v for b in boxes.boxes for v in (b.xmin, b.ymin, b.xmax, b.ymax)]
    assert corners == pytest.approx([90, 40, 110, 60, 0, 50, 100, 100, 20, 10, 60, 40])  # the last is a polygon
    (tmp_path / "empty.txt").write_text("")  # a background image: no boxes, the image need not be opened
    assert read_yolo_txt(tmp_path / "empty.txt", tmp_path / "missing.png", ["car"]).boxes == ()


def test_yolo_reader_rejects_unknown_classes_and_bad_lines(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("3 0.5 0.5 0.1 0.1\n")
    with pytest.raises(InputError, match="class 3"):
        read_yolo_txt(tmp_path / "a.txt", tmp_path / "a.png", ["car"])
    (tmp_path / "a.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(InputError, match="bad YOLO line"):
        read_yolo_txt(tmp_path / "a.txt", tmp_path / "a.png", ["car"])


def test_coco_reader(tmp_path: Path) -> None:
    coco = {
        "images": [{"id": 7, "file_name": "a.jpg"}, {"id": 8, "file_name": "b.jpg"}],
        # Roboflow: category 0 names the project, the real class is a bare number under it
        "categories": [{"id": 0, "name": "palm-tree", "supercategory": "none"},
                       {"id": 1, "name": "0", "supercategory": "palm-tree"},
                       {"id": 2, "name": "Oil_Well", "supercategory": "none"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 20, 5.5, 4], "iscrowd": 0},
                        {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 0, 1, 2]},
                        {"id": 3, "image_id": 7, "category_id": 2, "bbox": [0, 0, 50, 50], "iscrowd": 1}],
    }
    (tmp_path / "_annotations.coco.json").write_text(json.dumps(coco))
    a, b = read_coco_json(tmp_path / "_annotations.coco.json", tmp_path / "imgs")
    assert a.image == tmp_path / "imgs" / "a.jpg"
    assert a.boxes == (Box(10, 20, 15.5, 24, "palm tree"), Box(0, 0, 1, 2, "oil well"))
    assert b.image == tmp_path / "imgs" / "b.jpg" and b.boxes == ()
    (tmp_path / "bad.json").write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(InputError, match="COCO"):
        read_coco_json(tmp_path / "bad.json", tmp_path)


def test_clip_boxes_keeps_mostly_inside_and_shifts() -> None:
    boxes = [Box(10, 10, 20, 20, "car"),      # inside
             Box(95, 10, 105, 20, "car"),     # half inside: kept, clipped
             Box(98, 10, 110, 20, "car"),     # a sliver inside: dropped
             Box(200, 200, 210, 210, "car")]  # outside
    assert clip_boxes(boxes, (0, 0, 100, 100)) == (Box(10, 10, 20, 20, "car"), Box(95, 10, 100, 20, "car"))
    assert clip_boxes(boxes, (50, 0, 150, 100)) == (Box(45, 10, 55, 20, "car"), Box(48, 10, 60, 20, "car"))


def test_real_annotations(shared_data: Path) -> None:
    devkit = shared_data / "dota" / "dota_devkit"
    assert read_dota_labeltxt(devkit / "labelTxt" / "P0706.txt", devkit / "images" / "P0706.png").counts() == {
        "ship": 531, "harbor": 5}
    airbus = read_airbus_csv(shared_data / "airbus-aircraft" / "annotations.csv", shared_data / "airbus-aircraft" / "train")
    assert len(airbus) == 83 and all(b.image.is_file() for b in airbus)
    ships = read_voc_xml(shared_data / "ships-google-earth" / "annotations" / "boat0.xml",
                         shared_data / "ships-google-earth" / "images")
    assert ships.image.is_file() and ships.counts() == {"boat": 1}
    forest = shared_data / "scenes" / "deepforest"
    [osbs] = read_deepforest_csv(forest / "OSBS_029.csv", forest)
    assert osbs.counts() == {"tree": 61}
