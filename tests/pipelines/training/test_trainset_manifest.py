"""The shipped training manifest (``docs/trainset-manifest.csv.gz``): what explorer-small saw, audited."""

from __future__ import annotations

import csv
import gzip
import re
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.datasets.splits import HELD_OUT_SOURCES, NEVER_TRAINED
from pipelines.training.dedup import MAX_DISTANCE, perceptual_hash
from pipelines.training.sources import held_out_images
from tests.conftest import REPO_ROOT

SHIPPED_MANIFEST = REPO_ROOT / "docs" / "trainset-manifest.csv.gz"
DATASET_CARD = REPO_ROOT / "docs" / "DATASET_CARD.md"


def _rows() -> list[list[str]]:
    with gzip.open(SHIPPED_MANIFEST, "rt", newline="") as handle:
        return list(csv.reader(handle))


def test_manifest_rows_are_source_image_phash() -> None:
    rows = _rows()
    assert rows[0] == ["source", "image", "phash"]
    assert all(re.fullmatch(r"[0-9a-f]{16}", phash) for _, _, phash in rows[1:])
    images = [image for _, image, _ in rows[1:]]
    assert len(set(images)) == len(images)
    sources = {source for source, _, _ in rows[1:]}
    assert not sources & set(HELD_OUT_SOURCES) and not {s.lower() for s in sources} & NEVER_TRAINED
    # the dataset card's total is the manifest's length
    total = re.search(r"\| \*\*all\*\* \| \| \*\*(\d+)\*\*", DATASET_CARD.read_text())
    assert total is not None and int(total.group(1)) == len(images)


def test_no_training_image_is_within_4_bits_of_an_evaluation_image(shared_data: Path) -> None:
    hashes = np.array([int(phash, 16) for _, _, phash in _rows()[1:]], dtype=np.uint64)
    evaluation = held_out_images(shared_data)
    assert len(evaluation) > 400
    for path in evaluation:
        with Image.open(path) as image:
            distance = np.bitwise_count(hashes ^ np.uint64(perceptual_hash(image.convert("RGB")))).min()
        assert distance > MAX_DISTANCE, path
