"""Relevance against null captions, the bands, the temperature fit and the calibration file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from remoteclip.calibration import (
    MIN_BAND_GAP,
    NO_MATCH,
    NULL_CAPTIONS,
    NULL_QUANTILE,
    STRONG,
    WEAK,
    Calibration,
    calibration_path,
    cut_off_for_precision,
    cut_offs,
    fit_temperature,
    load_calibration,
    null_text_vectors,
    relevance,
    save_calibration,
)
from remoteclip.errors import WeightsError
from remoteclip.zeroshot import softmax


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_relevance_is_the_score_above_the_null_scores_on_the_same_image() -> None:
    rng = np.random.default_rng(0)
    null = unit(rng.normal(size=(20, 8)))
    image = unit(rng.normal(size=(1, 8)))
    on_image = image @ null.T
    z = relevance(image, np.vstack([image, null[:1]]), null)
    assert z.shape == (1, 2)
    assert z[0, 0] == pytest.approx((1.0 - on_image.mean()) / on_image.std(), rel=1e-5)
    assert z[0, 1] == pytest.approx((on_image[0, 0] - on_image.mean()) / on_image.std(), rel=1e-5)
    assert z[0, 0] > 3 > z[0, 1]  # the image's own direction stands far above unrelated text


def test_bands_follow_the_cut_offs() -> None:
    calibration = Calibration("m@1", weak_z=4.0, strong_z=5.0)
    assert [calibration.band(z) for z in (3.9, 4.0, 4.9, 5.0, 9.0)] == [NO_MATCH, WEAK, WEAK, STRONG, STRONG]


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_at() -> None:
    rng = np.random.default_rng(1)
    scale, true_t = 20.0, 0.5
    sets = []
    for classes in (5, 3):  # sets with classes of their own, fitted together
        cosine = rng.uniform(-0.2, 0.6, size=(2000, classes))
        probs = softmax((scale / true_t) * cosine)
        sets.append((cosine, np.array([rng.choice(classes, p=row) for row in probs])))
    fitted = fit_temperature(sets, scale)
    assert fitted == pytest.approx(true_t, rel=0.15)
    calibrated = Calibration("m@1", temperature=fitted).probabilities(sets[0][0], scale)
    assert np.allclose(calibrated.sum(axis=1), 1.0)


def test_cut_off_keeps_the_precision_above_it() -> None:
    z = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0])
    correct = np.array([1, 1, 1, 0, 1, 0, 0], dtype=bool)
    assert cut_off_for_precision(z, correct, 1.0) == 7.0
    assert cut_off_for_precision(z, correct, 0.8) == 5.0  # 4 of 5 above 5.0
    assert cut_off_for_precision(z, np.zeros(7, bool), 0.5) == float("inf")


def test_calibration_file_round_trip_and_other_models(tmp_path: Path, tiny_model: object) -> None:
    path = tmp_path / "cal.json"
    fitted = replace(
        Calibration(tiny_model.model_id),
        weak_z=3.0,
        strong_z=6.0,
        temperature=0.7,
        fitted=True,
        report={"n": 3},
    )
    save_calibration(fitted, path)
    assert load_calibration(tiny_model, path) == fitted
    save_calibration(replace(fitted, model_id="other@123"), path)
    assert load_calibration(tiny_model, path) == Calibration(tiny_model.model_id)  # not fitted for it
    path.write_text("{not json")
    with pytest.raises(WeightsError, match="calibration"):
        load_calibration(tiny_model, path)
    assert load_calibration(tiny_model, tmp_path / "missing.json").fitted is False


def test_null_vectors_are_encoded_once_per_model(tiny_model: object) -> None:
    raw = null_text_vectors(tiny_model)
    assert raw.shape[0] == len(NULL_CAPTIONS)
    assert np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-5)
    assert null_text_vectors(tiny_model) is raw
    assert null_text_vectors(tiny_model, templated=True).shape == raw.shape


def test_the_shipped_model_ships_a_fitted_calibration(default_model: object) -> None:
    assert calibration_path(default_model).is_file()
    calibration = load_calibration(default_model)
    assert calibration.fitted and calibration.model_id == default_model.model_id
    assert calibration.weak_z < calibration.strong_z and 0.1 < calibration.temperature < 10
    assert calibration.report["fitted_on"]  # says what it was measured on


def test_an_unfitted_model_is_cut_by_its_library_alone() -> None:
    null_best = [2.0, 2.5, 3.0, 3.5, 4.0]
    weak, strong = cut_offs(null_best, Calibration("m@1"))
    assert weak == pytest.approx(np.quantile(null_best, NULL_QUANTILE)) and strong == pytest.approx(
        weak + MIN_BAND_GAP
    )
    fitted = Calibration("m@1", weak_z=5.0, strong_z=7.0, fitted=True)
    assert cut_offs(null_best, fitted) == (5.0, 7.0)  # the calibrated floor and strong cut-off
