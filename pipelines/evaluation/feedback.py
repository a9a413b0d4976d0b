"""``evaluate feedback``: a simulated analyst refines each class's search with marks, round after round.

On a labelled set of images (class folders), for each class: round 0 is the text query ("a satellite photo of
{class}.") ranking every image; each later round the analyst marks the first :data:`MARKS_PER_ROUND` unmarked
images of the current top :data:`TOP` right or wrong (by their label), the probe of
:mod:`pipelines.services.refine` is fitted from the query and every mark so far (with images drawn at random as
weak negatives), and ranks the images again, those marked wrong left out (as
:func:`pipelines.services.refine.refine_search` leaves them out). Reported: precision@:data:`TOP` after each round, per class and on
average.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.evaluation.readers import ClassificationSet
from pipelines.services.refine import BACKGROUND_CHIPS, fit_probe
from remoteclip.encode import encode_texts
from remoteclip.factory import LoadedModel
from remoteclip.prompts import PAPER_TEMPLATE

TOP = 20
MARKS_PER_ROUND = 5
ROUNDS = 3


def simulate_class(
    vectors: np.ndarray,
    labels: np.ndarray,
    target: int,
    prior: np.ndarray,
    rounds: int = ROUNDS,
    seed: int = 0,
) -> list[float]:
    """Precision@TOP for ``target`` after rounds 0..``rounds`` of marking (see module docstring)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(-(vectors @ prior), kind="stable")
    marked: dict[int, bool] = {}
    precision = [float(np.mean(labels[order[:TOP]] == target))]
    for _ in range(rounds):
        unmarked = [int(i) for i in order[:TOP] if int(i) not in marked][:MARKS_PER_ROUND]
        marked.update({i: bool(labels[i] == target) for i in unmarked})
        others = np.setdiff1d(np.arange(len(vectors)), list(marked))
        background = vectors[rng.choice(others, size=min(BACKGROUND_CHIPS, len(others)), replace=False)]
        probe = fit_probe(
            prior,
            vectors[[i for i, right in marked.items() if right]],
            vectors[[i for i, right in marked.items() if not right]],
            background,
        )
        scores = probe.score(vectors)
        scores[[i for i, right in marked.items() if not right]] = -np.inf  # as refine_search leaves them out
        order = np.argsort(-scores, kind="stable")
        precision.append(float(np.mean(labels[order[:TOP]] == target)))
    return precision


def evaluate_feedback(
    model: LoadedModel, data: ClassificationSet, embed: Any, rounds: int = ROUNDS
) -> dict[str, Any]:
    """The simulated analyst on every class of ``data`` (all its images form the library)."""
    images = data.zero_shot_images()
    vectors = embed(images.paths, "feedback")
    priors = encode_texts(model, [PAPER_TEMPLATE.format(c) for c in data.classes])
    per_class = {
        name: simulate_class(vectors, images.labels, i, priors[i], rounds)
        for i, name in enumerate(data.classes)
    }
    mean = np.mean(np.array(list(per_class.values())), axis=0)
    return {
        "task": "feedback",
        "model": model.model_id,
        "dataset": data.name,
        "n": len(images.paths),
        "metrics": {f"precision_at_{TOP}_round_{r}": float(v) for r, v in enumerate(mean)}
        | {"marks_per_round": MARKS_PER_ROUND},
        "predictions": [{"class": name, f"precision_at_{TOP}": values} for name, values in per_class.items()],
    }
