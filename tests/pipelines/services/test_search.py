"""pipelines.services.search services and the ``search`` command on an index ingested with the tiny model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from pyproj import Transformer
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box, shape
from shapely.ops import transform as shapely_transform
from shapely.ops import unary_union

from pipelines.cli.main import cli
from pipelines.ingest.local import ingest_paths
from pipelines.services.export import hit_record, hits_geojson
from pipelines.services.search import search_like, search_text
from remoteclip.encode import encode_texts
from remoteclip.errors import InputError
from tiles.grid import ChipSpec, iter_windows
from tiles.index.chip_index import ChipIndex
from tiles.index.errors import ChipIndexError

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SCENES = ["rgb_4326.tif", "pan_uint16_32616.tif", "rgbn_3395.tif", "plain.png"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> Path:
    folder = tmp_path_factory.mktemp("search") / "db"
    summary = ingest_paths(
        [RASTERS / name for name in SCENES],
        ChipIndex(folder),
        tiny_model,
        ChipSpec(chip_px=16, levels=(1, 2)),
        progress=False,
    )
    assert summary.chips == 4 * 8 and not summary.failed
    return folder


def all_vectors(index: ChipIndex) -> tuple[list[str], np.ndarray]:
    rows = index.table.search().select(["chip_id", "vector"]).limit(1000).to_arrow()
    return rows["chip_id"].to_pylist(), np.stack(rows["vector"].to_numpy(zero_copy_only=False))


def test_text_search_ranks_by_cosine_to_the_query(db: Path, tiny_model) -> None:
    index = ChipIndex(db)
    hits = search_text(index, tiny_model, "ships in harbor", k=5)
    ids, vectors = all_vectors(index)
    scores = vectors @ encode_texts(tiny_model, ["ships in harbor"])[0]
    order = np.argsort(-scores)[:5]
    assert [h.chip_id for h in hits] == [ids[i] for i in order]
    np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-5)


def test_more_like_this_leaves_the_chip_itself_out(db: Path) -> None:
    index = ChipIndex(db)
    ids, vectors = all_vectors(index)
    hits = search_like(index, ids[3], k=4)
    assert len(hits) == 4 and ids[3] not in [h.chip_id for h in hits]
    others = [i for i in np.argsort(-(vectors @ vectors[3])) if i != 3][:4]
    assert [h.chip_id for h in hits] == [ids[i] for i in others]


def test_aoi_restricts_hits_to_chips_touching_it(db: Path, tiny_model) -> None:
    aoi = box(-94.5, 37.0699, -94.49985, 37.07)  # the top-left 15 x 10 pixels of rgb_4326.tif
    hits = search_text(ChipIndex(db), tiny_model, "houses", k=50, aoi=aoi)
    assert {(h.level, h.col_off, h.row_off) for h in hits} == {(1, 0, 0), (2, 0, 0)}
    assert all(h.footprint.intersects(aoi) and not h.pixel_space for h in hits)


def test_bad_queries(db: Path, tiny_model) -> None:
    with pytest.raises(InputError, match="search text is empty"):
        search_text(ChipIndex(db), tiny_model, "  ")
    with pytest.raises(ChipIndexError, match="not 'other@1'"):
        search_text(ChipIndex(db), dataclasses.replace(tiny_model, model_id="other@1"), "ships")


def test_geojson_has_lonlat_footprints_and_no_pixel_geometry(db: Path, tiny_model) -> None:
    hits = search_text(ChipIndex(db), tiny_model, "field", k=32)
    collection = json.loads(json.dumps(hits_geojson(hits)))
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 32
    for hit, feature in zip(hits, collection["features"], strict=True):
        assert feature["id"] == hit.chip_id
        assert feature["properties"]["rank"] == hits.index(hit) + 1
        if hit.pixel_space:
            assert feature["geometry"] is None
        else:
            assert shape(feature["geometry"]).equals(hit.footprint)
    assert hit_record(hits[0], 1)["window"] == {
        "col_off": hits[0].col_off,
        "row_off": hits[0].row_off,
        "width": hits[0].width,
        "height": hits[0].height,
    }


def test_cli_search_formats(db: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    base = ["search", "ships in harbor", "--db", str(db), "--model", str(tiny_checkpoint), "-k", "3"]
    runner = CliRunner()
    table = runner.invoke(cli, base)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["#", "score", "scene"] and len(lines) == 2 + 3
    as_json = json.loads(runner.invoke(cli, [*base, "--format", "json"]).stdout)
    assert [r["rank"] for r in as_json] == [1, 2, 3]
    assert as_json[0]["score"] >= as_json[1]["score"] >= as_json[2]["score"]
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps(box(-94.5, 37.0699, -94.49985, 37.07).__geo_interface__))
    geo = json.loads(runner.invoke(cli, [*base, "--format", "geojson", "--aoi", str(aoi)]).stdout)
    assert {f["properties"]["col_off"] for f in geo["features"]} == {0}
    like = runner.invoke(
        cli, ["search", "--like", as_json[0]["chip_id"], "--db", str(db), "--format", "json"]
    )
    assert like.exit_code == 0 and as_json[0]["chip_id"] not in like.stdout
    usage = runner.invoke(cli, ["search", "--db", str(db)])
    assert usage.exit_code == 2 and "give either a QUERY or --like CHIP_ID" in usage.output


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rasterio.windows.bounds
def test_aoi_on_real_scenes_matches_an_independent_test_in_each_scene_crs(
    tmp_path: Path, shared_data: Path, tiny_model
) -> None:
    """Buildings of joplin.geojson as the AOI over a UTM (pre) and an EPSG:4326 (post) scene.

    Expected chips come the other way round: the AOI is projected into each scene's CRS and tested against
    each chip window's box there, instead of chip footprints being projected to EPSG:4326.
    """
    folder = (shared_data / "scenes" / "xview2_joplin").resolve()  # ingest stores resolved paths
    scenes = [folder / "pre" / "tile_337-9136.tif", folder / "post" / "tile_31500-5137.tif"]
    index = ChipIndex(tmp_path / "db")
    ingest_paths(scenes, index, tiny_model, ChipSpec(), progress=False)
    buildings = json.loads((folder / "misc" / "joplin.geojson").read_text())["features"]
    both = box(-94.4967, 37.0720, -94.4935, 37.0751)  # where the two scenes overlap
    aoi = unary_union([shape(f["geometry"]) for f in buildings if shape(f["geometry"]).within(both)][:12])
    expected = set()
    for path in scenes:
        with rasterio.open(path) as src:
            to_scene = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform
            local_aoi = shapely_transform(to_scene, aoi)
            for w in iter_windows(src.width, src.height, ChipSpec()):
                if box(*window_bounds(w.window, src.transform)).intersects(local_aoi):
                    expected.add((str(path), w.col_off, w.row_off))
    hits = search_text(index, tiny_model, "houses", k=100, aoi=aoi)
    assert {(h.scene_path, h.col_off, h.row_off) for h in hits} == expected
    assert {Path(p).parent.name for p, _, _ in expected} == {"pre", "post"} and len(expected) < 32
