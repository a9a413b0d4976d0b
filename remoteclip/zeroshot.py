"""Zero-shot classification: class weights from prompt templates, scaled cosine logits, top-k probabilities.

Everything here takes arrays except :func:`build_classifier`, which encodes the prompts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from remoteclip.encode import encode_texts
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from remoteclip.prompts import ZEROSHOT_TEMPLATES, class_prompts
from remoteclip.vectors import l2_normalize


@dataclass(frozen=True)
class Prediction:
    """One ranked label and its softmax probability."""

    label: str
    probability: float


def classifier_weights(prompt_embeddings: np.ndarray) -> np.ndarray:
    """Class weights ``(C, D)`` from prompt embeddings ``(C, T, D)``: mean per class, renormalised."""
    if prompt_embeddings.ndim != 3:
        raise InputError(
            f"prompt embeddings must be (classes, templates, dim), got shape {prompt_embeddings.shape}"
        )
    return l2_normalize(l2_normalize(prompt_embeddings).mean(axis=1))


def build_classifier(
    model: LoadedModel, class_names: Sequence[str], templates: Sequence[str] = ZEROSHOT_TEMPLATES
) -> np.ndarray:
    """Encode every class name in every template and average per class: ``(C, D)``."""
    names = [name.strip() for name in class_names]
    if not names or any(not name for name in names):
        raise InputError(
            f"class names must be non-empty, got {list(class_names)!r}; pass e.g. --labels 'forest,river'"
        )
    embeddings = encode_texts(model, class_prompts(names, templates))
    return classifier_weights(embeddings.reshape(len(names), len(templates), -1))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def class_probabilities(image_embeddings: np.ndarray, weights: np.ndarray, logit_scale: float) -> np.ndarray:
    """Softmax over ``logit_scale * cosine`` for each image: ``(N, C)``."""
    return softmax(logit_scale * (l2_normalize(image_embeddings) @ l2_normalize(weights).T))


def top_k(
    image_embeddings: np.ndarray, weights: np.ndarray, labels: Sequence[str], logit_scale: float, k: int = 5
) -> list[list[Prediction]]:
    """The ``k`` most probable labels per image, best first."""
    if len(labels) != len(weights):
        raise InputError(f"{len(labels)} labels for {len(weights)} class weights; they must match")
    probabilities = class_probabilities(image_embeddings, weights, logit_scale)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        [Prediction(labels[j], float(row[j])) for j in ranked] for row, ranked in zip(probabilities, order)
    ]
