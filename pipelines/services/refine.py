"""Refine a text search with marks: a linear probe on the stored embeddings, searched like a text query.

The analyst marks hits right or wrong; :func:`fit_probe` fits a logistic regression on those chips' embeddings
whose weights are pulled towards the query's text embedding (the prior: with no marks the probe *is* the text
query, and one or two marks already move it). Chips of the library drawn at random are weak negatives, so the
probe learns what sets the marked positives apart from the library, not from the few negatives alone. A round
that marks chips right but none wrong takes the previous round's near-misses (:func:`near_misses`: the hits
the analyst looked past) as weak negatives too. The
probe's unit weight vector ranks chips exactly as its probability does, so re-ranking a whole library is one
(ANN) search of the chip index with it (:func:`refine_search`), however large the library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from shapely.geometry.base import BaseGeometry

from remoteclip.encode import encode_texts
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from remoteclip.vectors import l2_normalize
from tiles.index.chip_index import ChipIndex, Hit

#: pull of the weights towards the text prior (an L2 penalty on their distance from it, per unit of loss);
#: chosen by ``evaluate feedback`` on the 4-class set kept out of training (250 per class; so that set is no
#: longer unseen for this choice): mean precision@20 after 3 rounds 0.575 at 1.0, 0.737 at 0.1, 0.775 at 0.01
PRIOR_STRENGTH = 0.01
#: chips drawn from the library as weak negatives, and their weight each beside a marked chip's 1
BACKGROUND_CHIPS = 256
BACKGROUND_WEIGHT = 0.05
#: at most this many near-misses of the previous round (:func:`near_misses`), and their weight each
NEAR_MISS_CHIPS = 20
NEAR_MISS_WEIGHT = 0.25
#: a round with marks but none right steps from the prior away from the wrong marks' mean: the prior counts
#: TEXT_TO_IMAGE times (a text's cosines with images are about a fifth of two images'), the wrong ones WRONG_PULL;
#: chosen by ``evaluate feedback`` on the 4-class set (its 'cloudy' query, whose top 15 hold no cloudy image,
#: went from 0.10 to 0.95 precision@20 after 2 rounds)
TEXT_TO_IMAGE = 5.0
WRONG_PULL = 0.5
#: the logistic slope and bias the text prior starts from: probability 0.5 at a cosine of 0.25
START_SCALE = 20.0
START_BIAS = -5.0


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool
class Probe:
    """A linear detector on chip embeddings: ``P(right) = sigmoid(scale * cos(chip, direction) + bias)``."""

    #: unit vector (D,): search the index with it to rank chips by probability
    direction: np.ndarray
    scale: float
    bias: float

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        """Probability that each chip (rows of L2-normalised ``vectors``) is what the marks say is right."""
        return self.logistic(np.atleast_2d(vectors) @ self.direction)

    def logistic(self, cosine: np.ndarray | float) -> np.ndarray:
        """The probability at a cosine with :attr:`direction`."""
        return 1.0 / (1.0 + np.exp(-(self.scale * np.asarray(cosine) + self.bias)))

    def cosine_at(self, probability: float) -> float:
        """The cosine with :attr:`direction` at which the probability is ``probability`` (a search cut-off)."""
        return float((np.log(probability / (1.0 - probability)) - self.bias) / self.scale)


def fit_probe(
    prior: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    background: np.ndarray | None = None,
    prior_strength: float = PRIOR_STRENGTH,
    near_misses: np.ndarray | None = None,
) -> Probe:
    """Fit a :class:`Probe` from the text ``prior`` (D,) and the marked chips' embeddings (N, D).

    Minimises the weighted logistic loss of positives (1), negatives (0), ``background`` chips (0, weight
    :data:`BACKGROUND_WEIGHT`) and ``near_misses`` (0, weight :data:`NEAR_MISS_WEIGHT`), plus
    ``prior_strength`` times the squared distance of the weights from ``START_SCALE * prior``. With no marks
    the probe points along the prior.
    """
    prior = l2_normalize(np.asarray(prior, dtype=np.float64).reshape(1, -1))[0]
    dim = prior.shape[0]
    none = np.zeros((0, dim))
    right, wrong, weak, near = (
        np.asarray(a, dtype=np.float64).reshape(-1, dim)
        for a in (positives, negatives, none if background is None else background,
                  none if near_misses is None else near_misses)
    )
    if not len(right) and not len(wrong):
        return Probe(direction=prior.astype(np.float32), scale=START_SCALE, bias=START_BIAS)
    if not len(right):
        # nothing marked right: a logistic fit only lowers its bias, so step away from the wrong marks instead
        # (Rocchio): the prior, scaled to image-to-image cosines, less the wrong marks' mean direction
        away = TEXT_TO_IMAGE * prior - WRONG_PULL * l2_normalize(wrong.mean(axis=0, keepdims=True))[0]
        return Probe(direction=l2_normalize(away[None])[0].astype(np.float32), scale=START_SCALE, bias=START_BIAS)
    x = l2_normalize(np.concatenate([right, wrong, weak, near]))
    y = np.concatenate([np.ones(len(right)), np.zeros(len(wrong) + len(weak) + len(near))])
    weight = np.concatenate(
        [
            np.ones(len(right) + len(wrong)),
            np.full(len(weak), BACKGROUND_WEIGHT),
            np.full(len(near), NEAR_MISS_WEIGHT),
        ]
    )
    anchor = START_SCALE * prior

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        # log(1 + e^z) - y z, written to stay finite for large |z|
        value = np.sum(weight * (np.logaddexp(0.0, z) - y * z)) + prior_strength * np.sum((w - anchor) ** 2)
        residual = weight * (p - y)
        grad = np.concatenate([x.T @ residual + 2 * prior_strength * (w - anchor), [residual.sum()]])
        return float(value), grad

    start = np.concatenate([anchor, [START_BIAS]])
    found = minimize(loss, start, jac=True, method="L-BFGS-B")
    w, b = found.x[:-1], float(found.x[-1])
    norm = float(np.linalg.norm(w))
    if norm < 1e-9:
        raise InputError(
            "the marks cancel out: mark at least one chip right that differs from the wrong ones"
        )
    return Probe(direction=(w / norm).astype(np.float32), scale=norm, bias=b)


@dataclass(frozen=True)
class RefinedHit:
    """A hit of a refined search and the probe's probability that it is right."""

    hit: Hit
    probability: float


def near_misses(
    previous: Sequence[str], positive_ids: Sequence[str], negative_ids: Sequence[str]
) -> list[str]:
    """The previous round's near-misses, weak negatives for a round that marks chips right but none wrong:
    its unmarked hits ranked above its lowest-ranked hit marked right (the analyst looked past them to mark
    that one), the best :data:`NEAR_MISS_CHIPS` of them. None once a chip is marked wrong (the analyst says
    what is wrong), nor when no hit of ``previous`` (chip ids, best first) is marked right."""
    if negative_ids:
        return []
    right = set(positive_ids)
    deepest = max((rank for rank, chip in enumerate(previous) if chip in right), default=0)
    return [chip for chip in previous[:deepest] if chip not in right][:NEAR_MISS_CHIPS]


def fit_library_probe(
    index: ChipIndex,
    model: LoadedModel,
    query: str,
    positive_ids: Sequence[str],
    negative_ids: Sequence[str],
    seed: int = 0,
    near_miss_ids: Sequence[str] = (),
) -> Probe:
    """Fit a probe from ``query`` and the marked chips of ``index``, with chips of the library drawn at random
    (seeded) and ``near_miss_ids`` (:func:`near_misses`) as weak negatives."""
    if not positive_ids and not negative_ids:
        raise InputError("mark at least one hit right or wrong before refining")
    index.check_model(model.model_id)
    marked = [*positive_ids, *negative_ids]
    vectors = index.vectors([*marked, *near_miss_ids])
    background = index.sample_vectors(BACKGROUND_CHIPS, seed=seed, exclude=[*marked, *near_miss_ids])
    return fit_probe(
        encode_texts(model, [query])[0],
        vectors[: len(positive_ids)],
        vectors[len(positive_ids) : len(marked)],
        background,
        near_misses=vectors[len(marked) :],
    )


def refine_search(
    index: ChipIndex,
    model: LoadedModel,
    query: str,
    positive_ids: Sequence[str],
    negative_ids: Sequence[str],
    k: int = 20,
    aoi: BaseGeometry | None = None,
    seed: int = 0,
    near_miss_ids: Sequence[str] = (),
) -> tuple[Probe, list[RefinedHit]]:
    """Fit a probe from ``query``, the marked chips and ``near_miss_ids`` (:func:`near_misses` of the previous
    round), and search the library with it: one ANN search; chips marked wrong are left out of the hits."""
    probe = fit_library_probe(
        index, model, query, positive_ids, negative_ids, seed=seed, near_miss_ids=near_miss_ids
    )
    # chips marked wrong are known not to be it: left out, so the k hits are all new or marked right
    wrong = set(negative_ids)
    hits = [hit for hit in index.search(probe.direction, k=k + len(wrong), aoi=aoi) if hit.chip_id not in wrong]
    # a hit's score is its cosine with the probe's direction
    return probe, [RefinedHit(hit, float(probe.logistic(hit.score))) for hit in hits[:k]]
