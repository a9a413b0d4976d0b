"""``bench objects`` on a small synthetic library: every stored object is found by an AOI over all of it."""

from __future__ import annotations

from pathlib import Path

from shapely.geometry import box

from pipelines.bench.objects import AOI_HALF_DEG, OBJECTS_PER_CHIP, run_objects_bench
from tiles.index.chip_index import ChipIndex
from tiles.index.object_table import ObjectTable


def test_objects_bench_times_every_aoi_size(tmp_path: Path) -> None:
    result = run_objects_bench(2_000, 5, tmp_path / "db")
    assert result["objects"] == 2_000 * OBJECTS_PER_CHIP
    assert set(result["aoi"]) == set(AOI_HALF_DEG)
    assert all(m["p50_ms"] <= m["p99_ms"] for m in result["aoi"].values())
    table = ObjectTable(ChipIndex(tmp_path / "db"))
    assert table.count_rows() == result["objects"]
    assert len(table.in_aoi("airplane", box(-180, -90, 180, 90))) == result["objects"] // 3
