"""Classify an image (an upload stored by :mod:`pipelines.services.uploads`): label the scene and each chip
by zero-shot.

Pixel-space images (plain JPEG/PNG) get chip footprints in (col, -row) coordinates, the convention of
:class:`pipelines.services.overview.Overview`, so a map in a flat CRS shows them upright.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from shapely.affinity import scale
from shapely.geometry.base import BaseGeometry

from pipelines.services.export import feature, feature_collection
from remoteclip.calibration import Calibration, load_calibration, null_text_vectors, relevance
from remoteclip.encode import encode_images
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from remoteclip.zeroshot import build_classifier
from tiles.chips import iter_chips
from tiles.grid import ChipSpec
from tiles.reader import open_scene

DEFAULT_LABELS: tuple[str, ...] = (
    "airport",
    "harbor",
    "residential area",
    "industrial area",
    "forest",
    "farmland",
    "river",
    "parking lot",
    "grassland",
    "bare land",
)

#: the label of a chip that matches none of the labels offered
NONE_OF_THESE = "none of these"

#: chips of the per-chip label layer
CLASSIFY_SPEC = ChipSpec(chip_px=256, overlap_px=0, levels=(1,))

def parse_labels(text: str, minimum: int = 2) -> list[str]:
    """Labels from comma- or newline-separated text, trimmed and de-duplicated (at least ``minimum``)."""
    labels = list(dict.fromkeys(part.strip() for part in re.split(r"[,\n]", text) if part.strip()))
    if len(labels) < minimum:
        least = {2: "two", 3: "three"}.get(minimum, str(minimum))
        raise InputError(
            f"{text.strip()!r} names fewer than {least} labels; give at least {least} different ones to "
            "choose between, separated by commas, e.g. 'forest, river, airport'"
        )
    return labels


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool
class ZeroShotLabels:
    """Each image's best label by zero-shot, and whether it fits the image better than unrelated text."""

    #: ``(N, C)`` label probabilities at the calibrated temperature
    probabilities: np.ndarray
    #: ``(N,)`` index of each image's most probable label
    best: np.ndarray
    #: ``(N,)`` relevance of that label against the null captions (prompt-averaged, as the labels are)
    relevance: np.ndarray
    #: ``(N,)`` whether that relevance reaches the calibration's ``label_z`` (else "none of these")
    matched: np.ndarray


def zero_shot_labels(
    embeddings: np.ndarray, weights: np.ndarray, model: LoadedModel, calibration: Calibration
) -> ZeroShotLabels:
    """Label image ``embeddings`` ``(N, D)`` with the classifier ``weights`` ``(C, D)`` of ``model``."""
    probabilities = calibration.probabilities(embeddings @ weights.T, model.logit_scale)
    best = probabilities.argmax(axis=1)
    best_z = relevance(embeddings, weights, null_text_vectors(model, templated=True))[np.arange(len(best)), best]
    return ZeroShotLabels(probabilities, best, best_z, best_z >= calibration.label_z)


@dataclass(frozen=True)
class LabelScore:
    """One label and its probability."""

    label: str
    probability: float


def mean_probabilities(labels: list[str], chip_probs: np.ndarray) -> list[LabelScore]:
    """Scene-level probabilities: the per-chip distributions averaged, most likely first."""
    mean = chip_probs.mean(axis=0)
    order = np.argsort(-mean, kind="stable")
    return [LabelScore(labels[i], float(mean[i])) for i in order]


@dataclass(frozen=True)
class SceneClassification:
    """Zero-shot labels of a whole image and of each of its chips."""

    path: Path
    labels: list[str]
    #: scene-level probabilities, most likely first
    scene: list[LabelScore]
    #: one Feature per chip: footprint (EPSG:4326 or pixel (col, -row) space), ``label`` and ``probability``
    chips: dict[str, Any]
    pixel_space: bool
    #: whether the probabilities and "none of these" come from a calibration fitted on held-out data
    calibrated: bool = False

    @property
    def best(self) -> LabelScore:
        """The scene's most likely label."""
        return self.scene[0]


def classify_scene(
    path: Path,
    model: LoadedModel,
    labels: Sequence[str],
    spec: ChipSpec = CLASSIFY_SPEC,
    batch_size: int = 32,
    calibration: Calibration | None = None,
) -> SceneClassification:
    """Label each chip of ``path`` by zero-shot over ``labels``, or "none of these"; the scene by the mean.

    Probabilities are at the model's calibrated temperature (:mod:`remoteclip.calibration`). A chip whose best
    label is no more relevant than unrelated text (relevance below ``calibration.label_z``) is labelled
    :data:`NONE_OF_THESE` and counts wholly for it in the scene's distribution.
    """
    labels = list(labels)
    calibration = calibration or load_calibration(model)
    weights = build_classifier(model, labels)
    footprints: list[BaseGeometry] = []
    vectors: list[np.ndarray] = []
    with open_scene(path) as scene:
        pixel_space = not scene.georeferenced
        chips = iter_chips(scene, spec)
        while batch := list(islice(chips, batch_size)):
            footprints += [
                scale(c.georef.footprint, 1.0, -1.0, origin=(0, 0)) if pixel_space else c.georef.footprint
                for c in batch
            ]
            vectors.append(encode_images(model, [c.pixels for c in batch], batch_size))
    if not footprints:
        raise InputError(f"{path.name} has no chip with enough valid pixels to classify")
    found = zero_shot_labels(np.concatenate(vectors), weights, model, calibration)
    probabilities, best, best_z, matched = found.probabilities, found.best, found.relevance, found.matched
    # "none of these" is a last column: a chip matching no label counts wholly for it
    chip_probs = np.zeros((len(best), len(labels) + 1))
    chip_probs[matched, :-1] = probabilities[matched]
    chip_probs[~matched, -1] = 1.0
    features = [
        feature(
            footprint,
            label=labels[j] if ok else NONE_OF_THESE,
            probability=round(float(row[j]), 3),
            relevance=round(float(z), 2),
        )
        for footprint, row, j, ok, z in zip(footprints, probabilities, best, matched, best_z)
    ]
    return SceneClassification(
        path=path,
        labels=[*labels, NONE_OF_THESE],
        scene=mean_probabilities([*labels, NONE_OF_THESE], chip_probs),
        chips=feature_collection(features),
        pixel_space=pixel_space,
        calibrated=calibration.fitted,
    )
