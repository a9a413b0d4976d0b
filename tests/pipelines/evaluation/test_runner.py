"""Which images each task reads: a shared dataset's held-out split only when asked for by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.datasets import splits
from pipelines.evaluation.readers import CaptionSet, ClassificationSet
from pipelines.evaluation.runner import (
    CLASSIFICATION_TASKS,
    DEFAULT_SUITE,
    TASK_SPLITS,
    SuiteItem,
    read_suite,
    read_task_data,
)
from remoteclip.errors import InputError


def _class_folders(root: Path, per_class: int) -> Path:
    for folder in ("aGrass", "bField", "cIndustry"):
        for i in range(per_class):
            path = root / folder / f"{folder[0]}{i:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (i, i, i)).save(path)
    return root


def test_task_splits_are_known_splits() -> None:
    assert set(TASK_SPLITS) == {*CLASSIFICATION_TASKS, "retrieval", "counting"}
    assert all(set(names) <= set(splits.FOLDER_SPLITS) for names in TASK_SPLITS.values())


def test_default_suite_asks_for_the_held_out_splits() -> None:
    for item in DEFAULT_SUITE:
        name = Path(item.data).name
        assert item.split == (name if name in splits.SPLITS else None), item


@pytest.mark.parametrize("task", CLASSIFICATION_TASKS)
def test_folder_named_rsscn7_without_split(task: str, tmp_path: Path) -> None:
    data = read_task_data(task, _class_folders(tmp_path / "rsscn7", per_class=10))
    assert isinstance(data, ClassificationSet) and not data.fixed_split
    assert len(data.zero_shot_images().paths) == 30 and len(data.test.paths) == 6


def test_explicit_split_reaches_the_reader(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "anything", per_class=10)
    data = read_task_data("zero-shot", root, split="rsscn7")
    assert isinstance(data, ClassificationSet) and data.fixed_split and data.name == "rsscn7"
    assert len(data.zero_shot_images().paths) == 6
    with pytest.raises(InputError, match="unknown classification split 'RSSCN7'; choose one of rsscn7"):
        read_task_data("knn", root, split="RSSCN7")


def test_read_suite_adds_the_datasets_kept_out_of_training(shared_data: Path, tmp_path: Path) -> None:
    for name in ("satellite-image-classification-4class", "hurricane-harvey-damage"):
        _class_folders(tmp_path / "sources" / name, per_class=10)
    suite = [item for item in DEFAULT_SUITE if item.root == "sources"]
    assert suite, "the default suite evaluates datasets never trained on"
    jobs = read_suite(shared_data, [SuiteItem("zero-shot", item.data, root="sources", per_class=4)
                                    for item in suite], source_root=tmp_path / "sources")
    assert [data.name for _, data in jobs] == [item.data for item in suite]
    for _, data in jobs:
        assert isinstance(data, ClassificationSet)
        assert np.bincount(data.zero_shot_images().labels).tolist() == [4] * len(data.classes)


def test_read_suite_reads_the_held_out_sets(shared_data: Path) -> None:
    jobs = read_suite(shared_data)  # without a source root, the held-out source datasets are left out
    assert [task for task, _ in jobs] == [item.task for item in DEFAULT_SUITE if item.root == "data"]
    by_key = {(task, data.name): data for task, data in jobs}
    rsscn7 = by_key["zero-shot", "rsscn7"]
    assert isinstance(rsscn7, ClassificationSet)
    assert rsscn7.zero_shot_images().paths == splits.rsscn7(shared_data).test  # 84 of 420
    ucm = by_key["zero-shot", "ucm-captions"]
    assert isinstance(ucm, ClassificationSet) and len(ucm.zero_shot_images().paths) == 335
    retrieval = by_key["retrieval", "ucm-captions"]
    assert isinstance(retrieval, CaptionSet) and len(retrieval.images) == 335
    assert len(by_key["counting", "ships-google-earth"].images) == 77
    assert len(by_key["counting", "airbus-aircraft"].images) == 8
