"""Prompts, zero-shot classification and counting by captions, on hand-made embeddings and the tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from remoteclip.counting import aggregate_counts, build_count_captions, estimate_counts
from remoteclip.encode import encode_texts
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from remoteclip.prompts import (
    MAX_COUNT,
    PAPER_TEMPLATE,
    ZEROSHOT_TEMPLATES,
    class_prompts,
    count_captions,
    singular,
)
from remoteclip.zeroshot import build_classifier, class_probabilities, classifier_weights, softmax, top_k


def basis(dim: int) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)


def test_paper_template_comes_first_and_prompts_are_class_major() -> None:
    assert ZEROSHOT_TEMPLATES[0] == PAPER_TEMPLATE == "a satellite photo of {}."
    prompts = class_prompts(["forest", "river"], ("a {}.", "b {}."))
    assert prompts == ["a forest.", "b forest.", "a river.", "b river."]


def test_count_captions_follow_remotecount() -> None:
    captions = count_captions("airplane")
    assert len(captions) == MAX_COUNT + 1
    assert captions[:3] == (
        "a satellite photo of no airplanes.",
        "a satellite photo of 1 airplane.",
        "a satellite photo of 2 airplanes.",
    )
    assert captions[-1] == "a satellite photo of 10 airplanes."
    assert count_captions("airplanes") == captions
    assert [singular(word) for word in ("buses", "ships", "trees", "glass", "small vehicles")] == [
        "bus",
        "ship",
        "tree",
        "glass",
        "small vehicle",
    ]


def test_classifier_weights_average_templates_per_class() -> None:
    e = basis(4)
    prompts = np.stack([[e[0], e[1]], [e[2], e[2]]])  # class 0: two templates, class 1: one direction
    weights = classifier_weights(prompts)
    np.testing.assert_allclose(weights, [[2**-0.5, 2**-0.5, 0, 0], [0, 0, 1, 0]], atol=1e-6)
    with pytest.raises(InputError, match="classes, templates, dim"):
        classifier_weights(e)


def test_top_k_ranks_by_scaled_cosine_with_probabilities() -> None:
    weights = basis(3)
    images = np.array([[0.1, 0.9, 0.2], [1.0, 0.0, 0.0]], dtype=np.float32)
    ranked = top_k(images, weights, ["forest", "river", "airport"], logit_scale=100.0, k=2)
    assert [p.label for p in ranked[0]] == ["river", "airport"]
    assert ranked[1][0].label == "forest"
    unit = images[0] / np.linalg.norm(images[0])
    expected = softmax(100.0 * unit[None, :])[0]
    assert ranked[0][0].probability == pytest.approx(expected[1], rel=1e-5)
    np.testing.assert_allclose(class_probabilities(images, weights, 100.0).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(InputError, match="2 labels for 3 class weights"):
        top_k(images, weights, ["a", "b"], 100.0)


def test_logit_scale_sharpens_probabilities() -> None:
    images = np.array([[0.6, 0.4]], dtype=np.float32)
    soft, sharp = (class_probabilities(images, basis(2), scale)[0, 0] for scale in (1.0, 100.0))
    assert 0.5 < soft < sharp and sharp > 0.99


def test_build_classifier_averages_encoded_prompts(tiny_model: LoadedModel) -> None:
    templates = ("a satellite photo of {}.", "an aerial image of {}.")
    weights = build_classifier(tiny_model, ["forest", " river "], templates)
    assert weights.shape == (2, tiny_model.embed_dim) and weights.dtype == np.float32
    prompts = encode_texts(tiny_model, ["a satellite photo of river.", "an aerial image of river."])
    expected = prompts.mean(axis=0) / np.linalg.norm(prompts.mean(axis=0))
    np.testing.assert_allclose(weights[1], expected, atol=1e-6)
    with pytest.raises(InputError, match="class names must be non-empty"):
        build_classifier(tiny_model, ["forest", ""])


def test_estimate_counts_picks_the_matching_caption() -> None:
    captions = basis(16)[: MAX_COUNT + 1]
    images = np.stack([captions[3] + 0.05 * captions[4], captions[0], captions[10]])
    estimates = estimate_counts(images, captions, logit_scale=100.0)
    assert [e.count for e in estimates] == [3, 0, 10]
    assert sum(estimates[0].probabilities) == pytest.approx(1.0)
    assert estimates[0].probabilities[3] > estimates[0].probabilities[4] > estimates[0].probabilities[5]
    assert estimates[0].expected == pytest.approx(3.0, abs=0.1)
    assert estimates[0].scores_1_to_10.shape == (MAX_COUNT,) and estimates[0].scores_1_to_10.argmax() == 2
    with pytest.raises(InputError, match="expected 11 counting captions"):
        estimate_counts(images, captions[:5], 100.0)


def test_build_count_captions_encodes_eleven_captions(tiny_model: LoadedModel) -> None:
    embeddings = build_count_captions(tiny_model, "ship")
    np.testing.assert_allclose(embeddings, encode_texts(tiny_model, count_captions("ship")), atol=1e-6)
    with pytest.raises(InputError, match="--object"):
        build_count_captions(tiny_model, "  ")


def test_aggregate_counts_weights_chips_by_aoi_overlap() -> None:
    assert aggregate_counts([2, 4, 10]) == 16.0
    assert aggregate_counts([2, 4, 10], [1.0, 0.5, 0.0]) == 4.0
    with pytest.raises(InputError, match="3 chip counts but 2 AOI fractions"):
        aggregate_counts([2, 4, 10], [1.0, 0.5])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        aggregate_counts([2], [1.5])
