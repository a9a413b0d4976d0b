"""The demo library (built once, then reused; bundled scene without shared data), the scenes' true footprints
on the Library map, and classifying an upload."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import shapely
from PIL import Image
from shapely.geometry import shape

from pipelines.ingest.local import ingest_paths
from pipelines.services.classify import CLASSIFY_SPEC, NONE_OF_THESE, classify_scene
from pipelines.services.demo_library import (
    BUNDLED_SCENE,
    DEMO_SCENES,
    SHARED_DATA,
    demo_paths,
    ensure_demo_library,
)
from pipelines.services.results import MERGE_TOLERANCE_DEG, scenes_geojson
from pipelines.services.settings import AppSettings
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel, load_model
from tests.app_data import build_library, write_scene
from tests.conftest import REPO_ROOT
from tests.index_rows import sorted_rows
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex


def test_the_shared_data_looked_for_is_the_folder_beside_the_project() -> None:
    assert SHARED_DATA == REPO_ROOT.resolve().parent / "shared" / "data"


def test_demo_paths_prefer_shared_data(tmp_path: Path, shared_data: Path) -> None:
    assert demo_paths(tmp_path) == [BUNDLED_SCENE]
    found = demo_paths(shared_data)
    assert BUNDLED_SCENE not in found and len(found) == len(DEMO_SCENES)
    assert all(path.exists() for path in found)


def test_demo_library_is_built_once_then_reused(tmp_path: Path, tiny_checkpoint: Path) -> None:
    settings = AppSettings(db_dir=tmp_path / "db", model_name=str(tiny_checkpoint))
    first = ensure_demo_library(settings, shared_data=tmp_path / "absent", progress=False)
    assert first.built and first.scenes == 1 and first.chips > 0 and not first.failed
    scenes = ChipIndex(settings.db_dir).scenes()
    assert [Path(s.scene_path).name for s in scenes] == [BUNDLED_SCENE.name]
    assert scenes[0].crs == "EPSG:32618" and not scenes[0].pixel_space
    again = ensure_demo_library(settings, shared_data=tmp_path / "absent", progress=False)
    assert not again.built and again.chips == first.chips and "reusing" in again.describe()


def _retrained_copy(checkpoint: Path, folder: Path) -> Path:
    """The tiny model folder with slightly different weights (another model id), as after a retrain."""
    import shutil

    import torch

    shutil.copytree(checkpoint, folder)
    weights = folder / "open_clip_pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    state["logit_scale"] = state["logit_scale"] + 0.5
    torch.save(state, weights)
    return folder


def test_demo_library_of_another_model_is_rebuilt_but_a_users_library_is_kept(
    tmp_path: Path, tiny_checkpoint: Path, tiny_model: LoadedModel
) -> None:
    absent = tmp_path / "absent"
    retrained = load_model(_retrained_copy(tiny_checkpoint, tmp_path / "retrained"))
    assert retrained.model_id != tiny_model.model_id

    demo = AppSettings(db_dir=tmp_path / "demo", model_name=str(tiny_checkpoint))
    first = ensure_demo_library(demo, shared_data=absent, progress=False)
    upgraded = AppSettings(db_dir=demo.db_dir, model_name=str(tmp_path / "retrained"))
    rebuilt = ensure_demo_library(upgraded, shared_data=absent, progress=False)
    assert rebuilt.built and rebuilt.chips == first.chips
    assert ChipIndex(demo.db_dir).model_id == retrained.model_id

    own = AppSettings(db_dir=tmp_path / "own", model_name=str(tiny_checkpoint))
    ensure_demo_library(own, shared_data=absent, progress=False)
    index = ChipIndex(own.db_dir)
    ingest_paths([write_scene(tmp_path / "own.tif")], index, tiny_model, CLASSIFY_SPEC, progress=False)
    kept = ensure_demo_library(
        AppSettings(db_dir=own.db_dir, model_name=upgraded.model_name), shared_data=absent, progress=False
    )
    assert not kept.built and kept.scenes == 2 and index.model_id == tiny_model.model_id


def test_scene_footprints_on_the_map_are_the_scenes_not_their_boxes(
    tmp_path: Path, tiny_model: LoadedModel
) -> None:
    # far off its UTM zone's central meridian, the scene is a rotated quadrilateral in EPSG:4326
    scene = write_scene(tmp_path / "rotated.tif", origin=(220000.0, 2800000.0))
    index = build_library(tmp_path / "db", tiny_model, [scene], ChipSpec(chip_px=128, levels=(1, 2)))
    scenes = index.scenes()
    boxes, footprints = scenes_geojson(scenes), scenes_geojson(scenes, index)
    [outline] = [shape(f["geometry"]) for f in footprints["features"]]
    [bbox] = [shape(f["geometry"]) for f in boxes["features"]]
    assert footprints["features"][0]["properties"] == boxes["features"][0]["properties"]
    assert footprints["features"][0]["properties"]["scene"] == "rotated.tif"
    assert outline.geom_type == "Polygon" and outline.area < 0.99 * bbox.area
    rows = sorted_rows(index)
    coarse = shapely.from_wkb(rows.filter(pc.equal(rows["level"], 2))["footprint"].to_numpy(zero_copy_only=False))
    assert outline.area == pytest.approx(shapely.union_all(coarse).area, rel=1e-3)
    every = shapely.from_wkb(rows["footprint"].to_numpy(zero_copy_only=False))
    near = outline.buffer(MERGE_TOLERANCE_DEG / 10)  # the outline is simplified to this tolerance (~10 cm)
    assert all(near.covers(chip) for chip in every)  # the level-1 chips lie inside it too


def test_classify_geotiff_labels_every_chip(tmp_path: Path, tiny_model: object) -> None:
    labels = ["forest", "harbor", "desert"]
    result = classify_scene(write_scene(tmp_path / "scene.tif"), tiny_model, labels)
    features = result.chips["features"]
    assert len(features) == (512 // CLASSIFY_SPEC.chip_px) ** 2 and not result.pixel_space
    assert {f["properties"]["label"] for f in features} <= {*labels, NONE_OF_THESE}
    assert sum(s.probability for s in result.scene) == pytest.approx(1.0, abs=1e-5)
    assert result.best == max(result.scene, key=lambda s: s.probability)
    lon, lat = shape(features[0]["geometry"]).centroid.coords[0]
    assert -80 < lon < -75 and 20 < lat < 30  # UTM 18N near the Bahamas


def test_classify_plain_image_in_pixel_space(tmp_path: Path, tiny_model: object) -> None:
    buffer = io.BytesIO()
    texture = np.random.default_rng(5).integers(0, 255, (300 // 20 + 1, 520 // 20, 3), dtype=np.uint8)
    pixels = texture.repeat(20, axis=0).repeat(20, axis=1)[:300]  # textured: flat chips are skipped as empty
    Image.fromarray(pixels).save(buffer, format="JPEG")
    path = tmp_path / "photo.jpg"
    path.write_bytes(buffer.getvalue())
    result = classify_scene(path, tiny_model, ["a", "b"])
    assert result.pixel_space and len(result.chips["features"]) == 2 * 3
    ys = [y for f in result.chips["features"] for _, y in shape(f["geometry"]).exterior.coords]
    assert max(ys) == 0 and min(ys) == -300  # (col, -row): the image hangs below the x axis, upright
    with pytest.raises(InputError, match="at least|non-empty"):
        classify_scene(path, tiny_model, ["a", " "])
