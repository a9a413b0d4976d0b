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


def test_folder_named_like_shared_dataset_is_not_split_by_its_name(tmp_path: Path) -> None:
    root = tmp_path / "rsscn7"  # named like ../shared/data/rsscn7, but any folder of class folders
    for folder in ("aGrass", "bField", "cIndustry"):
        for i in range(10):
            _png(root / folder / f"{folder[0]}{i:03d}.png")
    data = eval_datasets.read_classification(root)
    assert data.name == "rsscn7" and data.classes == ("field", "grass", "industry")
    assert not data.fixed_split
    assert len(data.zero_shot_images().paths) == 30  # zero-shot scores every image given
    assert len(data.test.paths) == 6  # the probes still hold out 20 % of each class by hash


def _jpg(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value, value, value)).save(path)
    return path


def test_named_split_applies_to_any_folder(tmp_path: Path) -> None:
    root = tmp_path / "my-scenes"
    labelled = [
        (_jpg(root / folder / f"{folder[0]}{i:03d}.jpg", i), folder)
        for folder in ("aGrass", "bField")
        for i in range(10)
    ]
    data = eval_datasets.read_classification(root, split="rsscn7")
    expected = splits.split_by_hash("rsscn7", labelled)  # the rule of rsscn7, keyed by "rsscn7"
    assert data.name == "rsscn7" and data.classes == ("field", "grass")
    assert data.fixed_split
    assert data.test.paths == expected.test and data.train.paths == expected.train
    assert data.zero_shot_images() == data.test and len(data.test.paths) == 4
    plain = eval_datasets.read_classification(root)
    assert not plain.fixed_split and len(plain.zero_shot_images().paths) == 20


def test_named_split_needs_its_layout(tmp_path: Path) -> None:
    for folder in ("aGrass", "bField"):
        _png(tmp_path / folder / "x.png")
    with pytest.raises(InputError, match=r"no images of the ucm-captions split.*images/<id>\.jpg"):
        eval_datasets.read_classification(tmp_path, split="ucm-captions")


@pytest.mark.parametrize(
    ("read", "known"),
    [
        (eval_datasets.read_classification, "rsscn7, ucm-captions"),
        (eval_datasets.read_captions, "ucm-captions"),
        (
            lambda path, split: count_sets.read_count_set(path, split=split),
            "airbus-aircraft, ships-google-earth",
        ),
    ],
)
def test_unknown_split_lists_the_known_ones(read, known: str, tmp_path: Path) -> None:
    for folder in ("aGrass", "bField"):
        _jpg(tmp_path / "rsscn7" / folder / "a.jpg")
    with pytest.raises(InputError, match=rf"unknown \w+ split 'nope'; choose one of {known}$"):
        read(tmp_path / "rsscn7", split="nope")


def test_classification_errors_name_the_fix(tmp_path: Path) -> None:
    _png(tmp_path / "only" / "a.png")
    with pytest.raises(InputError, match="at least two.*--split"):
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


def test_limit_per_class_scores_a_fixed_subset_of_each_class(tmp_path: Path) -> None:
    for cls, n in (("damage", 7), ("no_damage", 3)):
        for i in range(n):
            _png(tmp_path / "set" / cls / f"{cls}{i}.png")
    data = eval_datasets.read_classification(tmp_path / "set")
    limited = eval_datasets.limit_per_class(data, 4)
    scored = limited.zero_shot_images()
    assert np.bincount(scored.labels).tolist() == [4, 3]
    assert sorted(scored.paths + limited.train.paths) == sorted(data.zero_shot_images().paths)
    assert eval_datasets.limit_per_class(data, 4).test.paths == scored.paths  # the same subset every time


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


def _ucm_layout(root: Path, ids: list[int]) -> Path:
    """``root/<name>/images/<id>.jpg`` with their captions in ``root/captions/ucm/train_*.txt``."""
    for i in ids:
        _jpg(root / "ucm-captions" / "images" / f"{i}.jpg", i)
    (root / "captions" / "ucm").mkdir(parents=True)
    (root / "captions" / "ucm" / "train_filename.txt").write_text("".join(f"{i}.tif\n" for i in ids))
    (root / "captions" / "ucm" / "train_caps.txt").write_text(
        "".join(f"caption {j} of {i} .\n" for i in ids for j in range(5))
    )
    return root / "ucm-captions"


def test_ucm_captions_layout_every_image_unless_split_asked(tmp_path: Path) -> None:
    ids = [*range(1, 11), *range(101, 111)]  # agricultural and airplane, 10 each
    folder = _ucm_layout(tmp_path, ids)
    every = eval_datasets.read_captions(folder)
    assert len(every.images) == 20 and len(every.captions) == 100
    held = eval_datasets.read_captions(folder, split="ucm-captions")
    assert held.name == "ucm-captions" and len(held.images) == 4 and len(held.captions) == 20
    assert held.images == splits.ucm_captions(tmp_path).test
    renamed = folder.rename(tmp_path / "uc-merced")  # the layout, not the name, is what is read
    assert len(eval_datasets.read_captions(renamed).images) == 20
    assert [p.name for p in eval_datasets.read_captions(renamed, split="ucm-captions").images] == [
        p.name for p in held.images
    ]
    classes = eval_datasets.read_classification(renamed, split="ucm-captions")
    assert classes.classes == ("agricultural", "airplane") and len(classes.test.paths) == 4
    with pytest.raises(InputError, match="not to the file"):
        eval_datasets.read_captions(tmp_path / "captions" / "ucm" / "train_caps.txt", split="ucm-captions")


def test_shared_ucm_captions_held_out(shared_data: Path) -> None:
    data = eval_datasets.read_captions(shared_data / "ucm-captions", split="ucm-captions")
    held_out = splits.ucm_captions(shared_data).test
    assert data.images == held_out and len(data.images) > 300
    assert np.bincount(data.caption_image).tolist() == [5] * len(held_out)
    classes = eval_datasets.read_classification(shared_data / "ucm-captions", split="ucm-captions")
    assert len(classes.classes) == 21 and "baseball diamond" in classes.classes
    assert set(classes.test.paths) == set(data.images)
    every = eval_datasets.read_captions(shared_data / "ucm-captions")  # no split asked: every image
    assert len(every.images) == 1680 and len(every.captions) == 5 * 1680


def test_shared_rsscn7_split_only_when_asked(shared_data: Path) -> None:
    data = eval_datasets.read_classification(shared_data / "rsscn7", split="rsscn7")
    assert data.classes == ("field", "forest", "grass", "industry", "parking", "resident", "river lake")
    assert data.fixed_split and len(data.test.paths) == 84 and len(data.train.paths) == 336
    assert data.test.paths == splits.rsscn7(shared_data).test
    assert data.zero_shot_images() == data.test
    plain = eval_datasets.read_classification(shared_data / "rsscn7")
    assert not plain.fixed_split and len(plain.zero_shot_images().paths) == 420


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


def test_count_set_split_by_option_not_by_name(tmp_path: Path) -> None:
    root = tmp_path / "ships-google-earth"  # named like the shared set: every image unless a split is asked
    for i in range(5):
        _jpg(root / "images" / f"boat{i}.jpg")
        _voc(root / "annotations" / f"boat{i}.xml", f"boat{i}.jpg", [(1, 1, 5, 5, "boat")])
    assert len(count_sets.read_count_set(root).images) == 5
    held = count_sets.read_count_set(root, split="ships-google-earth")
    assert held.name == "ships-google-earth" and len(held.images) == 1  # round(0.2 * 5)
    assert [i.path for i in held.images] == list(splits.ships_google_earth(tmp_path).test)


def test_count_set_airbus_layout_uses_its_valid_folder(tmp_path: Path) -> None:
    root = tmp_path / "planes"  # the train/ + valid/ layout is the split, whatever the folder's name
    _jpg(root / "train" / "t.jpg")
    _jpg(root / "valid" / "v.jpg")
    box = '"[(1, 1), (5, 1), (5, 5), (1, 5), (1, 1)]"'
    (root / "annotations.csv").write_text(
        f"id,image_id,geometry,class\n1,t.jpg,{box},Airplane\n2,v.jpg,{box},Airplane\n"
    )
    for split in (None, "airbus-aircraft"):
        data = count_sets.read_count_set(root, split=split)
        assert [i.path.name for i in data.images] == ["v.jpg"]
    assert count_sets.read_count_set(root, split="airbus-aircraft").name == "airbus-aircraft"


def test_shared_count_sets(shared_data: Path) -> None:
    for split in (None, "airbus-aircraft"):
        airbus = count_sets.read_count_set(shared_data / "airbus-aircraft", chip_px=512, split=split)
        assert airbus.object_name == "airplane" and len(airbus.images) == 8  # valid/ only
        assert all(p.path.parent.name == "valid" for p in airbus.images)
        assert all(len(img.chips) == 25 for img in airbus.images)  # 2560 px in 512 px chips
    ships = count_sets.read_count_set(shared_data / "ships-google-earth", split="ships-google-earth")
    assert len(ships.images) == 77 and ships.object_name == "boat"
    assert len(count_sets.read_count_set(shared_data / "ships-google-earth").images) == 386
