"""``evaluate calibration``: fit how to read a model's scores on held-out labelled imagery, and say how well.

On the held-out splits of the shared scene sets (:data:`CALIBRATION_SPLITS`; never trained on):

- **Search bands.** Each class, typed as a query ("a satellite photo of {class}."), scores every image; its
  relevance (:func:`remoteclip.calibration.relevance`) against the null captions is compared with the labels.
  ``strong_z`` is the lowest relevance above which :data:`STRONG_PRECISION` of the images are of the class,
  ``weak_z`` (a floor: the app's weak cut-off is set per library by the null captions) the same for
  :data:`WEAK_PRECISION`. With the held-out images as one library, the report gives the cut-offs the app
  would use there, the precision and recall of each band, and the share of nonsense queries
  (:data:`CHECK_QUERIES`, none of them a null caption) whose best image stays below the weak cut-off.
- **"None of these".** Zero-shot with an image's own class left out of the labels: its best remaining label
  should be rejected. ``label_z`` maximises (rejected when the class is absent) - (rejected when present).
- **Temperature.** Fitted by negative log-likelihood on the pooled sets; expected calibration error (ECE) is
  reported before and after, and fitted on each set alone and measured on the other (does it transfer?).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from pipelines.evaluation import metrics
from pipelines.evaluation.readers import ClassificationSet
from remoteclip.calibration import (
    Calibration,
    cut_off_for_precision,
    cut_offs,
    fit_temperature,
    load_calibration,
    null_best_relevance,
    null_text_vectors,
    relevance,
)
from remoteclip.encode import encode_texts
from remoteclip.factory import LoadedModel
from remoteclip.prompts import PAPER_TEMPLATE
from remoteclip.zeroshot import build_classifier

#: shared datasets whose fixed held-out split the calibration is fitted on
CALIBRATION_SPLITS: tuple[str, ...] = ("rsscn7", "ucm-captions")
#: the share of images of the queried class above ``strong_z`` / ``weak_z``
STRONG_PRECISION = 0.9
WEAK_PRECISION = 0.5
#: queries that match no imagery, to check the bands (kept apart from the null captions they are judged by)
CHECK_QUERIES: tuple[str, ...] = (
    "asdfghjkl qwerty",
    "a purple elephant on the moon",
    "zxcv bnm",
    "my grandmother's recipe for apple pie",
    "the quick brown fox",
    "a portrait of a smiling woman",
    "lorem ipsum dolor sit amet",
    "a bowl of ramen noodles",
    "an electric guitar",
    "a cat sleeping on a sofa",
    "xyzzy",
    "how to file taxes",
)


def _set_scores(model: LoadedModel, data: ClassificationSet, embed: Any) -> dict[str, np.ndarray]:
    """One held-out set: zero-shot cosines and label relevances, query relevances, labels."""
    images = data.zero_shot_images()
    vectors = embed(images.paths, f"calibration: {data.name}")
    names = list(data.classes)
    labels = build_classifier(model, names)
    queries = encode_texts(model, [PAPER_TEMPLATE.format(n) for n in names])
    return {
        "vectors": vectors,
        "labels": images.labels,
        "cosine": vectors @ labels.T,
        "label_z": relevance(vectors, labels, null_text_vectors(model, templated=True)),
        "query_z": relevance(vectors, queries, null_text_vectors(model)),
    }


def _none_of_these(sets: Sequence[dict[str, np.ndarray]]) -> tuple[float, dict[str, float]]:
    """``label_z`` and its rejection rates, from each image's best label with and without its own class."""
    present, absent = [], []
    for scores in sets:
        z, y = scores["label_z"], scores["labels"]
        present.append(z.max(axis=1))
        without = z.copy()
        without[np.arange(len(y)), y] = -np.inf
        absent.append(without.max(axis=1))
    with_class, without_class = np.concatenate(present), np.concatenate(absent)
    candidates = np.unique(np.concatenate([with_class, without_class]))
    gain = [(without_class < c).mean() - (with_class < c).mean() for c in candidates]
    best = float(candidates[int(np.argmax(gain))])
    return best, {
        "none_when_class_absent": float((without_class < best).mean()),
        "none_when_class_present": float((with_class < best).mean()),
    }


def _precision(z: np.ndarray, correct: np.ndarray, cut_off: float) -> float:
    """The share of correct pairs at or above ``cut_off`` (1.0 when there are none)."""
    above = z >= cut_off
    return float(correct[above].mean()) if above.any() else 1.0


def evaluate_calibration(
    model: LoadedModel, sets: Sequence[ClassificationSet], embed: Any
) -> tuple[Calibration, dict[str, Any]]:
    """Fit :class:`Calibration` on the held-out parts of ``sets``; the result says what it was measured on."""
    scores = [_set_scores(model, data, embed) for data in sets]
    z = np.concatenate([s["query_z"].ravel() for s in scores])
    correct = np.concatenate(
        [(s["labels"][:, None] == np.arange(s["query_z"].shape[1])[None, :]).ravel() for s in scores]
    )
    strong_z = cut_off_for_precision(z, correct, STRONG_PRECISION)
    weak_z = cut_off_for_precision(z, correct, WEAK_PRECISION)
    label_z, none_rates = _none_of_these(scores)
    scale = model.logit_scale
    temperature = fit_temperature([(s["cosine"], s["labels"]) for s in scores], scale)
    null = null_text_vectors(model)
    all_vectors = np.concatenate([s["vectors"] for s in scores])
    # the held-out images as one library: where the app's weak and strong matches would start in it
    fitted = Calibration(model.model_id, weak_z=weak_z, strong_z=strong_z)
    library_weak, library_strong = cut_offs(null_best_relevance(null, [all_vectors] * len(null)), fitted)
    check = relevance(all_vectors, encode_texts(model, list(CHECK_QUERIES)), null).max(axis=0)
    report: dict[str, Any] = {
        "fitted_on": [
            f"{data.name} {'held-out split' if data.fixed_split else 'every image'} ({len(s['labels'])} images)"
            for data, s in zip(sets, scores)
        ],
        "strong_z": strong_z,
        "weak_z": weak_z,
        "label_z": label_z,
        "temperature": temperature,
        "library_weak_z": library_weak,
        "library_strong_z": library_strong,
        "strong_precision": _precision(z, correct, library_strong),
        "strong_recall": float(correct[z >= library_strong].sum() / max(correct.sum(), 1)),
        "weak_precision": _precision(z, correct, library_weak),
        "weak_recall": float(correct[z >= library_weak].sum() / max(correct.sum(), 1)),
        "nonsense_queries_rejected": float((check < library_weak).mean()),
        "nonsense_best_z": [round(float(v), 3) for v in check],
        **none_rates,
    }
    for data, s in zip(sets, scores):
        before = Calibration(model.model_id).probabilities(s["cosine"], scale)
        after = Calibration(model.model_id, temperature=temperature).probabilities(s["cosine"], scale)
        alone = fit_temperature([(s["cosine"], s["labels"])], scale)
        report[f"{data.name}_ece_before"] = metrics.expected_calibration_error(before, s["labels"])
        report[f"{data.name}_ece_after"] = metrics.expected_calibration_error(after, s["labels"])
        report[f"{data.name}_nll_before"] = metrics.negative_log_likelihood(before, s["labels"])
        report[f"{data.name}_nll_after"] = metrics.negative_log_likelihood(after, s["labels"])
        report[f"{data.name}_temperature_alone"] = alone
        for other_data, other in zip(sets, scores):
            if other is not s:
                crossed = Calibration(model.model_id, temperature=alone).probabilities(other["cosine"], scale)
                report[f"{other_data.name}_ece_with_{data.name}_temperature"] = (
                    metrics.expected_calibration_error(crossed, other["labels"])
                )
    calibration = replace(
        load_calibration(model),
        weak_z=weak_z,
        strong_z=strong_z,
        label_z=label_z,
        temperature=temperature,
        fitted=True,
        report={k: v for k, v in report.items() if k != "nonsense_best_z"},
    )
    return calibration, report
