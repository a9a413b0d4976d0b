"""tiles.index.chip_index.ChipIndex on real LanceDB tables: upsert, replace, model guard, search, AOI, scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import Polygon

from tests.index_rows import sorted_rows, vector_matrix
from tiles.georef import chip_georef
from tiles.grid import ChipSpec, iter_windows
from tiles.index.chip_index import ChipIndex
from tiles.index.errors import ChipIndexError
from tiles.index.schema import DATA_STORAGE_VERSION, ChipRecord, chip_id_for, rows_table

DIM = 8
WGS84 = CRS.from_epsg(4326)
# rasterio.transform.from_origin still uses Affine's `*`
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def scene_rows(
    scene_id: str,
    origin: tuple[float, float] | None,
    *,
    size: int = 64,
    chip_px: int = 16,
    model_id: str = "model-a",
    seed: int = 0,
    dim: int = DIM,
    pixel_deg: float = 0.001,
) -> pa.Table:
    """Chips of a ``size``² scene of ``pixel_deg``-degree pixels at ``origin`` (None: pixel space).

    Its vectors are random unit vectors.
    """
    transform = from_origin(*origin, pixel_deg, pixel_deg) if origin else from_origin(0, 0, 1, -1)
    crs = WGS84 if origin else None
    records = [
        ChipRecord(
            scene_id=scene_id,
            scene_path=f"/data/{scene_id}.tif",
            window=w,
            georef=chip_georef(w, transform, crs),
            crs="EPSG:4326" if origin else None,
            thumbnail=b"jpg",
        )
        for w in iter_windows(size, size, ChipSpec(chip_px=chip_px, levels=(1, 2)))
    ]
    vectors = np.random.default_rng(seed).normal(size=(len(records), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return rows_table(records, vectors, model_id)


@pytest.fixture
def index(tmp_path: Path) -> ChipIndex:
    idx = ChipIndex(tmp_path / "db")
    idx.replace_scenes(["a"], scene_rows("a", (10.0, 50.0), seed=1))
    idx.replace_scenes(["b"], scene_rows("b", (10.05, 50.0), seed=2))
    idx.replace_scenes(["c"], scene_rows("c", None, seed=3))
    return idx


def test_reupsert_leaves_the_same_rows(index: ChipIndex) -> None:
    before = sorted_rows(index)
    assert before.num_rows == 3 * (16 + 4)
    index.upsert(scene_rows("a", (10.0, 50.0), seed=1))
    index.replace_scenes(["b"], scene_rows("b", (10.05, 50.0), seed=2))
    assert sorted_rows(index).equals(before)


def test_tables_are_written_in_the_pinned_lance_format(index: ChipIndex, tmp_path: Path) -> None:
    # pylance's default (2.2) makes each search decode whole pages of constant columns: DATA_STORAGE_VERSION
    assert index.table.to_lance().data_storage_version == DATA_STORAGE_VERSION == "2.1"
    bulk = ChipIndex(tmp_path / "bulk")
    bulk.create(scene_rows("a", (10.0, 50.0)))
    assert bulk.table.to_lance().data_storage_version == DATA_STORAGE_VERSION
    with pytest.raises(ValueError, match="already exists"):
        bulk.create(scene_rows("b", (10.0, 50.0)))


def test_replace_scenes_drops_chips_the_scenes_no_longer_have(index: ChipIndex) -> None:
    index.replace_scenes(["a"], scene_rows("a", (10.0, 50.0), chip_px=32, seed=1))
    assert index.count_rows("scene_id = 'a'") == 4 + 1
    assert index.count_rows("scene_id = 'b'") == 20
    version = index.table.version
    # several scenes in one commit: "a" back to 16-px chips, "b" now empty (all its chips skipped), "d" new
    rows = pa.concat_tables([scene_rows("a", (10.0, 50.0), seed=1), scene_rows("d", (11.0, 50.0), seed=5)])
    index.replace_scenes(["a", "b", "d"], rows)
    assert index.table.version == version + 1
    counts = {scene: index.count_rows(f"scene_id = '{scene}'") for scene in "abcd"}
    assert counts == {"a": 20, "b": 0, "c": 20, "d": 20}


def test_replace_scenes_refuses_rows_of_other_scenes(index: ChipIndex) -> None:
    with pytest.raises(ChipIndexError, match="other scenes"):
        index.replace_scenes(["a"], scene_rows("b", (10.0, 50.0)))
    with pytest.raises(ChipIndexError, match="at least one scene"):
        index.replace_scenes([], scene_rows("b", (10.0, 50.0)))


def test_a_second_model_is_refused_naming_both(index: ChipIndex) -> None:
    with pytest.raises(ChipIndexError, match="'model-a', not 'model-b'"):
        index.upsert(scene_rows("d", (11.0, 50.0), model_id="model-b"))
    mixed = pa.concat_tables(
        [scene_rows("d", (11.0, 50.0)), scene_rows("e", (12.0, 50.0), model_id="model-b")]
    )
    with pytest.raises(ChipIndexError, match="several models"):
        index.upsert(mixed)
    with pytest.raises(ChipIndexError, match="8-d vectors, these rows have 4-d"):
        index.upsert(scene_rows("d", (11.0, 50.0), dim=4))
    assert index.count_rows() == 60


def test_search_ranks_by_cosine_similarity(index: ChipIndex) -> None:
    rows = sorted_rows(index)
    vectors = vector_matrix(rows)
    query = vectors[7]
    hits = index.search(query, k=10)
    expected = np.argsort(-(vectors @ query))[:10]
    assert [h.chip_id for h in hits] == [rows["chip_id"][int(i)].as_py() for i in expected]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_aoi_search_equals_brute_force(index: ChipIndex) -> None:
    """A triangle whose bbox covers chips it does not touch; pixel-space chips never match."""
    aoi = Polygon([(10.0, 50.0), (10.1, 50.0), (10.0, 49.94)])
    rows = sorted_rows(index)
    vectors = vector_matrix(rows)
    query = np.random.default_rng(9).normal(size=DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    chips = index.get(rows["chip_id"].to_pylist())
    inside = [i for i, chip in enumerate(chips) if not chip.pixel_space and chip.footprint.intersects(aoi)]
    bbox_only = [
        i
        for i, chip in enumerate(chips)
        if not chip.pixel_space
        and Polygon.from_bounds(*chip.bbox).intersects(Polygon.from_bounds(*aoi.bounds))
    ]
    assert 0 < len(inside) < len(bbox_only)  # the exact test matters
    ranked = sorted(inside, key=lambda i: -float(vectors[i] @ query))
    for k in (3, len(inside), 100):
        hits = index.search(query, k=k, aoi=aoi)
        assert [h.chip_id for h in hits] == [chips[i].chip_id for i in ranked[:k]]
    every = index.search(query, k=None, aoi=aoi)  # every chip touching the AOI, nearest first
    assert [h.chip_id for h in every] == [chips[i].chip_id for i in ranked]
    assert index.search(query, k=None, aoi=Polygon.from_bounds(-50, -50, -49, -49)) == []
    with pytest.raises(ChipIndexError, match="needs an AOI or a where filter"):
        index.search(query, k=None)


def test_aoi_prefilter_follows_the_largest_chip(index: ChipIndex) -> None:
    """The prefilter's minx/miny ranges reach back by the largest chip's size, updated as scenes are added."""
    assert index.max_chip_size() == pytest.approx((0.032, 0.032))  # level-2 chips of 16 x 0.001 deg pixels
    index.replace_scenes(["big"], scene_rows("big", (20.0, 40.0), seed=4, pixel_deg=0.01))
    assert index.max_chip_size() == pytest.approx((0.32, 0.32))
    aoi = Polygon.from_bounds(20.3, 39.7, 20.31, 39.71)  # 0.3 deg east of the big level-2 chip's west edge
    chips = index.get(sorted_rows(index)["chip_id"].to_pylist())
    touching = {chip.chip_id for chip in chips if not chip.pixel_space and chip.footprint.intersects(aoi)}
    assert len(touching) == 2  # one chip of each level
    assert {hit.chip_id for hit in index.search(np.ones(DIM, np.float32), k=10, aoi=aoi)} == touching
    assert index.count_rows(index.aoi_where(aoi.bounds)) == 2


def test_get_and_vectors_keep_the_order_asked(index: ChipIndex) -> None:
    rows = sorted_rows(index)
    ids = [rows["chip_id"][i].as_py() for i in (5, 0, 33)]
    assert [c.chip_id for c in index.get(ids)] == ids
    expected = np.stack([rows["vector"][i].as_py() for i in (5, 0, 33)])
    np.testing.assert_allclose(index.vectors(ids), expected)
    with pytest.raises(ChipIndexError, match="nope"):
        index.get(["nope", ids[0]])


def test_scenes_summarise_each_scene(index: ChipIndex) -> None:
    scenes = {s.scene_id: s for s in index.scenes()}
    assert set(scenes) == {"a", "b", "c"}
    a = scenes["a"]
    assert a.chips == 20 and a.levels == (1, 2) and a.crs == "EPSG:4326" and not a.pixel_space
    assert a.extent == pytest.approx((10.0, 49.936, 10.064, 50.0))
    along_row, along_column = 0.001 * 111_320 * np.cos(np.radians(50)), 0.001 * 111_230  # metres per 0.001°
    assert a.gsd_m == pytest.approx((along_row + along_column) / 2, rel=0.01)
    assert scenes["c"].pixel_space and scenes["c"].gsd_m is None and scenes["c"].extent == (0, 0, 64, 64)
    assert index.chips_per_scene() == {"a": 20, "b": 20, "c": 20}


def test_model_id_is_read_again_after_a_drop_even_at_the_same_version(index: ChipIndex) -> None:
    old_version = index.table.version
    assert index.model_id == "model-a"  # now cached with the table and its version
    index.drop()
    writer = ChipIndex(index.uri)  # a new table of another model, written without `index` reading it
    while writer.table is None or writer.table.version < old_version:
        writer.replace_scenes(["z"], scene_rows("z", (1.0, 1.0), model_id="model-b"))
    assert index.table.version == old_version and index.model_id == "model-b"


def test_delete_scene(index: ChipIndex) -> None:
    assert index.delete_scene("b") == 20
    assert index.delete_scene("it's") == 0  # quoted, not injected
    assert {s.scene_id for s in index.scenes()} == {"a", "c"}


def test_delete_scenes_in_one_commit(index: ChipIndex, tmp_path: Path) -> None:
    version = index.table.version
    assert index.delete_scenes(["x", "it's"]) == 0 and index.table.version == version  # nothing: no commit
    assert index.delete_scenes(["a", "c", "x"]) == 40 and index.table.version == version + 1
    assert {s.scene_id for s in index.scenes()} == {"b"}
    assert ChipIndex(tmp_path / "empty").delete_scenes(["a"]) == 0  # no table yet


def test_stored_windows_are_a_scenes_windows(index: ChipIndex) -> None:
    stored = index.stored_windows("a").to_pylist()
    spec = ChipSpec(chip_px=16, levels=(1, 2))
    assert sorted((r["level"], r["col_off"], r["row_off"], r["width"], r["height"]) for r in stored) == sorted(
        (w.level, w.col_off, w.row_off, w.width, w.height) for w in iter_windows(64, 64, spec)
    )
    assert {r["chip_id"] for r in stored} == {chip_id_for("a", w) for w in iter_windows(64, 64, spec)}
    assert index.stored_windows("it's").num_rows == 0  # quoted, not injected


def test_delete_chips_in_one_commit(index: ChipIndex, tmp_path: Path) -> None:
    version = index.table.version
    first_two = index.stored_windows("a")["chip_id"].to_pylist()[:2]
    assert index.delete_chips(["x", "it's"]) == 0 and index.table.version == version  # nothing: no commit
    assert index.delete_chips([*first_two, "x"]) == 2 and index.table.version == version + 1
    assert index.chips_per_scene() == {"a": 18, "b": 20, "c": 20}
    assert not set(first_two) & set(index.stored_windows("a")["chip_id"].to_pylist())
    assert ChipIndex(tmp_path / "empty").delete_chips(first_two) == 0  # no table yet


def test_chip_ids_are_deterministic() -> None:
    first, second = scene_rows("a", (10.0, 50.0), seed=1), scene_rows("a", (10.0, 50.0), seed=5)
    assert first["chip_id"].equals(second["chip_id"])
    w = next(iter_windows(64, 64, ChipSpec(chip_px=16)))
    assert chip_id_for("a", w) != chip_id_for("b", w)


def test_empty_index_explains_what_to_do(tmp_path: Path) -> None:
    index = ChipIndex(tmp_path / "empty")
    assert index.count_rows() == 0 and index.scenes() == [] and index.model_id is None
    assert index.chips_per_scene() == {}
    with pytest.raises(ChipIndexError, match="remoteclip-explorer ingest"):
        index.search(np.ones(DIM, dtype=np.float32))
