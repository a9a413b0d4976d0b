"""Evaluation data readers: class folders, caption files and counting sets built from boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.datasets import splits
from pipelines.evaluation import count_sets
from pipelines.evaluation import readers as eval_datasets
from remoteclip.errors import InputError


def _png(path: Path, size: tuple[int, int] = (8, 8), value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


@pytest.mark.parametrize(
    ("folder", "strip", "expected"),
    [
        ("aGrass", True, "grass"),
        ("dRiverLake", True, "river lake"),
        ("Dense_Residential", False, "dense residential"),
        ("AnnualCrop", False, "annual crop"),
        ("baseball_diamond", False, "baseball diamond"),
        ("baseballdiamond", False, "baseball diamond"),
        ("Forest", False, "forest"),
    ],
)
def test_readable_class_name(folder: str, strip: bool, expected: str) -> None:
    assert eval_datasets.readable_class_name(folder, strip) == expected


def test_class_folders_with_ordinal_prefix(tmp_path: Path) -> None:
    for folder in ("aGrass", "bField", "cRiverLake"):
        for i in range(10):
            _png(tmp_path / "data" / folder / f"{folder[0]}{i:03d}.png")
    data = eval_datasets.read_classification(tmp_path / "data")
    assert data.classes == ("field", "grass", "river lake")
    assert not data.fixed_split
    assert len(data.train.paths) == 24 and len(data.test.paths) == 6  # 20 % of each class held out
    assert np.bincount(data.test.labels).tolist() == [2, 2, 2]
    assert not set(data.train.paths) & set(data.test.paths)
    assert len(data.zero_shot_images().paths) == 30  # no fixed split: zero-shot scores every image
    for path, label in zip(data.test.paths, data.test.labels, strict=True):
        assert eval_datasets.readable_class_name(path.parent.name, True) == data.classes[label]


def test_train_test_folders_are_the_split(tmp_path: Path) -> None:
    for part, n in (("train", 3), ("val", 1), ("test", 2)):
        for cls in ("Sea_Lake", "Forest"):
            for i in range(n):
                _png(tmp_path / part / cls / f"{part}{i}.png")
    data = eval_datasets.read_classification(tmp_path)
    assert data.classes == ("forest", "sea lake")
    assert data.fixed_split
    assert len(data.train.paths) == 8 and len(data.test.paths) == 4
    assert data.zero_shot_images() == data.test


def test_classification_errors_name_the_fix(tmp_path: Path) -> None:
    _png(tmp_path / "only" / "a.png")
    with pytest.raises(InputError, match="at least two"):
        eval_datasets.read_classification(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        eval_datasets.read_classification(tmp_path / "missing")


def test_validation_split_partitions_training_part(tmp_path: Path) -> None:
    paths = tuple(tmp_path / f"{i}.png" for i in range(20))
    train = eval_datasets.LabelledImages(paths, np.array([0] * 10 + [1] * 10))
    fit, val = eval_datasets.validation_split(train, "demo")
    assert sorted(fit.paths + val.paths) == sorted(paths)
    assert np.bincount(val.labels).tolist() == [2, 2]
    assert all(int(p.stem) // 10 == label for p, label in zip(fit.paths, fit.labels, strict=True))


def test_caption_csv_groups_captions_per_image(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "a.png")
    _png(tmp_path / "img" / "b.png")
    (tmp_path / "caps.csv").write_text(
        'filepath,caption\nimg/a.png,two planes\nimg/b.png,"a harbor, with boats"\nimg/a.png,an airport\n'
    )
    data = eval_datasets.read_captions(tmp_path / "caps.csv")
    assert data.images == (tmp_path / "img" / "a.png", tmp_path / "img" / "b.png")
    assert data.captions == ("two planes", "a harbor, with boats", "an airport")
    assert data.caption_image.tolist() == [0, 1, 0]
    (tmp_path / "caps.tsv").write_text("filepath\ttitle\nimg/b.png\tboats\n")
    assert eval_datasets.read_captions(tmp_path / "caps.tsv").captions == ("boats",)


def test_caption_csv_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("path,text\nx.png,y\n")
    with pytest.raises(InputError, match="filepath"):
        eval_datasets.read_captions(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("filepath,caption\nnope.png,y\n")
    with pytest.raises(InputError, match="do not exist"):
        eval_datasets.read_captions(tmp_path / "missing.csv")


def test_caption_lines_both_layouts(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "1.jpg")
    _png(tmp_path / "images" / "2.jpg")
    (tmp_path / "train_filename.txt").write_text("1.tif\n2.tif\n")  # one line per image, .tif kept as .jpg
    (tmp_path / "train_caps.txt").write_text("a\nb\nc\nd\n")
    pairs = eval_datasets.read_caption_lines(
        tmp_path / "images", tmp_path / "train_filename.txt", tmp_path / "train_caps.txt"
    )
    assert [(p.name, c) for p, c in pairs] == [("1.jpg", "a"), ("1.jpg", "b"), ("2.jpg", "c"), ("2.jpg", "d")]
    (tmp_path / "test_filename.txt").write_text("2.tif\n2.tif\n1.tif\n")  # repeated once per caption
    (tmp_path / "test_caps.txt").write_text("x\ny\nz\n")
    pairs = eval_datasets.read_caption_lines(
        tmp_path / "images", tmp_path / "test_filename.txt", tmp_path / "test_caps.txt"
    )
    assert [(p.name, c) for p, c in pairs] == [("2.jpg", "x"), ("2.jpg", "y"), ("1.jpg", "z")]


def test_karpathy_json_test_split(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "airport_1.jpg")
    _png(tmp_path / "images" / "beach_2.jpg")
    records = [
        {
            "filename": "airport_1.jpg",
            "split": "test",
            "sentences": [{"raw": "planes ."}, {"raw": "a runway ."}],
        },
        {"filename": "beach_2.jpg", "split": "train", "sentences": [{"raw": "sand ."}]},
    ]
    (tmp_path / "dataset_rsicd.json").write_text(json.dumps({"images": records}))
    data = eval_datasets.read_captions(tmp_path)
    assert [p.name for p in data.images] == ["airport_1.jpg"]
    assert data.captions == ("planes .", "a runway .")


def test_shared_ucm_captions_held_out(shared_data: Path) -> None:
    data = eval_datasets.read_captions(shared_data / "ucm-captions")
    held_out = splits.ucm_captions(shared_data).test
    assert data.images == held_out and len(data.images) > 300
    assert np.bincount(data.caption_image).tolist() == [5] * len(held_out)
    classes = eval_datasets.read_classification(shared_data / "ucm-captions")
    assert len(classes.classes) == 21 and "baseball diamond" in classes.classes
    assert set(classes.test.paths) == set(data.images)


def test_shared_rsscn7_uses_fixed_split(shared_data: Path) -> None:
    data = eval_datasets.read_classification(shared_data / "rsscn7")
    assert data.classes == ("field", "forest", "grass", "industry", "parking", "resident", "river lake")
    assert data.fixed_split and len(data.test.paths) == 84 and len(data.train.paths) == 336


def _voc(path: Path, image: str, boxes: list[tuple[int, int, int, int, str]]) -> None:
    objects = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax>"
        "</bndbox></object>"
        for a, b, c, d, n in boxes
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{image}</filename>{objects}</annotation>")


def test_count_set_known_chip_counts(tmp_path: Path) -> None:
    root = tmp_path / "boats"
    _png(root / "images" / "one.png", size=(100, 60))
    # centres (10, 10), (60, 10), (70, 20), (90, 50); one car that must not count
    _voc(
        root / "annotations" / "one.xml",
        "one.png",
        [
            (5, 5, 15, 15, "boat"),
            (55, 5, 65, 15, "boat"),
            (65, 15, 75, 25, "boat"),
            (85, 45, 95, 55, "boat"),
            (5, 40, 15, 50, "car"),
        ],
    )
    whole = count_sets.read_count_set(root)
    assert whole.object_name == "boat"
    assert [(c.side_px, c.true) for c in whole.images[0].chips] == [(100, 4)]
    chipped = count_sets.read_count_set(root, chip_px=50)
    image = chipped.images[0]
    assert image.true == 4
    # 2 x 2 chips of 50 px: top-left 1, top-right 2, bottom-left 0, bottom-right 1
    assert [(c.col_off, c.row_off, c.true) for c in image.chips] == [
        (0, 0, 1),
        (50, 0, 2),
        (0, 50, 0),
        (50, 50, 1),
    ]
    assert sum(c.true for c in image.chips) == image.true
    assert [c.true for c in image.chips if c.in_remotecount_range] == [1, 2, 1]
    assert count_sets.read_count_set(root, object_name="car").images[0].true == 1
    with pytest.raises(InputError, match="no 'truck' boxes"):
        count_sets.read_count_set(root, object_name="truck")


def test_count_set_pascal_voc_folder_names(tmp_path: Path) -> None:
    _png(tmp_path / "JPEGImages" / "x.png", size=(20, 20))
    _voc(tmp_path / "Annotations" / "x.xml", "x.png", [(1, 1, 5, 5, "ship"), (10, 10, 15, 15, "ship")])
    data = count_sets.read_count_set(tmp_path)
    assert data.images[0].path == tmp_path / "JPEGImages" / "x.png" and data.images[0].true == 2


def test_count_set_dota_layout(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "P1.png", size=(40, 40))
    (tmp_path / "labelTxt").mkdir()
    (tmp_path / "labelTxt" / "P1.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.3\n1 1 9 1 9 9 1 9 ship 0\n20 20 30 20 30 30 20 30 ship 1\n"
        "2 30 8 30 8 38 2 38 small-vehicle 0\n"
    )
    data = count_sets.read_count_set(tmp_path)
    assert data.object_name == "ship" and data.images[0].true == 2
    assert count_sets.read_count_set(tmp_path, object_name="small_vehicle").images[0].true == 1


def test_shared_count_sets(shared_data: Path) -> None:
    airbus = count_sets.read_count_set(shared_data / "airbus-aircraft", chip_px=512)
    assert airbus.object_name == "airplane" and len(airbus.images) == 8  # valid/ only
    assert all(p.path.parent.name == "valid" for p in airbus.images)
    assert all(len(img.chips) == 25 for img in airbus.images)  # 2560 px in 512 px chips
    ships = count_sets.read_count_set(shared_data / "ships-google-earth")
    assert len(ships.images) == 77 and ships.object_name == "boat"
