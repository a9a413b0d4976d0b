"""Counting by captions (RemoteCount): rank "a satellite photo of {n} {objects}." for n = 0..10 per chip.

Over a large image or an AOI the per-chip estimates of non-overlapping chips are summed, each weighted by the
fraction of the chip inside the AOI. Everything takes arrays except :func:`build_count_captions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from remoteclip.encode import encode_texts
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from remoteclip.prompts import MAX_COUNT, count_captions
from remoteclip.zeroshot import class_probabilities


@dataclass(frozen=True)
class CountEstimate:
    """The best count for one image and the probability of every count 0..MAX_COUNT."""

    count: int
    probabilities: tuple[float, ...]

    @property
    def scores_1_to_10(self) -> np.ndarray:
        """Probabilities of 1..MAX_COUNT objects: what RemoteCount's top-k accuracy ranks."""
        return np.asarray(self.probabilities[1:], dtype=np.float32)

    @property
    def expected(self) -> float:
        """Probability-weighted mean count (smoother than the best count when summing many chips)."""
        return float(np.dot(np.arange(len(self.probabilities)), self.probabilities))


def build_count_captions(model: LoadedModel, noun: str) -> np.ndarray:
    """Embeddings ``(MAX_COUNT + 1, D)`` of the counting captions for 0..MAX_COUNT ``noun``s."""
    if not noun.strip():
        raise InputError("the object to count is empty; pass e.g. --object airplane")
    return encode_texts(model, count_captions(noun))


def estimate_counts(
    image_embeddings: np.ndarray, caption_embeddings: np.ndarray, logit_scale: float
) -> list[CountEstimate]:
    """Rank the counting captions for each image: the best n and the distribution over 0..MAX_COUNT."""
    if len(caption_embeddings) != MAX_COUNT + 1:
        raise InputError(
            f"expected {MAX_COUNT + 1} counting captions (0..{MAX_COUNT}), got {len(caption_embeddings)}"
        )
    probabilities = class_probabilities(image_embeddings, caption_embeddings, logit_scale)
    return [CountEstimate(int(row.argmax()), tuple(float(p) for p in row)) for row in probabilities]


def aggregate_counts(chip_counts: Sequence[float], inside_fractions: Sequence[float] | None = None) -> float:
    """Total over non-overlapping chips: ``sum(count * fraction of the chip inside the AOI)``."""
    counts = np.asarray(chip_counts, dtype=np.float64)
    fractions = (
        np.ones_like(counts) if inside_fractions is None else np.asarray(inside_fractions, dtype=np.float64)
    )
    if counts.shape != fractions.shape:
        raise InputError(f"{counts.size} chip counts but {fractions.size} AOI fractions; give one per chip")
    if np.any((fractions < 0) | (fractions > 1)):
        raise InputError(
            f"AOI fractions must lie in [0, 1], got {fractions.min():.3g}..{fractions.max():.3g}"
        )
    return float(np.dot(counts, fractions))
