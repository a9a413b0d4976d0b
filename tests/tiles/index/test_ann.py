"""The ANN policy (tiles.index.ann) on real LanceDB tables: threshold, build, update, retrain, AOI prefilter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from lancedb.index import BTree
from shapely.geometry import box

from pipelines.bench.query import (
    chip_boxes,
    clustered_vectors,
    exact_top_k,
    synthetic_batches,
    write_synthetic_table,
)
from pipelines.cli.main import cli
from tiles.index.ann import (
    BBOX_COLUMNS,
    UNINDEXED_BBOX_COLUMNS,
    VECTOR_COLUMN,
    AnnKind,
    AnnPolicy,
    AnnState,
    ann_state,
    index_config,
    tune_query,
)
from tiles.index.chip_index import ChipIndex

DIM = 32
POLICY = AnnPolicy(min_rows=2_000, rows_per_partition=100, nprobes=8, refine_factor=10)


def _index(tmp_path: Path, rows: int, policy: AnnPolicy = POLICY) -> tuple[ChipIndex, np.ndarray, np.ndarray]:
    vectors, boxes = clustered_vectors(rows, DIM, seed=3), chip_boxes(rows, seed=3)
    index = ChipIndex(tmp_path / "db", ann=policy)
    write_synthetic_table(index, vectors, boxes)
    return index, vectors, boxes


def _row_numbers(hits: list) -> set[int]:
    return {int(hit.chip_id[1:]) for hit in hits}


def test_below_threshold_no_index_and_exact(tmp_path: Path) -> None:
    index, vectors, _ = _index(tmp_path, 1_500)
    assert index.build_ann() == "none"
    assert not ann_state(index.table).exists
    assert _row_numbers(index.search(vectors[7], 10)) == exact_top_k(vectors, vectors[7], 10)


def test_built_past_threshold_with_bbox_indexes_and_high_recall(tmp_path: Path) -> None:
    index, vectors, _ = _index(tmp_path, 3_000)
    index.table.create_index("maxx", config=BTree())  # as earlier versions built, slowing AOI queries
    assert index.build_ann() == "built"
    indexed = {ix.columns[0]: ix.index_type for ix in index.table.list_indices()}
    assert indexed[VECTOR_COLUMN] == "IvfSq"
    assert all(indexed[column] == "BTree" for column in BBOX_COLUMNS)
    assert not set(UNINDEXED_BBOX_COLUMNS) & set(indexed)
    assert ann_state(index.table).indexed_rows == 3_000
    rng = np.random.default_rng(0)
    recalls = []
    for row in rng.integers(0, len(vectors), 30):
        query = vectors[row] + rng.standard_normal(DIM).astype(np.float32) * 0.02
        recalls.append(len(_row_numbers(index.search(query, 10)) & exact_top_k(vectors, query, 10)) / 10)
    assert np.mean(recalls) >= 0.95
    assert index.build_ann() == "none"  # nothing new to index


def test_aoi_prefilter_kept_with_index(tmp_path: Path) -> None:
    index, vectors, boxes = _index(tmp_path, 3_000)
    index.build_ann()
    # one scene's chips (scene 1 holds rows 1024..2047) and a query vector from another scene
    x0, y0 = boxes[1024, 0], boxes[1024, 1]
    aoi = box(x0, y0, x0 + 0.01, y0 + 0.01)
    inside = np.flatnonzero(
        (boxes[:, 2] >= x0) & (boxes[:, 0] <= x0 + 0.01) & (boxes[:, 3] >= y0) & (boxes[:, 1] <= y0 + 0.01)
    )
    hits = index.search(vectors[5], 5, aoi=aoi)
    assert len(hits) == 5  # a post-filter would find none: the nearest chips lie in scene 0
    assert all(aoi.intersects(hit.footprint) for hit in hits)
    assert _row_numbers(hits) == exact_top_k(vectors, vectors[5], 5, inside)


def test_new_rows_are_folded_in_then_retrained_on_growth(tmp_path: Path) -> None:
    index, _, _ = _index(tmp_path, 2_000)
    assert index.build_ann() == "built"
    more = clustered_vectors(500, DIM, seed=9)
    rows = pa.Table.from_batches(list(synthetic_batches(more, chip_boxes(500, seed=9))))
    rows = rows.set_column(0, "chip_id", pa.array([f"c{i:09d}" for i in range(2_000, 2_500)]))
    index.upsert(rows)
    assert ann_state(index.table).unindexed_rows == 500
    assert _row_numbers(index.search(more[3], 1)) == {2_003}  # unindexed rows are searched too
    assert index.build_ann() == "updated"
    assert ann_state(index.table) == AnnState(indexed_rows=2_500, unindexed_rows=0)
    grown = ChipIndex(
        tmp_path / "db", ann=AnnPolicy(min_rows=2_000, rows_per_partition=100, retrain_growth=1.2)
    )
    assert grown.build_ann() == "none"
    index.upsert(rows.set_column(0, "chip_id", pa.array([f"d{i:09d}" for i in range(500)])))
    assert grown.build_ann() == "built"  # 3,000 rows >= 1.2 x 2,500 trained on


@pytest.mark.parametrize("kind", list(AnnKind))
def test_index_config_per_kind(kind: AnnKind) -> None:
    config = index_config(kind, 1_000_000, 512, 1_000)
    assert config.distance_type == "cosine"
    if kind is AnnKind.IVF_HNSW_SQ:
        assert config.num_partitions == 1
    else:
        assert config.num_partitions == 1_000
    if kind is AnnKind.IVF_PQ:
        assert config.num_sub_vectors == 64


@pytest.mark.parametrize(
    ("kind", "result_name"), [("ivf_sq", "query_3000"), ("ivf_hnsw_sq", "query_3000_ivf_hnsw_sq")]
)
def test_bench_query_writes_latency_and_recall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, result_name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    args = f"bench query --rows 3000 --dim 32 --queries 10 --min-rows 2000 --index {kind} --format json"
    result = CliRunner().invoke(cli, args.split(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / f"benchmarks/results/{result_name}.json").read_text())
    assert record["index"]["action"] == "built" and record["index"]["kind"] == kind
    for case in ("no_aoi", "aoi"):
        figures = record[case]
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] and figures["cpu_ms_p50"] > 0
        assert figures["recall_at_k"] >= 0.9
    assert record["no_aoi"]["aoi_rows"] == 3000 and 0 < record["aoi"]["aoi_rows"] < 3000
    refine = record["refine_round"]  # marks read, a probe fitted with its background, one search
    assert refine["rounds"] == 10 and 0 < refine["p50_ms"] <= refine["p99_ms"]


def test_a_filter_leaving_few_rows_is_searched_exactly_not_through_the_index(tmp_path: Path) -> None:
    index, vectors, _ = _index(tmp_path, 3_000)
    index.build_ann()
    policy = AnnPolicy(min_rows=2_000, exact_filter_rows=500)

    def plan(candidate_rows: int | None) -> str:
        return tune_query(index.table.search(vectors[0]), policy, candidate_rows).explain_plan(verbose=True)

    assert "ANNSubIndex" not in plan(500)  # a flat scan of the filtered rows
    assert "ANNSubIndex" in plan(501) and "ANNSubIndex" in plan(None)
