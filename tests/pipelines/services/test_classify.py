"""Classify with the shipped model and its calibration on real imagery: "none of these" when no label fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.services.classify import NONE_OF_THESE, classify_scene
from remoteclip.calibration import Calibration, load_calibration

pytestmark = pytest.mark.slow

#: a UC Merced tennis-court scene (../shared/data/ucm-captions/images, id 2001: class 20, tennis court)
TENNIS = "ucm-captions/images/2001.jpg"


def test_a_fitting_label_wins_and_unfitting_ones_give_none_of_these(
    shared_data: Path, default_model: object
) -> None:
    path = shared_data / TENNIS
    offered = classify_scene(path, default_model, ["tennis court", "forest", "beach"])
    assert offered.calibrated and offered.labels[-1] == NONE_OF_THESE
    assert offered.best.label == "tennis court"
    assert sum(score.probability for score in offered.scene) == pytest.approx(1.0, abs=1e-6)

    absent = classify_scene(path, default_model, ["forest", "beach", "desert"])
    assert absent.best.label == NONE_OF_THESE  # none of the labels describes a tennis court
    chips = absent.chips["features"]
    assert {c["properties"]["label"] for c in chips} == {NONE_OF_THESE}
    assert all(c["properties"]["relevance"] < load_calibration(default_model).label_z + 0.01 for c in chips)


def test_uncalibrated_models_say_so(shared_data: Path, default_model: object) -> None:
    raw = Calibration(default_model.model_id, label_z=float("-inf"))  # rejects nothing, temperature 1
    result = classify_scene(shared_data / TENNIS, default_model, ["tennis court", "forest"], calibration=raw)
    assert not result.calibrated
    assert {c["properties"]["label"] for c in result.chips["features"]} <= {"tennis court", "forest"}
