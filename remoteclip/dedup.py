"""Near-duplicate removal by perceptual hash (``imagehash.phash``, 64 bits) and Hamming distance."""

from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
from PIL import Image

#: images whose 64-bit perceptual hashes differ in at most this many bits count as duplicates
MAX_DISTANCE = 4


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash of an image, as an integer."""
    return int(str(imagehash.phash(image)), 16)


def unique_indices(hashes: Sequence[int], max_distance: int = MAX_DISTANCE) -> list[int]:
    """Indices of the hashes to keep: each one farther than ``max_distance`` bits from every earlier kept one."""
    kept: list[int] = []
    kept_hashes = np.empty(len(hashes), dtype=np.uint64)
    for i, value in enumerate(hashes):
        distances = np.bitwise_count(kept_hashes[: len(kept)] ^ np.uint64(value))
        if not len(kept) or int(distances.min()) > max_distance:
            kept_hashes[len(kept)] = value
            kept.append(i)
    return kept
