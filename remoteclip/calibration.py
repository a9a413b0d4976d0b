"""Scores a person can read: relevance against a null model of unrelated captions, calibrated label probabilities.

A cosine score means nothing alone: a nonsense query's best chip scores as high under one model as a real query's
under another. So every score is set against **null captions** (:data:`NULL_CAPTIONS`, text about nothing that
imagery from above shows): for each chip, how far the query's score stands above the null captions' scores on
*that same chip*, in the null scores' standard deviations (:func:`relevance`). A z of 5 means the query describes
the chip far better than unrelated text does; a nonsense query lands among the null captions (z of 2 to 3.5 at the
top of a library). :class:`Calibration` holds the two cut-offs between "no match", "weak" and "strong", and the
temperature that makes zero-shot probabilities honest; ``remoteclip-explorer evaluate calibration`` fits them on
held-out labelled imagery and writes them beside the model's weights (``<model>-calibration.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from remoteclip.encode import encode_texts
from remoteclip.errors import WeightsError
from remoteclip.factory import LoadedModel
from remoteclip.model_configs import package_path
from remoteclip.vectors import l2_normalize
from remoteclip.zeroshot import build_classifier, softmax

#: where the shipped calibrations live (``<model name>-calibration.json``)
WEIGHTS_DIR = "pkg://remoteclip/weights"

#: text about things imagery from above never shows: keyboard mash, objects, people, documents, art
NULL_CAPTIONS: tuple[str, ...] = (
    "qwertyuiop",
    "asdf jkl",
    "hjkl yuio",
    "mnbvcxz",
    "a b c d e f g",
    "12345 67890",
    "blah blah blah",
    "foo bar baz",
    "ipsum lorem",
    "nothing at all",
    "a cup of coffee",
    "a birthday cake",
    "a plate of spaghetti",
    "a glass of red wine",
    "a slice of pizza",
    "a banana",
    "a teddy bear",
    "a pair of shoes",
    "a wristwatch",
    "a smartphone on a table",
    "a close-up portrait of a man",
    "a baby laughing",
    "a crowd at a concert",
    "a woman playing the violin",
    "a dog catching a frisbee",
    "a goldfish in a bowl",
    "a parrot on a branch",
    "a horse in a stable",
    "a page of handwritten notes",
    "a spreadsheet of numbers",
    "a poem about love",
    "the history of ancient Rome",
    "an invoice for services",
    "a recipe for soup",
    "the rules of chess",
    "a love letter",
    "a painting of sunflowers",
    "a cartoon character",
    "an abstract pattern",
    "a blurry photo",
    "a red square",
    "the colour blue",
    "a keyboard",
    "a light bulb",
    "a microscope slide",
    "an x-ray of a hand",
    "a violin",
    "a piano keyboard",
)

#: a library's weak cut-off is this quantile of the null captions' best relevance in it
NULL_QUANTILE = 0.95
#: the least gap between the weak and the strong cut-off
MIN_BAND_GAP = 0.5

#: relevance bands, best first
STRONG, WEAK, NO_MATCH = "strong", "weak", "no match"


@dataclass(frozen=True)
class Calibration:
    """How to read one model's scores: relevance cut-offs and the zero-shot temperature.

    ``weak_z`` / ``strong_z``: relevance (:func:`relevance`) at which a chip is a weak / strong match for a
    search query; a chip below ``weak_z`` matches no better than unrelated text. ``label_z``: the relevance a
    chip's best zero-shot label needs (labels are prompt-averaged, so their scale differs), else it is "none of
    these". ``temperature`` divides the model's logit scale for zero-shot probabilities. ``fitted`` says whether
    these came from held-out data; the defaults of a model without one cut nothing off and leave the
    temperature at 1 (its own zero-shot softmax).
    """

    model_id: str
    # unfitted, nothing is cut off by the model: the library's null captions alone set the weak cut-off
    weak_z: float = float("-inf")
    strong_z: float = float("-inf")
    label_z: float = float("-inf")
    temperature: float = 1.0
    fitted: bool = False
    #: what the fit was measured on and how well it did (from ``evaluate calibration``)
    report: dict[str, Any] = field(default_factory=dict)

    def band(self, z: float) -> str:
        """``strong``, ``weak`` or ``no match`` for a relevance ``z``."""
        if z >= self.strong_z:
            return STRONG
        return WEAK if z >= self.weak_z else NO_MATCH

    def probabilities(self, cosine: np.ndarray, logit_scale: float) -> np.ndarray:
        """Zero-shot probabilities of cosine scores ``(N, C)`` at the calibrated temperature."""
        return softmax((logit_scale / self.temperature) * cosine)


def calibration_path(model: LoadedModel) -> Path:
    """Where the shipped calibration of ``model`` lives (named after the model, without its weights hash)."""
    return package_path(WEIGHTS_DIR) / f"{model.model_id.split('@', 1)[0]}-calibration.json"


def load_calibration(model: LoadedModel, path: Path | None = None) -> Calibration:
    """The calibration fitted for ``model`` (the shipped one unless ``path``), else the unfitted defaults.

    A file fitted for other weights is ignored (defaults, ``fitted=False``): its cut-offs would not mean the
    same for this model.
    """
    path = path or calibration_path(model)
    if not path.is_file():
        return Calibration(model_id=model.model_id)
    try:
        card = json.loads(path.read_text())
        calibration = Calibration(**card)
    except (json.JSONDecodeError, TypeError) as exc:
        raise WeightsError(f"{path} is not a calibration this version can read: {exc}") from exc
    if calibration.model_id != model.model_id:
        return Calibration(model_id=model.model_id)
    return calibration


def save_calibration(calibration: Calibration, path: Path) -> Path:
    """Write ``calibration`` as JSON (what :func:`load_calibration` reads)."""
    path.write_text(json.dumps(asdict(calibration), indent=2) + "\n")
    return path


#: (model id, templated) -> the null captions' vectors, encoded once per process
_NULL_VECTORS: dict[tuple[str, bool], np.ndarray] = {}


def null_text_vectors(model: LoadedModel, templated: bool = False) -> np.ndarray:
    """The null captions encoded ``(M, D)``: as raw queries, or ``templated`` as zero-shot labels are."""
    key = (model.model_id, templated)
    if key not in _NULL_VECTORS:
        _NULL_VECTORS[key] = (
            build_classifier(model, NULL_CAPTIONS)
            if templated
            else l2_normalize(encode_texts(model, NULL_CAPTIONS))
        )
    return _NULL_VECTORS[key]


def relevance(image_vectors: np.ndarray, text_vectors: np.ndarray, null_vectors: np.ndarray) -> np.ndarray:
    """Relevance z of each text for each image ``(N, T)``: its cosine above the null captions' on that image,
    in their standard deviations (images and texts L2-normalised)."""
    images = l2_normalize(np.atleast_2d(image_vectors))
    null = images @ null_vectors.T
    scores = images @ l2_normalize(np.atleast_2d(text_vectors)).T
    return (scores - null.mean(axis=1, keepdims=True)) / np.maximum(null.std(axis=1, keepdims=True), 1e-6)


def null_best_relevance(null_vectors: np.ndarray, images_per_caption: Sequence[np.ndarray]) -> list[float]:
    """Each null caption's best relevance over its images ``(N_i, D)``, judged by the other null captions:
    how high text about nothing scores in a library at its best."""
    best = []
    for i, images in enumerate(images_per_caption):
        others = np.delete(null_vectors, i, axis=0)
        best.append(float(relevance(images, null_vectors[i], others).max()))
    return best


def cut_offs(null_best: Sequence[float], calibration: Calibration) -> tuple[float, float]:
    """(weak, strong) relevance cut-offs in a library whose null captions reach ``null_best``.

    Weak: the :data:`NULL_QUANTILE` of ``null_best`` (a query must match some chip better than nearly every
    unrelated caption matches its best one), never below the calibrated floor; strong: the calibrated cut-off,
    at least :data:`MIN_BAND_GAP` above weak.
    """
    weak = (
        max(calibration.weak_z, float(np.quantile(null_best, NULL_QUANTILE)))
        if null_best
        else calibration.weak_z
    )
    return weak, max(calibration.strong_z, weak + MIN_BAND_GAP)


def fit_temperature(sets: Sequence[tuple[np.ndarray, np.ndarray]], logit_scale: float) -> float:
    """The temperature minimising the negative log-likelihood of zero-shot softmax over ``sets`` of
    (cosine ``(N, C)``, true label ``(N,)``) pairs (each set may have its own classes)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        total = 0.0
        for cosine, labels in sets:
            logits = (logit_scale / np.exp(log_t)) * cosine
            logits = logits - logits.max(axis=1, keepdims=True)
            total += float(
                np.sum(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(labels)), labels])
            )
        return total

    found = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


def cut_off_for_precision(z: np.ndarray, correct: np.ndarray, precision: float) -> float:
    """The smallest relevance above which at least ``precision`` of the images are correct (inf if none)."""
    order = np.argsort(-z, kind="stable")
    hits = np.cumsum(correct[order]) / np.arange(1, len(z) + 1)
    good = np.flatnonzero(hits >= precision)
    # the deepest rank that still keeps the precision, so every cut-off above it keeps it too
    return float(z[order][good.max()]) if good.size else float("inf")
