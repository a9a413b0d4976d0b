"""Objects the shipped locator finds in an AOI of a real chip library (explorer-small, GeoTIFFs on disk)."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import datetime
from pathlib import Path

import pytest
import rasterio
import shapely
from shapely.geometry import Point, box
from shapely.ops import unary_union

from pipelines.services.aoi_objects import (
    OBJECT_COLUMNS,
    AoiObject,
    AoiObjects,
    locate_in_aoi,
    merge_across_scenes,
)
from pipelines.services.export import ExportContext
from remoteclip.errors import InputError, ModelNotFoundError
from remoteclip.factory import LoadedModel
from remoteclip.locator import ObjectLocator, load_locator
from tests.app_data import build_library, write_scene
from tiles.index.chip_index import ChipIndex

pytestmark = pytest.mark.slow

#: low enough that every local maximum of the score map is an object, whatever the locator thinks of the
#: random texture: the tests check filtering, placement and exports, not the locator's accuracy
FLOOR = 0.0


@pytest.fixture(scope="module")
def model(default_model: LoadedModel) -> LoadedModel:
    return default_model


@pytest.fixture(scope="module")
def locator(model: LoadedModel) -> ObjectLocator:
    """The locator shipped beside explorer-small's weights."""
    return load_locator(model)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, model: LoadedModel) -> ChipIndex:
    """Two neighbouring 512 px scenes (10 m, EPSG:32618), 16 level-1 chips and 4 level-2 chips each."""
    root = tmp_path_factory.mktemp("aoi_objects")
    scenes = [write_scene(root / "a.tif", 0), write_scene(root / "b.tif", 1, origin=(305120.0, 2800000.0))]
    return build_library(root / "db", model, scenes)


def library_extent(index: ChipIndex) -> tuple[float, float, float, float]:
    return unary_union([box(*s.extent) for s in index.scenes()]).bounds


@pytest.fixture(scope="module")
def aoi(library: ChipIndex) -> object:
    """The middle of the library: parts of both scenes, with ground of both outside it."""
    minx, miny, maxx, maxy = library_extent(library)
    w, h = maxx - minx, maxy - miny
    return box(minx + 0.3 * w, miny + 0.2 * h, maxx - 0.3 * w, maxy - 0.25 * h)


@pytest.fixture(scope="module")
def found(library: ChipIndex, model: LoadedModel, locator: ObjectLocator, aoi: object) -> AoiObjects:
    return locate_in_aoi(library, model, locator, "airplanes", aoi, min_score=FLOOR)


def test_objects_are_inside_the_aoi_and_from_the_scenes_it_meets(
    found: AoiObjects, library: ChipIndex, model: LoadedModel, locator: ObjectLocator, aoi: object
) -> None:
    assert found.objects, "every local maximum is an object at a floor of 0"
    assert all(aoi.covers(Point(o.lon, o.lat)) for o in found.objects)
    assert {Path(o.scene_path).name for o in found.objects} == {"a.tif", "b.tif"}
    assert sorted(Path(p).name for p in found.scenes) == ["a.tif", "b.tif"] and not found.failed
    assert [o.score for o in found.objects] == sorted((o.score for o in found.objects), reverse=True)

    whole = locate_in_aoi(
        library, model, locator, "airplanes", box(*library_extent(library)), min_score=FLOOR
    )
    assert len(whole.objects) > len(found.objects)
    # away from the AOI's edge (beyond the merge radius, 240 m here) the objects are the same as in the
    # whole library's
    core = aoi.buffer(-0.004)
    inner = {(o.scene_id, o.col, o.row) for o in whole.objects if core.covers(Point(o.lon, o.lat))}
    assert inner and inner <= {(o.scene_id, o.col, o.row) for o in found.objects}

    far = locate_in_aoi(library, model, locator, "airplanes", box(10, 10, 11, 11))
    assert far.objects == () and far.chips == () and far.scenes == () and far.total(far.min_score) == 0


def test_threshold_filters_the_objects_found_once(found: AoiObjects) -> None:
    scores = sorted(o.score for o in found.objects)
    middle = scores[len(scores) // 2]
    kept = found.at(middle)
    assert kept and all(o.score >= middle for o in kept)
    assert found.total(middle) == sum(s >= middle for s in scores) == len(kept)
    assert found.total(FLOOR) == len(found.objects) >= found.total(middle) >= found.total(1.0)
    assert found.threshold > 0 and found.min_score == FLOOR


def test_threshold_below_the_floor_is_refused(
    library: ChipIndex, model: LoadedModel, locator: ObjectLocator, aoi: object
) -> None:
    result = locate_in_aoi(library, model, locator, "ships", aoi, min_score=0.2)
    assert all(o.score >= 0.2 for o in result.objects)
    with pytest.raises(InputError, match="below 0.2"):
        result.at(0.1)
    with pytest.raises(InputError, match="empty"):
        locate_in_aoi(library, model, locator, "  ", aoi)


def test_objects_export_as_points_with_their_place(found: AoiObjects, model: LoadedModel) -> None:
    threshold = sorted(o.score for o in found.objects)[len(found.objects) // 3]
    objects = found.at(threshold)
    table = found.table(threshold)
    assert table.name == "objects" and table.columns == OBJECT_COLUMNS and table.geometry_type == "Point"
    collection = table.geojson()
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == len(objects)
    for item, o in zip(collection["features"], objects, strict=True):
        assert Point(item["geometry"]["coordinates"]).equals(Point(o.lon, o.lat))
        assert item["properties"]["object"] == "airplanes"
        assert item["properties"]["score"] == round(o.score, 4)
        assert item["properties"]["scene"] == Path(o.scene_path).name
        assert (item["properties"]["col"], item["properties"]["row"]) == (round(o.col, 1), round(o.row, 1))
        assert datetime.fromisoformat(item["properties"]["located_at"]).tzinfo is not None

    context = ExportContext.now(found.object_name, found.model_id, threshold=threshold, aoi=found.aoi)
    rows = list(csv.DictReader(io.StringIO(table.csv(context))))
    assert len(rows) == len(objects)
    for row, o in zip(rows, objects, strict=True):
        assert float(row["lon"]) == pytest.approx(o.lon, abs=1e-7)
        assert float(row["lat"]) == pytest.approx(o.lat, abs=1e-7)
        assert row["query"] == "airplanes" and row["model_id"] == model.model_id
        assert float(row["threshold"]) == pytest.approx(threshold, abs=1e-4)
        assert shapely.from_wkt(row["aoi_wkt"]).equals_exact(found.aoi, tolerance=1e-7)
    assert found.rows(threshold)[0] == {
        "scene": Path(objects[0].scene_path).name,
        "score": round(objects[0].score, 3),
        "lon": objects[0].lon,
        "lat": objects[0].lat,
        "col": round(objects[0].col),
        "row": round(objects[0].row),
    }


@pytest.mark.parametrize("level", [1, 2])
def test_per_chip_counts_add_up_to_the_objects_in_chips(found: AoiObjects, aoi: object, level: int) -> None:
    threshold = sorted(o.score for o in found.objects)[len(found.objects) // 4]
    counts = found.chip_counts(threshold, level)
    assert counts and all(c.chip.level == level and c.chip.footprint.intersects(aoi) for c in counts)
    in_chips = [
        o for o in found.at(threshold) if any(c.chip.footprint.covers(Point(o.lon, o.lat)) for c in counts)
    ]
    assert (
        sum(c.count for c in counts) == len(in_chips) == found.total(threshold)
    )  # the chips tile the scenes
    for c in counts:  # on a library without overlap, each chip holds the objects its footprint covers
        inside = sum(c.chip.footprint.contains(Point(o.lon, o.lat)) for o in in_chips)
        assert inside <= c.count <= sum(c.chip.footprint.covers(Point(o.lon, o.lat)) for o in in_chips)
    collection = found.chips_table(threshold, level).geojson()
    assert [f["properties"]["count"] for f in collection["features"]] == [c.count for c in counts]
    assert [f["id"] for f in collection["features"]] == [c.chip.chip_id for c in counts]
    assert found.levels == [1, 2]


def test_the_same_ground_in_two_scenes_is_counted_once(
    tmp_path: Path, model: LoadedModel, locator: ObjectLocator
) -> None:
    first = write_scene(tmp_path / "first.tif", 0)
    again = tmp_path / "again.tif"
    shutil.copy(first, again)
    with rasterio.open(again, "r+") as dst:
        dst.update_tags(note="the same pixels, another file")  # another scene id, the same ground
    index = build_library(tmp_path / "db", model, [first, again])
    aoi = box(*library_extent(index))
    both = locate_in_aoi(index, model, locator, "airplanes", aoi, min_score=FLOOR)
    assert len(index.scenes()) == 2 and len(both.scenes) == 2

    alone = build_library(tmp_path / "db-alone", model, [first])
    one = locate_in_aoi(alone, model, locator, "airplanes", aoi, min_score=FLOOR)
    assert one.objects and len(both.objects) == len(one.objects)
    counts = both.chip_counts(FLOOR)
    assert sum(c.count for c in counts) == len(both.objects)
    assert {c.chip.scene_id for c in counts if c.count} == {o.scene_id for o in both.objects}


def test_a_scene_that_cannot_be_read_is_listed_and_the_others_searched(
    tmp_path: Path, model: LoadedModel, locator: ObjectLocator
) -> None:
    scenes = [
        write_scene(tmp_path / "a.tif", 0),
        write_scene(tmp_path / "b.tif", 1, origin=(305120.0, 2800000.0)),
    ]
    index = build_library(tmp_path / "db", model, scenes)
    scenes[1].unlink()
    result = locate_in_aoi(index, model, locator, "airplanes", box(*library_extent(index)), min_score=FLOOR)
    assert [Path(p).name for p, _ in result.failed] == ["b.tif"] and "no such file" in result.failed[0][1]
    assert result.objects and {Path(o.scene_path).name for o in result.objects} == {"a.tif"}


def test_merge_across_scenes_keeps_the_better_of_one_object_seen_twice() -> None:
    def obj(scene: str, lon: float, score: float) -> AoiObject:
        return AoiObject(scene, f"/data/{scene}.tif", 0.0, 0.0, score, lon, 0.0)

    metre = 1 / 111_320
    objects = [
        obj("a", 0.0, 0.6),
        obj("b", 3 * metre, 0.9),  # 3 m from a's: the same object, better seen in b
        obj("a", 10 * metre, 0.5),  # 7 m from b's: another object
        obj("b", 100 * metre, 0.4),
        obj("a", 103 * metre, 0.3),  # the same as b's at 100 m
    ]
    merged = merge_across_scenes(objects, {"a": 4.0, "b": 4.0})
    assert [(o.scene_id, o.score) for o in merged] == [("b", 0.9), ("a", 0.5), ("b", 0.4)]
    assert len(merge_across_scenes(objects, {"a": 8.0, "b": 2.0})) == 2  # the larger of two radii applies
    assert len(merge_across_scenes(objects, {"a": 0.0, "b": 0.0})) == 5
    assert len(merge_across_scenes(objects[::2], {"a": 50.0})) == 3  # one scene: never merged here


def test_a_model_without_a_locator_says_so(tiny_model: LoadedModel) -> None:
    with pytest.raises(ModelNotFoundError):  # the page then shows RemoteCount's estimate
        load_locator(tiny_model)
