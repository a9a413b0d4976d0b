"""Saved detectors on a real library: round trip, apply = every chip at or above the threshold, AOI, models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import box

from pipelines.ingest.local import ingest_paths
from pipelines.services import detectors
from pipelines.services.detectors import (
    Detector,
    apply_detector,
    delete_detector,
    detections_table,
    get_detector,
    list_detectors,
    make_detector,
    save_detector,
)
from pipelines.services.refine import fit_library_probe
from remoteclip.errors import InputError
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex
from tiles.index.errors import ChipIndexError

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> Path:
    folder = tmp_path_factory.mktemp("detectors") / "db"
    scenes = [RASTERS / name for name in ("rgb_4326.tif", "rgbn_3395.tif", "plain.png")]
    ingest_paths(scenes, ChipIndex(folder), tiny_model, ChipSpec(chip_px=16, levels=(1, 2)), progress=False)
    return folder


def all_ids(index: ChipIndex) -> list[str]:
    return index.table.search().select(["chip_id"]).limit(None).to_arrow()["chip_id"].to_pylist()


@pytest.fixture(scope="module")
def detector(db: Path, tiny_model: object) -> Detector:
    index = ChipIndex(db)
    ids = all_ids(index)
    probe = fit_library_probe(index, tiny_model, "houses", ids[:2], ids[-2:])
    return make_detector("houses", "houses", probe, ids[:2], ids[-2:], tiny_model.model_id, threshold=0.5)


def brute_force(index: ChipIndex, detector: Detector) -> dict[str, float]:
    """Every chip's probability, computed from its stored vector."""
    ids = all_ids(index)
    return dict(zip(ids, detector.probe.probability(index.vectors(ids)).tolist(), strict=True))


def cut_between(probabilities: list[float], share: float) -> float:
    """A threshold halfway between two neighbouring probabilities, about ``share`` of the chips above it
    (chips with the same embedding tie: the first gap from there on)."""
    ranked = sorted(probabilities, reverse=True)
    position = next(
        i for i in range(int(len(ranked) * share), len(ranked)) if ranked[i - 1] - ranked[i] > 1e-4
    )
    return (ranked[position - 1] + ranked[position]) / 2


def test_saved_detectors_round_trip(db: Path, detector: Detector) -> None:
    index = ChipIndex(db)
    save_detector(index, detector)
    got = get_detector(index, "houses")
    assert isinstance(got, Detector)
    np.testing.assert_array_equal(got.direction, detector.direction)
    np.testing.assert_array_equal(got.exemplars, detector.exemplars)  # the chips marked right
    assert got.exemplars.shape == (2, len(detector.direction)) and got.exemplar_weight == detector.exemplar_weight > 0
    assert (got.scale, got.bias) == (detector.scale, detector.bias)
    assert (got.positive_ids, got.negative_ids) == (detector.positive_ids, detector.negative_ids)
    assert (got.threshold, got.model_id, got.created_at) == (0.5, detector.model_id, detector.created_at)
    vectors = index.vectors(all_ids(index)[:5])
    np.testing.assert_allclose(got.probe.probability(vectors), detector.probe.probability(vectors))
    [summary] = [s for s in list_detectors(index) if s.name == "houses"]
    assert (summary.positives, summary.negatives, summary.model_id) == (2, 2, detector.model_id)
    delete_detector(index, "houses")
    assert "houses" not in [s.name for s in list_detectors(index)]
    with pytest.raises(ChipIndexError, match="no detector 'houses'"):
        get_detector(index, "houses")


def test_apply_finds_exactly_the_chips_at_or_above_the_threshold(
    db: Path, detector: Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = ChipIndex(db)
    probabilities = brute_force(index, detector)
    cut = cut_between(list(probabilities.values()), 1 / 3)
    expected = {chip for chip, p in probabilities.items() if p >= cut}
    found = apply_detector(index, detector, threshold=cut)
    assert {d.hit.chip_id for d in found} == expected
    assert [d.probability for d in found] == pytest.approx(
        [probabilities[d.hit.chip_id] for d in found], abs=1e-5
    )
    assert [d.probability for d in found] == sorted((d.probability for d in found), reverse=True)
    monkeypatch.setattr(detectors, "FIRST_K", 3)  # k grows 3, 6, 12, ... until past the threshold
    assert [d.hit.chip_id for d in apply_detector(index, detector, threshold=cut)] == [
        d.hit.chip_id for d in found
    ]
    above_all = (max(probabilities.values()) + 1) / 2
    assert apply_detector(index, detector, threshold=above_all) == []
    with pytest.raises(InputError, match="between 0 and 1"):
        apply_detector(index, detector, threshold=1.0)


def test_apply_inside_an_aoi_keeps_only_chips_touching_it(db: Path, detector: Detector) -> None:
    index = ChipIndex(db)
    probabilities = brute_force(index, detector)
    cut = cut_between(list(probabilities.values()), 1 / 2)
    scene = next(s for s in index.scenes() if s.scene_path.endswith("rgb_4326.tif"))
    minx, miny, maxx, maxy = scene.extent
    aoi = box(minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    chips = index.get(list(probabilities))
    expected = {
        c.chip_id
        for c in chips
        if probabilities[c.chip_id] >= cut and not c.pixel_space and aoi.intersects(c.footprint)
    }
    everywhere = {chip for chip, p in probabilities.items() if p >= cut}
    assert expected and expected < everywhere
    found = apply_detector(index, detector, aoi=aoi, threshold=cut)
    assert {d.hit.chip_id for d in found} == expected


def test_a_detector_of_another_model_is_refused(db: Path, detector: Detector) -> None:
    index = ChipIndex(db)
    other = make_detector("old", "houses", detector.probe, [], [], "another-model@1")
    with pytest.raises(ChipIndexError, match=r"made with model 'another-model@1'.*vectors of model"):
        apply_detector(index, other)
    with pytest.raises(ChipIndexError, match="made with model 'another-model@1'"):
        save_detector(index, other)
    with pytest.raises(InputError, match="between 0 and 1"):
        make_detector("x", "houses", detector.probe, [], [], detector.model_id, threshold=0.0)
    with pytest.raises(InputError, match="name"):
        make_detector("  ", "houses", detector.probe, [], [], detector.model_id)


def test_detections_export_with_their_probability(db: Path, detector: Detector) -> None:
    found = apply_detector(ChipIndex(db), detector, threshold=0.01)
    collection = json.loads(detections_table(found).encode("geojson"))
    assert len(collection["features"]) == len(found) > 0
    first = collection["features"][0]["properties"]
    assert (first["rank"], first["probability"]) == (1, round(found[0].probability, 6))
    assert first["chip_id"] == found[0].hit.chip_id


def test_apply_over_the_scenes_ingested_since_the_detector_was_saved(
    tmp_path: Path, tiny_model: object, detector: Detector
) -> None:
    index = ChipIndex(tmp_path / "db")
    spec = ChipSpec(chip_px=16, levels=(1,))
    ingest_paths([RASTERS / "rgb_4326.tif"], index, tiny_model, spec, progress=False)
    saved = make_detector("later", detector.query, detector.probe, (), (), tiny_model.model_id, threshold=0.01)
    save_detector(index, saved)
    assert detectors.scenes_since_saved(index, saved) == []
    ingest_paths([RASTERS / "rgbn_3395.tif"], index, tiny_model, spec, progress=False)
    (new_scene,) = detectors.scenes_since_saved(index, saved)
    assert [s.scene_path for s in index.scenes() if s.scene_id == new_scene] == [str(RASTERS / "rgbn_3395.tif")]
    found = apply_detector(index, saved, scene_ids=[new_scene])
    assert found and {d.hit.scene_id for d in found} == {new_scene}
    everywhere = apply_detector(index, saved)
    assert {d.hit.chip_id for d in found} == {d.hit.chip_id for d in everywhere if d.hit.scene_id == new_scene}
    assert apply_detector(index, saved, scene_ids=[]) == []
