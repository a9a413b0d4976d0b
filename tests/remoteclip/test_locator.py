"""The object locator's head, peaks, files and the checks around them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from remoteclip.errors import InputError, ModelNotFoundError, WeightsError
from remoteclip.locator import (
    STRIDE,
    LocatorHead,
    ObjectLocator,
    find_peaks,
    load_locator,
    read_locator,
    score_maps,
    trunk_features,
)
from tests.synthetic_objects import DISK_NOUN, draw_disks, ground, random_centres


def small_locator(model_id: str = "some-model@0123456789ab") -> ObjectLocator:
    head = LocatorHead([4, 6, 8], text_dim=16, width=8)
    embeddings = np.eye(2, 16, dtype=np.float32)
    return ObjectLocator(head, model_id, 0.4, ("airplane", "ship"), embeddings, {"recall": 0.9})


def test_peaks_are_local_maxima_at_or_above_the_threshold() -> None:
    heat = np.zeros((8, 8), dtype=np.float32)
    heat[2, 3], heat[2, 4] = 0.9, 0.5  # a peak and its shoulder
    heat[6, 1] = 0.35  # below the threshold
    heat[5, 6] = 0.4  # exactly at it
    peaks = find_peaks(heat, threshold=0.4)
    assert [(p.x, p.y, p.score) for p in peaks] == [
        (3.5 * STRIDE, 2.5 * STRIDE, pytest.approx(0.9)),
        (6.5 * STRIDE, 5.5 * STRIDE, pytest.approx(0.4)),
    ]


def test_the_head_maps_stride_8_features_and_a_text_to_one_logit_per_cell() -> None:
    head = LocatorHead([4, 6, 8], text_dim=16, width=8)
    features = [torch.randn(2, 4, 32, 32), torch.randn(2, 6, 16, 16), torch.randn(2, 8, 8, 8)]
    assert head(features, torch.randn(2, 16)).shape == (2, 32, 32)


def test_a_saved_locator_reads_back_the_same(tmp_path: Path) -> None:
    locator = small_locator()
    locator.save(tmp_path / "loc.safetensors")
    back = read_locator(tmp_path / "loc.safetensors")
    assert (back.model_id, back.threshold, back.classes, back.validation) == (
        locator.model_id,
        0.4,
        ("airplane", "ship"),
        {"recall": 0.9},
    )
    for key, value in locator.head.state_dict().items():
        assert torch.equal(back.head.state_dict()[key], value)


def test_a_locator_of_another_trunk_is_refused(tmp_path: Path, tiny_model: object) -> None:
    small_locator().save(tmp_path / "loc.safetensors")
    with pytest.raises(WeightsError, match="trained on some-model@0123456789ab"):
        load_locator(tiny_model, tmp_path / "loc.safetensors")


def test_a_missing_or_broken_locator_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no object locator"):
        read_locator(tmp_path / "none.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(WeightsError, match="not an object locator"):
        read_locator(tmp_path / "bad.safetensors")


def test_the_nearest_trained_class_of_a_query() -> None:
    locator = small_locator()
    query = np.zeros(16, dtype=np.float32)
    query[1] = 1.0
    assert locator.known_class(query) == ("ship", pytest.approx(1.0))


def test_a_vit_has_no_feature_maps_for_the_locator(tiny_model: object) -> None:
    with pytest.raises(InputError, match="no convolutional trunk"):
        trunk_features(tiny_model, torch.zeros(1, 3, 64, 64))


def test_the_shipped_model_has_a_locator(default_model: object) -> None:
    locator = load_locator(default_model)
    assert locator.model_id == default_model.model_id
    assert {"airplane", "ship", "building"} <= set(locator.classes) and 0 < locator.threshold < 1


def test_the_head_finds_hand_placed_disks(default_model: object, disk_locator: ObjectLocator) -> None:
    from remoteclip.locator import object_embedding

    rng = np.random.default_rng(42)
    query = object_embedding(default_model, DISK_NOUN)
    for _ in range(3):
        centres = random_centres(rng, 5, 256)
        heat = score_maps(default_model, disk_locator, [draw_disks(ground(rng, 256, 256), centres)], query)[0]
        peaks = find_peaks(heat, disk_locator.threshold)
        assert len(peaks) == len(centres)
        for x, y in centres:
            assert min(np.hypot(p.x - x, p.y - y) for p in peaks) <= 1.5 * STRIDE
