"""What the object locator trains on: the manifest lists exactly its images, none near an evaluation image."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

from PIL import Image

from pipelines.training.dedup import MAX_DISTANCE, NearDuplicateFilter, perceptual_hash
from pipelines.training.locator import heatmap_target, manifest_rows, training_scenes
from pipelines.training.sources import held_out_images
from tests.conftest import REPO_ROOT

SHIPPED_MANIFEST = REPO_ROOT / "docs" / "locator-trainset-manifest.csv.gz"


def test_training_images_are_none_of_the_evaluation_images(shared_data: Path) -> None:
    evaluation = held_out_images(shared_data)
    held_out = NearDuplicateFilter(MAX_DISTANCE)
    for path in evaluation:
        with Image.open(path) as image:
            held_out.add(perceptual_hash(image.convert("RGB")))
    scenes = training_scenes(shared_data)
    assert scenes and not {s.boxes.image.resolve() for s, _ in scenes} & {p.resolve() for p in evaluation}
    assert not [s for s, phash in scenes if held_out.seen(int(phash, 16))]


def test_the_shipped_manifest_lists_exactly_the_training_images(shared_data: Path) -> None:
    with gzip.open(SHIPPED_MANIFEST, "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["source", "image", "phash"]
    assert [tuple(row) for row in rows[1:]] == manifest_rows(shared_data)


def test_targets_peak_at_each_object_centre() -> None:
    target = heatmap_target([(20.0, 36.0, 16.0), (100.0, 12.0, 40.0)], cells=16)
    assert target[4, 2] == 1.0 and target[1, 12] == 1.0 and target.max() == 1.0
    assert target[8, 8] < 1e-3
