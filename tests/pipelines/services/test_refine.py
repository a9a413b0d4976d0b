"""The refine probe: marks move a text query onto a planted cluster; one index search re-ranks the library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli
from pipelines.evaluation.feedback import simulate_class
from pipelines.ingest.local import ingest_paths
from pipelines.services.refine import NEAR_MISS_CHIPS, fit_probe, near_misses, refine_search
from remoteclip.errors import InputError
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def planted(seed: int = 0, dim: int = 32, n: int = 400, cluster: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random unit vectors with a tight cluster (label 1) away from the text prior's direction."""
    rng = np.random.default_rng(seed)
    vectors = unit(rng.normal(size=(n, dim)))
    centre = unit(rng.normal(size=dim))
    vectors[:cluster] = unit(centre + 0.15 * rng.normal(size=(cluster, dim)))
    labels = np.zeros(n, dtype=int)
    labels[:cluster] = 1
    prior = unit(0.4 * centre + unit(rng.normal(size=dim)))  # the text points only roughly at the cluster
    return vectors, labels, prior


def test_without_marks_the_probe_is_the_text_query() -> None:
    _, _, prior = planted()
    probe = fit_probe(prior, np.zeros((0, 32)), np.zeros((0, 32)))
    np.testing.assert_allclose(probe.direction, prior, atol=1e-6)
    assert probe.logistic(probe.score_at(0.8)) == pytest.approx(0.8)


def test_marks_rank_the_planted_cluster_first() -> None:
    vectors, labels, prior = planted()
    before = np.argsort(-(vectors @ prior))[:30]
    probe = fit_probe(prior, vectors[:3], vectors[labels == 0][:5], vectors[100:356])
    after = np.argsort(-(vectors @ probe.direction))[:30]
    assert labels[after].mean() > max(0.9, labels[before].mean())
    p = probe.probability(vectors)
    assert p[:30].mean() > 0.5 > p[30:].mean()  # right chips above one half, the rest below


def test_exemplars_find_a_class_in_two_places_that_its_mean_misses() -> None:
    """A class in two clusters with unrelated chips between them, where the marks' mean points: the direction
    alone ranks the chips between first, the exemplars find both clusters."""
    rng = np.random.default_rng(1)
    dim, per = 32, 30
    a = unit(rng.normal(size=dim))
    other = rng.normal(size=dim)
    b = -0.3 * a + np.sqrt(1 - 0.3**2) * unit(other - (other @ a) * a)  # cos(a, b) = -0.3
    vectors = unit(rng.normal(size=(400, dim)))
    for start, centre in ((0, a), (per, b), (2 * per, unit(a + b))):  # the third: between the two
        vectors[start : start + per] = unit(centre + 0.05 * rng.normal(size=(per, dim)))
    labels = np.zeros(len(vectors), dtype=int)
    labels[: 2 * per] = 1
    prior = unit(a + b + 0.5 * unit(rng.normal(size=dim)))
    probe = fit_probe(prior, vectors[[0, 1, per, per + 1]], vectors[[2 * per, 2 * per + 1]], vectors[100:356])
    by_direction = labels[np.argsort(-(vectors @ probe.direction))[:40]].mean()
    by_score = labels[np.argsort(-probe.score(vectors))[:40]].mean()
    assert by_direction < 0.3 and by_score > 0.8
    p = probe.probability(vectors)
    assert p[: 2 * per].mean() > 0.5 > p[2 * per :].mean()


def test_a_simulated_analyst_climbs() -> None:
    vectors, labels, prior = planted(seed=1)
    precision = simulate_class(vectors, labels, 1, prior)
    assert len(precision) == 4 and precision[-1] >= 0.9 > precision[0]


def test_near_misses_are_the_unmarked_hits_above_the_deepest_right_mark() -> None:
    ranked = ["a", "b", "c", "d", "e", "f"]
    assert near_misses(ranked, ["b", "e"], []) == ["a", "c", "d"]
    assert near_misses(ranked, ["a"], []) == []  # the analyst looked past nothing
    assert near_misses(ranked, ["e"], ["f"]) == []  # a wrong mark says what is wrong
    assert near_misses(ranked, ["zz"], []) == []  # no right mark among the previous hits
    many = [str(i) for i in range(100)]
    assert near_misses(many, ["99"], []) == many[:NEAR_MISS_CHIPS]


def test_near_misses_steer_the_probe_off_a_distractor_cluster() -> None:
    """The text points at a distractor cluster more than at the wanted one; two right marks and no wrong ones:
    the hits the analyst looked past, taken as weak negatives, turn the probe away from the distractor and rank
    the wanted cluster first, at least as well as the right marks alone."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        vectors = unit(rng.normal(size=(400, 32)))
        wanted, distractor = unit(rng.normal(size=32)), unit(rng.normal(size=32))
        vectors[:30] = unit(wanted + 0.15 * rng.normal(size=(30, 32)))
        vectors[30:60] = unit(distractor + 0.15 * rng.normal(size=(30, 32)))
        labels = np.arange(400) < 30
        prior = unit(0.7 * wanted + 0.8 * distractor)
        previous = [str(i) for i in np.argsort(-(vectors @ prior))[:20]]
        right = [chip for chip in previous if labels[int(chip)]][:2]
        near = near_misses(previous, right, [])
        assert near and not labels[[int(c) for c in near]].any()  # all of them distractors here
        background = vectors[rng.choice(np.arange(60, 400), 256, replace=False)]
        marked = vectors[[int(c) for c in right]]
        plain = fit_probe(prior, marked, np.zeros((0, 32)), background)
        mined = fit_probe(prior, marked, np.zeros((0, 32)), background, near_misses=vectors[[int(c) for c in near]])
        precision = [float(labels[np.argsort(-(vectors @ p.direction))[:30]].mean()) for p in (mined, plain)]
        assert precision[0] >= max(0.8, precision[1])
        assert mined.direction @ distractor < plain.direction @ distractor - 0.05


def test_wrong_marks_alone_step_away_from_a_distractor() -> None:
    """Images span half the dimensions and the text lies mostly off them (the modality gap: text-image cosines
    of 0.1, as in real embeddings); the text points a little more at a distractor cluster than at the wanted one.
    Marking its top 10 wrong, with nothing right yet, ranks the wanted cluster first."""
    for seed in range(3):
        rng = np.random.default_rng(seed)

        def images(n: int, rng: np.random.Generator = rng) -> np.ndarray:
            return np.pad(rng.normal(size=(n, 16)), ((0, 0), (0, 16)))

        vectors = unit(images(400))
        wanted, distractor = unit(images(1)[0]), unit(images(1)[0])
        vectors[:30] = unit(wanted + 0.15 * images(30))
        vectors[30:60] = unit(distractor + 0.15 * images(30))
        labels = np.arange(400) < 30
        gap = np.zeros(32)
        gap[16:] = unit(rng.normal(size=16))
        prior = unit(0.12 * wanted + 0.15 * distractor + gap)
        top = np.argsort(-(vectors @ prior))[:10]
        probe = fit_probe(prior, np.zeros((0, 32)), vectors[top], vectors[rng.choice(400, 256, replace=False)])
        before = labels[np.argsort(-(vectors @ prior))[:30]].mean()
        after = labels[np.argsort(-(vectors @ probe.direction))[:30]].mean()
        assert after >= 0.9 > before + 0.5


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> Path:
    folder = tmp_path_factory.mktemp("refine") / "db"
    scenes = [RASTERS / name for name in ("rgb_4326.tif", "rgbn_3395.tif", "plain.png")]
    ingest_paths(scenes, ChipIndex(folder), tiny_model, ChipSpec(chip_px=16, levels=(1, 2)), progress=False)
    return folder


def test_refine_search_ranks_the_library_by_the_probe_score(db: Path, tiny_model: object) -> None:
    index = ChipIndex(db)
    rows = index.table.search().select(["chip_id"]).limit(None).to_arrow()["chip_id"].to_pylist()
    probe, refined = refine_search(index, tiny_model, "houses", rows[:2], rows[-2:], k=6)
    assert len(probe.exemplars) == 2  # searched with its direction and each chip marked right
    scores = probe.score(index.vectors(rows))
    ranked = [rows[i] for i in np.argsort(-scores, kind="stable")]
    assert [r.hit.chip_id for r in refined] == [chip for chip in ranked if chip not in rows[-2:]][:6]
    assert [r.hit.score for r in refined] == pytest.approx(sorted(scores[[rows.index(r.hit.chip_id) for r in refined]],
                                                                  reverse=True), abs=1e-5)
    # the chips marked wrong are left out however high the probe puts them
    _, wrong_first = refine_search(index, tiny_model, "houses", rows[:1], ranked[:2], k=6)
    assert not {r.hit.chip_id for r in wrong_first} & set(ranked[:2])
    probabilities = [r.probability for r in refined]
    assert probabilities == sorted(probabilities, reverse=True) and all(0 < p < 1 for p in probabilities)
    assert probabilities == pytest.approx(probe.probability(index.vectors([r.hit.chip_id for r in refined])).tolist())
    with pytest.raises(InputError, match="mark at least one"):
        refine_search(index, tiny_model, "houses", [], [])
    # near-misses of the previous round move the probe when nothing is marked wrong
    plain, _ = refine_search(index, tiny_model, "houses", rows[5:6], [], k=6)
    mined, _ = refine_search(index, tiny_model, "houses", rows[5:6], [], k=6, near_miss_ids=near_misses(rows, rows[5:6], []))
    assert float(plain.direction @ mined.direction) < 1 - 1e-4
    assert len(index.sample_vectors(5, exclude=rows[:3])) == 5


def test_cli_search_takes_marks(db: Path, tiny_checkpoint: Path) -> None:
    index = ChipIndex(db)
    right = index.table.search().select(["chip_id"]).limit(1).to_arrow()["chip_id"][0].as_py()
    args = ["search", "houses", "--db", str(db), "--model", str(tiny_checkpoint), "-k", "3", "--positive", right]
    result = CliRunner().invoke(cli, [*args, "--format", "geojson"])
    assert result.exit_code == 0, result.output
    collection = json.loads(result.stdout)
    assert "refined: 1 right, 0 wrong" in collection["metadata"]["query"]
    assert all(0 < f["properties"]["score"] < 1 for f in collection["features"])
    refused = CliRunner().invoke(cli, ["search", "--like", right, "--db", str(db), "--negative", right])
    assert refused.exit_code != 0 and "refine a text QUERY" in refused.output
