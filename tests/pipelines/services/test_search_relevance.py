"""Rated text search with the shipped model on real imagery: real queries match strongly, nonsense matches nothing.

The library holds real UC Merced scenes (../shared/data/ucm-captions, 256 px, one chip each) of five classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.ingest.local import ingest_paths
from pipelines.services.search import library_scale, rate_hits, search_text
from remoteclip.calibration import (
    MIN_BAND_GAP,
    NO_MATCH,
    NULL_CAPTIONS,
    STRONG,
    load_calibration,
    null_text_vectors,
    relevance,
)
from remoteclip.encode import encode_texts
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

pytestmark = pytest.mark.slow

#: UC Merced class -> its index in the alphabetical class list (image id = index * 100 + 1 .. + 100)
CLASSES = {"beach": 3, "forest": 7, "harbor": 10, "storagetanks": 19, "tenniscourt": 20}
PER_CLASS = 8


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, default_model: object) -> ChipIndex:
    images = shared_data / "ucm-captions" / "images"
    paths = []
    for position in CLASSES.values():
        found = [images / f"{i}.jpg" for i in range(position * 100 + 1, position * 100 + 101)]
        paths += [p for p in found if p.is_file()][:PER_CLASS]
    index = ChipIndex(tmp_path_factory.mktemp("rated") / "db")
    summary = ingest_paths(paths, index, default_model, ChipSpec(chip_px=256, levels=(1,)), progress=False)
    assert summary.chips >= len(paths) * 0.9
    return index


@pytest.fixture(scope="module")
def scale(library: ChipIndex, default_model: object) -> object:
    return library_scale(library, default_model, load_calibration(default_model))


def test_the_library_scale_comes_from_the_null_captions(scale: object, default_model: object) -> None:
    calibration = load_calibration(default_model)
    assert len(scale.null_best) == len(NULL_CAPTIONS) and scale.calibrated
    assert scale.weak_z >= calibration.weak_z and scale.weak_z >= np.quantile(scale.null_best, 0.95) - 1e-9
    assert scale.strong_z >= max(calibration.strong_z, scale.weak_z + MIN_BAND_GAP) - 1e-9


@pytest.mark.parametrize("query", ["tennis courts", "storage tanks", "boats in a harbor"])
def test_a_real_query_gets_strong_matches(
    library: ChipIndex, default_model: object, scale: object, query: str
) -> None:
    rated = rate_hits(library, default_model, query, search_text(library, default_model, query, k=5), scale)
    assert rated[0].band == STRONG
    assert [r.relevance for r in rated] == sorted((r.relevance for r in rated), reverse=True)
    vectors = library.vectors([r.hit.chip_id for r in rated])
    expected = relevance(vectors, encode_texts(default_model, [query])[0], null_text_vectors(default_model))
    assert [r.relevance for r in rated] == pytest.approx(expected[:, 0].tolist(), rel=1e-5)


#: queries about nothing a satellite sees
NONSENSE = [
    "asdfghjkl qwerty", "a purple elephant on the moon", "how to file taxes", "a recipe for chocolate cake",
    "the french revolution", "my password is hunter2", "a violin concerto in d minor",
    "quantum chromodynamics lecture notes", "zxcvbnm poiuy", "a cat sleeping on a sofa", "happy birthday to you",
    "the stock market closed higher today",
]


def test_nonsense_matches_nothing(library: ChipIndex, default_model: object, scale: object) -> None:
    """No nonsense query reaches a strong match, and at most one of twelve a weak one: the weak cut-off is the
    95th percentile of the null captions' best relevance, so about one in twenty is its designed false alarm."""
    weak = []
    for query in NONSENSE:
        hits = search_text(library, default_model, query, k=20)
        assert len(hits) == 20  # the index always has k closest chips ...
        bands = {r.band for r in rate_hits(library, default_model, query, hits, scale)}
        assert STRONG not in bands, query  # ... but none of them matches strongly
        weak += [query] if bands != {NO_MATCH} else []
    assert len(weak) <= 1, weak
