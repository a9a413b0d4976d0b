"""Objects stored at ingest equal those located on demand, and an AOI count reads them (real LanceDB, real
GeoTIFFs, explorer-small's trunk with the synthetic disk locator, whose right answers are known)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from shapely.geometry import Point, box

from pipelines.cli.main import cli
from pipelines.ingest.objects import run_scenes
from pipelines.services import aoi_objects
from pipelines.services.aoi_objects import locate_in_aoi
from pipelines.services.locate import locate_objects, object_query
from pipelines.services.object_store import object_name, store_objects, stored_in_aoi
from remoteclip.errors import ModelNotFoundError
from remoteclip.factory import LoadedModel
from remoteclip.locator import ObjectLocator
from tests.app_data import build_library
from tests.synthetic_objects import DISK_NOUN, write_disk_scene
from tiles.index.chip_index import ChipIndex
from tiles.index.object_table import ObjectTable

pytestmark = pytest.mark.slow

#: disks of a 640² scene (1 m pixels), read at full resolution (256 px chips)
CENTRES = [(100.0, 100.0), (224.0, 110.0), (320.0, 320.0), (416.0, 320.0), (540.0, 540.0), (224.0, 540.0)]
SPAN = 256
NOUN = object_name(DISK_NOUN)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_disk_scene(tmp_path_factory.mktemp("disks") / "disks.tif", CENTRES, 640)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, default_model: LoadedModel, scene: Path) -> ChipIndex:
    return build_library(tmp_path_factory.mktemp("store") / "db", default_model, [scene])


@pytest.fixture(scope="module")
def stored(
    library: ChipIndex, default_model: LoadedModel, disk_locator: ObjectLocator, scene: Path
) -> dict[str, int]:
    return store_objects(library, default_model, disk_locator, [DISK_NOUN], run_scenes(library, [scene]), span_px=SPAN)


def test_stored_objects_equal_the_on_demand_ones(
    stored: dict[str, int], library: ChipIndex, default_model: LoadedModel, disk_locator: ObjectLocator,
    scene: Path,
) -> None:
    query = object_query(default_model, disk_locator, NOUN, threshold=0.1)
    on_demand = locate_objects(default_model, disk_locator, scene, query, span_px=SPAN).objects
    assert stored == {NOUN: len(on_demand)} and len(on_demand) >= len(CENTRES)
    table = ObjectTable(library)
    assert table.objects() == {NOUN: len(on_demand)}
    rows = table.in_aoi(NOUN, box(-180, -90, 180, 90))
    assert sorted((round(o.col, 3), round(o.row, 3), round(o.score, 5)) for o in rows) == sorted(
        (round(o.col, 3), round(o.row, 3), round(o.score, 5)) for o in on_demand
    )
    # every disk is found above the locator's threshold
    strong = [(o.col, o.row) for o in rows if o.score >= disk_locator.threshold]
    assert len(strong) == len(CENTRES)
    assert all(min(np.hypot(c - x, r - y) for c, r in strong) < 6 for x, y in CENTRES)


def test_locate_in_aoi_reads_the_stored_objects(
    stored: dict[str, int], library: ChipIndex, default_model: LoadedModel, disk_locator: ObjectLocator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    minx, miny, maxx, maxy = library.scenes()[0].extent
    aoi = box(minx, miny, minx + 0.44 * (maxx - minx), maxy)  # the west, to col ~280: three of the disks
    expected = locate_in_aoi(library, default_model, disk_locator, NOUN, aoi, min_score=0.2, span_px=SPAN)

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("located on demand although the objects are stored")

    monkeypatch.setattr(aoi_objects, "locate_objects", refuse)
    found = locate_in_aoi(library, default_model, disk_locator, NOUN, aoi, min_score=0.2, span_px=SPAN)
    assert found.total(0.2) == 3 == len([c for c in CENTRES if c[0] < 320])
    assert all(aoi.covers(Point(o.lon, o.lat)) for o in found.objects)
    assert [(o.scene_id, round(o.lon, 7), round(o.lat, 7)) for o in found.objects] == [
        (o.scene_id, round(o.lon, 7), round(o.lat, 7)) for o in expected.objects
    ]
    assert len(found.chips) == len(expected.chips) and found.object_name == NOUN


def test_stored_objects_are_not_used_when_they_do_not_fit(
    stored: dict[str, int], library: ChipIndex, default_model: LoadedModel, disk_locator: ObjectLocator,
) -> None:
    scenes = library.scenes()
    aoi = box(*scenes[0].extent)
    assert stored_in_aoi(library, default_model, disk_locator, NOUN, aoi, scenes, min_score=0.2, span_px=SPAN)
    # another chip span, a lower floor than stored, or an object never stored: locate on demand
    assert stored_in_aoi(library, default_model, disk_locator, NOUN, aoi, scenes, min_score=0.2) is None
    assert stored_in_aoi(
        library, default_model, disk_locator, NOUN, aoi, scenes, min_score=0.05, span_px=SPAN
    ) is None
    assert stored_in_aoi(
        library, default_model, disk_locator, "ship", aoi, scenes, min_score=0.2, span_px=SPAN
    ) is None


def test_cli_ingest_objects(tmp_path: Path, scene: Path, disk_locator: ObjectLocator) -> None:
    weights = tmp_path / "disks.safetensors"
    disk_locator.save(weights)
    db = tmp_path / "db"
    args = ["ingest", str(scene), "--db", str(db), "--chip-size", "128", "--workers", "0",
            "--objects", "White Disks,ship", "--locator", str(weights)]
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    table = ObjectTable(ChipIndex(db))
    assert set(report["objects"]) == {NOUN, "ship"}
    assert report["objects"][NOUN] == table.count_rows(f"object = '{NOUN}'")
    assert set(table.located(NOUN)) == set(table.located("ship")) == {s.scene_id for s in ChipIndex(db).scenes()}
    assert report["scenes"] == 1 and "chips" in report
    # a rerun: the scene is already in the library, its objects replaced, not duplicated
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "stored in the objects table" in again.stdout
    assert table.count_rows() == sum(report["objects"].values())


def test_cli_ingest_objects_of_a_remote_scene(
    tmp_path: Path, scene: Path, disk_locator: ObjectLocator, default_model: LoadedModel, bucket: Any,
    s3_env: None,
) -> None:
    """``ingest URL --objects`` locates in the scene read over S3 what it finds in the same file on disk, and the
    Count page's on-demand path (another chip span than stored) reads the remote scene too."""
    url = "s3://chips/disk-objects/disks.tif"
    bucket.upload_file(str(scene), "chips", url.removeprefix("s3://chips/"))
    weights = tmp_path / "disks.safetensors"
    disk_locator.save(weights)
    found: dict[str, list[tuple[float, float, float]]] = {}
    for name, source in (("local", str(scene)), ("remote", url)):
        db = tmp_path / name
        result = CliRunner().invoke(cli, ["ingest", source, "--db", str(db), "--chip-size", "128", "--workers",
                                          "0", "--objects", DISK_NOUN, "--locator", str(weights)])
        assert result.exit_code == 0, result.output
        rows = ObjectTable(ChipIndex(db)).in_aoi(NOUN, box(-180, -90, 180, 90))
        found[name] = sorted((round(o.col, 3), round(o.row, 3), round(o.score, 5)) for o in rows)
    assert found["remote"] == found["local"] and found["local"]
    remote = ChipIndex(tmp_path / "remote")
    assert [s.scene_path for s in remote.scenes()] == [url]
    on_demand = locate_in_aoi(remote, default_model, disk_locator, NOUN, box(*remote.scenes()[0].extent),
                              min_score=0.2, span_px=SPAN)
    assert on_demand.total(0.2) == len(CENTRES)


def test_cli_ingest_objects_needs_a_locator(tmp_path: Path, tiny_checkpoint: Path, scene: Path) -> None:
    result = CliRunner().invoke(
        cli, ["ingest", str(scene), "--db", str(tmp_path / "db"), "--model", str(tiny_checkpoint),
              "--objects", "airplane"]
    )
    # the same error as `count` (main prints it as one line), raised before any chip is ingested
    assert isinstance(result.exception, ModelNotFoundError)
    assert "no object locator ships for" in str(result.exception)
    assert not (tmp_path / "db").exists() or ChipIndex(tmp_path / "db").count_rows() == 0
