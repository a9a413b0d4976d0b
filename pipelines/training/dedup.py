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


class NearDuplicateFilter:
    """Remembers hashes and tells whether a new one is within ``max_distance`` bits of any of them."""

    def __init__(self, max_distance: int = MAX_DISTANCE) -> None:
        self.max_distance = max_distance
        self._hashes = np.empty(1024, dtype=np.uint64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def seen(self, value: int) -> bool:
        """Whether ``value`` is a near duplicate of a remembered hash."""
        if not self._count:
            return False
        distances = np.bitwise_count(self._hashes[: self._count] ^ np.uint64(value))
        return int(distances.min()) <= self.max_distance

    def add(self, value: int) -> None:
        """Remember ``value``."""
        if self._count == len(self._hashes):
            self._hashes = np.resize(self._hashes, 2 * len(self._hashes))
        self._hashes[self._count] = value
        self._count += 1

    def keep(self, value: int) -> bool:
        """Remember ``value`` and return True unless it is a near duplicate of a remembered hash."""
        if self.seen(value):
            return False
        self.add(value)
        return True


def unique_indices(hashes: Sequence[int], max_distance: int = MAX_DISTANCE) -> list[int]:
    """Indices of the hashes to keep: each one farther than ``max_distance`` bits from every earlier kept one."""
    kept = NearDuplicateFilter(max_distance)
    return [i for i, value in enumerate(hashes) if kept.keep(value)]
