"""Objects found in image files: counted once across overlapping chips, georeferenced, kept in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from pipelines.cli.main import main
from pipelines.services.locate import Peak, locate_objects, merge_peaks, object_query, objects_geojson
from remoteclip.locator import ObjectLocator
from tests.synthetic_objects import DISK_NOUN, write_disk_scene
from tiles.georef import pixels_to_lonlat

#: disks of a 640² scene, most in the overlaps of 256 px chips (stride 192: overlaps at 192-256 and 384-448)
CENTRES = [
    (100.0, 100.0),
    (224.0, 110.0),
    (110.0, 224.0),
    (320.0, 320.0),
    (416.0, 320.0),
    (320.0, 416.0),
    (540.0, 540.0),
    (224.0, 540.0),
]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_disk_scene(tmp_path_factory.mktemp("disks") / "disks.tif", CENTRES, 640)


def nearest(found: list[tuple[float, float]], x: float, y: float) -> float:
    return min(np.hypot(fx - x, fy - y) for fx, fy in found)


def test_each_object_is_counted_once_across_overlapping_chips(
    default_model: object, disk_locator: ObjectLocator, scene: Path
) -> None:
    query = object_query(default_model, disk_locator, DISK_NOUN)
    found = locate_objects(default_model, disk_locator, scene, query, span_px=256)
    assert found.total == len(CENTRES)
    positions = [(o.col, o.row) for o in found.objects]
    assert all(nearest(positions, x, y) <= 12 for x, y in CENTRES)


def test_positions_are_georeferenced_by_the_scene_transform(
    default_model: object, disk_locator: ObjectLocator, scene: Path
) -> None:
    query = object_query(default_model, disk_locator, DISK_NOUN)
    found = locate_objects(default_model, disk_locator, scene, query, span_px=256)
    with rasterio.open(scene) as src:
        for obj in found.objects:
            lon, lat = pixels_to_lonlat(np.array([obj.col]), np.array([obj.row]), src.transform, src.crs)
            assert (obj.lon, obj.lat) == (pytest.approx(lon[0], abs=1e-9), pytest.approx(lat[0], abs=1e-9))


def test_an_aoi_keeps_only_the_objects_inside_it(
    default_model: object, disk_locator: ObjectLocator, scene: Path
) -> None:
    with rasterio.open(scene) as src:
        (lon0, lon1), (lat1, lat0) = pixels_to_lonlat(
            np.array([0, 320]), np.array([0, 320]), src.transform, src.crs
        )
    query = object_query(default_model, disk_locator, DISK_NOUN)
    found = locate_objects(
        default_model, disk_locator, scene, query, span_px=256, aoi=box(lon0, lat0, lon1, lat1)
    )
    inside = [(x, y) for x, y in CENTRES if x < 300 and y < 300]
    assert found.total == len(inside)


def test_merging_keeps_the_best_peak_of_each_cluster() -> None:
    peaks = [Peak(10.0, 10.0, 0.5), Peak(13.0, 10.0, 0.9), Peak(40.0, 40.0, 0.6)]
    assert merge_peaks(peaks, radius=8.0) == [Peak(13.0, 10.0, 0.9), Peak(40.0, 40.0, 0.6)]


def test_count_prints_every_object_as_json_and_geojson(
    default_model: object,
    disk_locator: ObjectLocator,
    scene: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    weights = tmp_path / "disk-locator.safetensors"
    disk_locator.save(weights)
    args = ["count", str(scene), "--object", DISK_NOUN, "--locator", str(weights), "--chip-size", "256"]
    main([*args, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "locator" and out["threshold"] == disk_locator.threshold
    assert out["total"] == out["images"][0]["total"] == len(out["images"][0]["objects"]) == len(CENTRES)
    assert all(obj["lon"] is not None and 0 < obj["score"] <= 1 for obj in out["images"][0]["objects"])
    main([*args, "--format", "geojson"])
    collection = json.loads(capsys.readouterr().out)
    assert len(collection["features"]) == len(CENTRES)
    assert {f["geometry"]["type"] for f in collection["features"]} == {"Point"}


def test_pixel_space_objects_have_no_geometry(default_model: object, disk_locator: ObjectLocator) -> None:
    from pipelines.services.locate import FoundObject, ImageObjects

    collection = objects_geojson([ImageObjects(Path("a.png"), [FoundObject(3.0, 4.0, 0.8)])], "disks")
    assert collection["features"][0]["geometry"] is None
    assert collection["features"][0]["properties"]["col"] == 3.0
