"""Refine a text search with marks: a linear probe on the stored embeddings, searched like a text query.

The analyst marks hits right or wrong; :func:`fit_probe` moves the query's text embedding (the prior: with no
marks the probe *is* the text query, and one or two marks already move it) towards the chips marked right and
away from those marked wrong (Rocchio's rule, measured better than a logistic regression on the embeddings with
so few marks: :data:`RIGHT_PULL`). A round that marks chips right but none wrong takes the previous round's
near-misses (:func:`near_misses`: the hits the analyst looked past) as weak negatives too. The chips marked
right are kept as exemplars too: a chip's score is its cosine with the direction plus :data:`EXEMPLAR_WEIGHT`
times its best cosine with an exemplar, so a class that lies in several places of the embedding space (the
mean of its marks between them) is found around each mark. Along that score a logistic slope and bias are
fitted on the marks, with chips of the library drawn at random as weak negatives, so its scores are calibrated
probabilities. Re-ranking a whole library is one (ANN) search of the chip index with the direction and one per
exemplar, their hits scored again exactly (:func:`search_probe`), however large the library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import minimize
from shapely.geometry.base import BaseGeometry

from remoteclip.encode import encode_query
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from remoteclip.vectors import l2_normalize
from tiles.index.chip_index import ChipIndex, Hit

#: the probe's direction (Rocchio): the text prior, plus RIGHT_PULL times the mean of the chips marked right, less
#: WRONG_PULL times the mean of those marked wrong and NEAR_MISS_PULL times the mean of the near-misses. Chosen by
#: the simulated analyst of ``evaluate feedback`` on RESISC45-12 ``train/`` (150 images per class; never in the
#: shipped model's training, and not the ``test/`` split it is evaluated on): mean precision@20 after rounds
#: 1 / 2 / 3 0.550 / 0.604 / 0.721 at 1 / 1 (with the fixed step the rounds with nothing marked right then took;
#: 0.571 / 0.712 / 0.779 with WRONG_ONLY_PULL's), against 0.488 / 0.587 / 0.692 for the logistic probe this
#: replaced (prior weight 1.5 or a wrong pull of 0.75 did less well). Used once a chip is marked right; before,
#: see WRONG_ONLY_PULL
RIGHT_PULL = 1.0
WRONG_PULL = 1.0
#: a round with marks but none right steps from the prior away from the wrong marks' mean, put on the prior's
#: scale first (:func:`text_to_image`: text and images lie apart, so a text's cosines with images are a fraction
#: of two images'), times WRONG_ONLY_PULL. On RESISC45-12 train/ precision@20 after rounds 1-3 0.571 / 0.712 /
#: 0.779 at 0.8, the best mean of the three (0.571 / 0.717 / 0.742 at 1, 0.567 / 0.679 / 0.771 at 0.7, 0.550 /
#: 0.671 / 0.788 at 0.5, 0.546 / 0.688 / 0.733 at 1.5); a fixed step (the prior 5 times, the wrong marks 0.5,
#: chosen earlier on the 4-class set's 'cloudy' query) gave 0.550 / 0.604 / 0.721, and the plain Rocchio pull
#: 0.588 / 0.692 / 0.792 but loses the wanted chips where text and images lie far apart
WRONG_ONLY_PULL = 0.8
#: a chip's score adds EXEMPLAR_WEIGHT times its best cosine with a chip marked right (the latest MAX_EXEMPLARS of
#: them) to its cosine with the direction. Chosen on RESISC45-12 train/ (precision@20 after rounds 1 / 2 / 3:
#: 0.571 / 0.712 / 0.779 without exemplars; 0.579 / 0.721 / 0.800 at 0.5, 0.575 / 0.721 / 0.808 at 1,
#: 0.554 / 0.729 / 0.758 at 2); a diffusion over the library's nearest-neighbour graph did no better (0.571 /
#: 0.712 / 0.771 at best)
EXEMPLAR_WEIGHT = 1.0
MAX_EXEMPLARS = 16
#: at most this many near-misses of the previous round (:func:`near_misses`), and their pull
NEAR_MISS_CHIPS = 20
NEAR_MISS_PULL = 0.25
#: chips drawn from the library as weak negatives of the calibration, and their weight each beside a mark's 1
BACKGROUND_CHIPS = 256
BACKGROUND_WEIGHT = 0.05
#: the near-misses' weight each in the calibration
NEAR_MISS_WEIGHT = 0.25
#: the logistic slope and bias the text prior starts from (probability 0.5 at a cosine of 0.25), and the pull of
#: the calibration towards them (an L2 penalty per unit of loss)
START_SCALE = 20.0
START_BIAS = -5.0
CALIBRATION_STRENGTH = 0.01


def _no_exemplars() -> np.ndarray:
    return np.zeros((0, 0), dtype=np.float32)


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to one bool
class Probe:
    """A detector on chip embeddings: ``P(right) = sigmoid(scale * score(chip) + bias)``, where a chip's score
    is its cosine with :attr:`direction` plus :attr:`exemplar_weight` times its best cosine with an exemplar."""

    #: unit vector (D,): searched like a text query
    direction: np.ndarray
    scale: float
    bias: float
    #: unit vectors (P, D) of chips marked right, each searched too; none: the score is the direction's cosine
    exemplars: np.ndarray = field(default_factory=_no_exemplars)
    exemplar_weight: float = 0.0

    @property
    def queries(self) -> list[np.ndarray]:
        """The vectors whose nearest chips hold the best-scored ones: the direction and each exemplar."""
        return [self.direction, *self.exemplars] if self.exemplar_weight else [self.direction]

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """The score ``(N,)`` of each chip (rows of L2-normalised ``vectors``)."""
        vectors = np.atleast_2d(vectors)
        score = vectors @ self.direction
        if self.exemplar_weight and len(self.exemplars):
            score = score + self.exemplar_weight * (vectors @ self.exemplars.T).max(axis=1)
        return score

    def probability(self, vectors: np.ndarray) -> np.ndarray:
        """Probability that each chip (rows of L2-normalised ``vectors``) is what the marks say is right."""
        return self.logistic(self.score(vectors))

    def logistic(self, score: np.ndarray | float) -> np.ndarray:
        """The probability at a score."""
        return 1.0 / (1.0 + np.exp(-(self.scale * np.asarray(score) + self.bias)))

    def score_at(self, probability: float) -> float:
        """The score at which the probability is ``probability``."""
        return float((np.log(probability / (1.0 - probability)) - self.bias) / self.scale)


def fit_probe(
    prior: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    background: np.ndarray | None = None,
    near_misses: np.ndarray | None = None,
) -> Probe:
    """A :class:`Probe` from the text ``prior`` (D,) and the marked chips' embeddings (N, D).

    Its direction is Rocchio's: the prior, plus :data:`RIGHT_PULL` times the mean of ``positives``, less
    :data:`WRONG_PULL` times the mean of ``negatives`` and :data:`NEAR_MISS_PULL` times the mean of
    ``near_misses``; with nothing marked right, a step away from the wrong marks on the prior's scale
    (:data:`WRONG_ONLY_PULL`). The latest :data:`MAX_EXEMPLARS` positives are its exemplars. Its slope and bias
    are then fitted on the score, a weighted logistic regression of the marks (1 right, 0 wrong; a positive
    scored without itself as an exemplar), the ``background`` chips (0, weight :data:`BACKGROUND_WEIGHT`) and
    the near-misses (0, weight :data:`NEAR_MISS_WEIGHT`), pulled towards the starting slope and bias, so its
    probabilities are calibrated on what the analyst said. With no marks the probe points along the prior.
    """
    prior = l2_normalize(np.asarray(prior, dtype=np.float64).reshape(1, -1))[0]
    dim = prior.shape[0]
    none = np.zeros((0, dim))
    right, wrong, weak, near = (
        l2_normalize(np.asarray(a, dtype=np.float64).reshape(-1, dim)) if len(a) else none
        for a in (positives, negatives, none if background is None else background,
                  none if near_misses is None else near_misses)
    )
    if not len(right) and not len(wrong):
        return Probe(direction=prior.astype(np.float32), scale=START_SCALE, bias=START_BIAS)
    if len(right):
        direction = prior.copy()
        for chips, pull in ((right, RIGHT_PULL), (wrong, -WRONG_PULL), (near, -NEAR_MISS_PULL)):
            if len(chips):
                direction += pull * chips.mean(axis=0)
    else:
        direction = prior - WRONG_ONLY_PULL * text_to_image(prior, wrong) * wrong.mean(axis=0)
    norm = float(np.linalg.norm(direction))
    if norm < 1e-6:
        raise InputError(
            "the marks cancel out: mark at least one chip right that differs from the wrong ones"
        )
    direction /= norm
    exemplars = right[-MAX_EXEMPLARS:]
    unscaled = Probe(direction=direction, scale=1.0, bias=0.0, exemplars=exemplars,
                     exemplar_weight=EXEMPLAR_WEIGHT if len(exemplars) else 0.0)
    scale, bias = _calibrate(
        np.concatenate([_scores_without_self(unscaled, right), unscaled.score(np.concatenate([wrong, weak, near]))]),
        np.concatenate([np.ones(len(right)), np.zeros(len(wrong) + len(weak) + len(near))]),
        np.concatenate([np.ones(len(right) + len(wrong)), np.full(len(weak), BACKGROUND_WEIGHT),
                        np.full(len(near), NEAR_MISS_WEIGHT)]),
    )
    return replace(unscaled, direction=direction.astype(np.float32), scale=scale, bias=bias,
                   exemplars=exemplars.astype(np.float32))


def _scores_without_self(probe: Probe, right: np.ndarray) -> np.ndarray:
    """The scores of the chips marked right, each with itself left out of the exemplars (scored with itself, a
    mark would add the whole exemplar weight and make the calibration promise too much)."""
    cosine = right @ probe.direction
    if not probe.exemplar_weight or len(right) < 2:
        return cosine
    among = right @ probe.exemplars.T  # the exemplars are the last len(exemplars) rows of ``right``
    first = len(right) - len(probe.exemplars)
    for row in range(first, len(right)):
        among[row, row - first] = -np.inf
    return cosine + probe.exemplar_weight * among.max(axis=1)


def text_to_image(prior: np.ndarray, chips: np.ndarray) -> float:
    """How the text ``prior`` relates to the unit rows of ``chips`` against how they relate to each other: their
    mean cosine with the prior over their mean cosine with one another (1 for a single chip), at least 0."""
    to_text = float(np.mean(chips @ prior))
    n = len(chips)
    to_each_other = float((np.sum(chips @ chips.T) - n) / (n * (n - 1))) if n > 1 else 1.0
    return max(to_text, 0.0) / max(to_each_other, 1e-3)


def _calibrate(cosine: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """The logistic slope (positive) and bias of ``y`` on ``cosine``, weighted, pulled towards the start."""
    start = np.array([START_SCALE, START_BIAS])

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * cosine + params[1]
        # log(1 + e^z) - y z, written to stay finite for large |z|
        value = np.sum(weight * (np.logaddexp(0.0, z) - y * z)) + CALIBRATION_STRENGTH * np.sum((params - start) ** 2)
        residual = weight * (1.0 / (1.0 + np.exp(-z)) - y)
        grad = np.array([residual @ cosine, residual.sum()]) + 2 * CALIBRATION_STRENGTH * (params - start)
        return float(value), grad

    found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(1e-3, None), (None, None)])
    return float(found.x[0]), float(found.x[1])


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
        encode_query(model, query),
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
    round), and search the library with it (:func:`search_probe`); chips marked wrong are left out of the hits."""
    probe = fit_library_probe(
        index, model, query, positive_ids, negative_ids, seed=seed, near_miss_ids=near_miss_ids
    )
    # chips marked wrong are known not to be it: left out, so the k hits are all new or marked right
    wrong = set(negative_ids)
    hits = [hit for hit in search_probe(index, probe, k=k + len(wrong), aoi=aoi) if hit.chip_id not in wrong]
    return probe, [RefinedHit(hit, float(probe.logistic(hit.score))) for hit in hits[:k]]


def search_probe(
    index: ChipIndex,
    probe: Probe,
    k: int,
    aoi: BaseGeometry | None = None,
    where: str | None = None,
    min_score: float | None = None,
) -> list[Hit]:
    """The ``k`` chips of the highest probe score (in ``aoi``, among the rows ``where`` keeps), best first,
    each hit's score its probe score: one ANN search of ``k`` with each of :attr:`Probe.queries`, their hits
    scored again exactly. With ``min_score``, every chip scoring at least that instead: the searches double
    their ``k`` together until no chip outside all their hits can reach it (such a chip's score is under the
    direction's last cosine plus the exemplar weight times the exemplars' best last cosine), or until one
    returned every chip the filters keep."""
    # counted once for all the rounds: a search of that many chips has them all
    chips = index.count_rows(where) if min_score is not None else 0
    found: dict[str, Hit] = {}
    depth = k
    while True:
        last: list[float] = []
        every_chip = False
        for query in probe.queries:
            hits = index.search(query, k=depth, aoi=aoi, where=where)
            found.update((hit.chip_id, hit) for hit in hits)
            every_chip = every_chip or len(hits) < depth  # fewer than asked: every chip (in the AOI) came
            last.append(hits[-1].score if hits else -1.0)
        if min_score is None or every_chip or depth >= chips or _unseen_bound(probe, last) < min_score:
            break
        depth *= 2
    rescored = _rescore(index, probe, found.values())
    return rescored[:k] if min_score is None else [hit for hit in rescored if hit.score >= min_score]


def _unseen_bound(probe: Probe, last: list[float]) -> float:
    """The most a chip outside every search's hits can score, from each search's last cosine (direction first)."""
    return last[0] + (probe.exemplar_weight * max(last[1:]) if len(last) > 1 else 0.0)


def _rescore(index: ChipIndex, probe: Probe, hits: Iterable[Hit]) -> list[Hit]:
    """``hits`` with their probe scores as scores, best first (one lookup of their stored vectors)."""
    hits = list(hits)
    if len(probe.queries) == 1:  # the search's cosine is the score
        return sorted(hits, key=lambda hit: -hit.score)
    scores = probe.score(index.vectors([hit.chip_id for hit in hits])) if hits else np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    return [replace(hits[i], score=float(scores[i])) for i in order]
