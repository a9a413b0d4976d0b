"""The label layer on a real library: areas add up to the covered ground, uncertain below label_z, detectors
as classes, an AOI keeps only the chips in it, images without a georeference have no km²."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from pipelines.ingest.local import ingest_paths
from pipelines.services.detectors import make_detector, save_detector
from pipelines.services.label_layer import (
    DETECTOR,
    TEXT,
    UNCERTAIN,
    geodesic_km2,
    label_library,
    layer_classes,
)
from pipelines.services.refine import fit_library_probe
from remoteclip.calibration import load_calibration
from remoteclip.errors import InputError
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
CLASSES = ["forest", "farmland", "water"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> Path:
    """Two georeferenced scenes and a plain PNG, chips at two levels (so levels overlap)."""
    folder = tmp_path_factory.mktemp("label-layer") / "db"
    scenes = [RASTERS / name for name in ("rgb_4326.tif", "rgbn_3395.tif", "plain.png")]
    ingest_paths(scenes, ChipIndex(folder), tiny_model, ChipSpec(chip_px=16, levels=(1, 2)), progress=False)
    return folder


def covered_km2(index: ChipIndex, aoi: shapely.Geometry | None = None) -> float:
    """The union of the georeferenced chips' footprints (inside ``aoi``), in km², computed apart."""
    chips = [chip for batch, _ in index.scan() for chip in batch if not chip.pixel_space]
    union = shapely.union_all([chip.footprint for chip in chips])
    return geodesic_km2(shapely.orient_polygons(union if aoi is None else union.intersection(aoi)))


def test_areas_add_up_to_the_covered_ground(db: Path, tiny_model: object) -> None:
    index = ChipIndex(db)
    seen: list[tuple[int, int]] = []
    layer = label_library(index, CLASSES, model=tiny_model, batch_size=7, on_progress=lambda d, t: seen.append((d, t)))
    assert len(layer.chips) == index.count_rows() and seen[-1] == (len(layer.chips),) * 2 and len(seen) > 1
    assert [c.name for c in layer.classes] == [*CLASSES, UNCERTAIN]
    assert sum(c.chips for c in layer.classes) == len(layer.chips)
    assert layer.covered_km2 == pytest.approx(covered_km2(index), rel=1e-6)
    assert layer.covered_km2 > 0
    pieces = [c.piece for c in layer.chips if c.piece is not None and not c.piece.is_empty]
    assert sum(p.area for p in pieces) == pytest.approx(shapely.union_all(pieces).area, rel=1e-9)  # no overlap
    # level-1 chips cover their scenes, so the coarser level-2 chips label (almost) no ground of their own
    by_level = {level: sum(c.area_km2 or 0 for c in layer.chips if c.chip.level == level) for level in (1, 2)}
    assert by_level[2] < 0.2 * by_level[1]
    # the tiny model has no fitted calibration: nothing is cut off, and the layer says so
    assert layer.calibrated is False and layer.label_z == float("-inf")
    assert layer.classes[-1].chips == 0


def test_pixel_space_chips_are_labelled_without_km2(db: Path, tiny_model: object) -> None:
    layer = label_library(ChipIndex(db), CLASSES, model=tiny_model)
    plain = [c for c in layer.chips if c.chip.pixel_space]
    assert plain and layer.pixel_space_chips == len(plain)
    assert all(c.piece is None and c.area_km2 is None and c.label in CLASSES for c in plain)
    exported = json.loads(layer.table().encode("geojson", layer.context()))
    no_geometry = [f for f in exported["features"] if f["geometry"] is None]
    assert len(no_geometry) == len(plain) and all(f["properties"]["area_km2"] is None for f in no_geometry)
    placed = [f["properties"]["area_km2"] for f in exported["features"] if f["geometry"] is not None]
    assert sum(placed) == pytest.approx(layer.covered_km2, rel=1e-6)
    assert exported["metadata"]["query"] == "label layer: forest, farmland, water"


def test_uncertain_below_label_z(db: Path, tiny_model: object) -> None:
    index = ChipIndex(db)
    unfitted = load_calibration(tiny_model)
    first = label_library(index, CLASSES, model=tiny_model, calibration=unfitted)
    cut = float(np.median([c.relevance for c in first.chips]))
    fitted = replace(unfitted, label_z=cut, fitted=True)
    layer = label_library(index, CLASSES, model=tiny_model, calibration=fitted)
    assert layer.calibrated and layer.label_z == cut
    for before, after in zip(first.chips, layer.chips, strict=True):
        assert after.relevance == pytest.approx(before.relevance)
        assert after.label == (UNCERTAIN if after.relevance < cut else before.label)
    uncertain = layer.classes[-1]
    assert uncertain.name == UNCERTAIN and 0 < uncertain.chips < len(layer.chips)
    assert layer.covered_km2 == pytest.approx(first.covered_km2, rel=1e-9)


def test_detectors_are_classes(db: Path, tiny_model: object) -> None:
    index = ChipIndex(db)
    ids = [chip.chip_id for batch, _ in index.scan() for chip in batch]
    probe = fit_library_probe(index, tiny_model, "houses", ids[:2], ids[-2:])
    probabilities = dict(zip(ids, probe.probability(index.vectors(ids)).tolist(), strict=True))
    threshold = float(np.quantile(list(probabilities.values()), 0.7))
    save_detector(index, make_detector("houses", "houses", probe, ids[:2], ids[-2:], tiny_model.model_id, threshold))
    layer = label_library(index, CLASSES, ["houses"], model=tiny_model)
    assert [(c.name, c.kind) for c in layer.classes] == [
        *((name, TEXT) for name in CLASSES), ("houses", DETECTOR), (UNCERTAIN, UNCERTAIN)
    ]
    for labelled in layer.chips:
        accepted = probabilities[labelled.chip.chip_id] >= threshold
        assert (labelled.label == "houses") == accepted
        if accepted:
            assert labelled.probability == pytest.approx(probabilities[labelled.chip.chip_id], abs=1e-5)
    # detectors alone: the chips none accepts are uncertain, with the detector's probability below its cut
    alone = label_library(index, [], ["houses"])
    assert alone.calibrated is None and [c.name for c in alone.classes] == ["houses", UNCERTAIN]
    assert {c.label for c in alone.chips if c.probability < threshold} == {UNCERTAIN}
    assert alone.classes[0].chips == layer.classes[3].chips > 0
    with pytest.raises(InputError, match="differ"):
        label_library(index, ["houses", "water"], ["houses"], model=tiny_model)


def test_an_aoi_keeps_only_the_chips_inside(db: Path, tiny_model: object) -> None:
    index = ChipIndex(db)
    scene = next(s for s in index.scenes() if s.scene_path.endswith("rgb_4326.tif"))
    minx, miny, maxx, maxy = scene.extent
    aoi = box(minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    layer = label_library(index, CLASSES, model=tiny_model, aoi=aoi)
    chips = [chip for batch, _ in index.scan() for chip in batch]
    inside = {c.chip_id for c in chips if not c.pixel_space and c.footprint.intersection(aoi).area > 0}
    assert {c.chip.chip_id for c in layer.chips} == inside and 0 < len(inside) < len(chips)
    assert all(c.piece is not None and c.piece.difference(aoi).area < 1e-12 for c in layer.chips)
    assert layer.covered_km2 == pytest.approx(covered_km2(index, aoi), rel=1e-6)
    assert layer.covered_km2 == pytest.approx(geodesic_km2(shapely.orient_polygons(aoi)), rel=1e-6)


def test_classes_from_text() -> None:
    assert layer_classes(" forest, water\nforest ") == ["forest", "water"]
    assert layer_classes("", ["houses"]) == [] and layer_classes("forest", ["houses"]) == ["forest"]
    with pytest.raises(InputError, match="at least two"):
        layer_classes("forest")
    with pytest.raises(InputError, match="type classes"):
        label_library(ChipIndex(Path("/nonexistent")), [], [])
