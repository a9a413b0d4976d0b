"""The catalog-item columns of the chip table: written, read, filtered by date, and added to older libraries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from remoteclip.errors import InputError
from tests.tiles.index.test_chip_index import DIM, scene_rows
from tiles.index.chip_index import ChipIndex
from tiles.index.dates import datetime_where, parse_range
from tiles.index.schema import ITEM_FIELDS, SceneItem

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")
WHEN = datetime(2021, 6, 1, 10, 30, tzinfo=UTC)


def with_item(scene_id: str, item: SceneItem, seed: int) -> pa.Table:
    """``scene_rows`` of a scene that came from catalog item ``item``."""
    rows = scene_rows(scene_id, (10.0 + seed * 0.1, 50.0), seed=seed)
    for name, value in (("item_id", item.item_id), ("collection", item.collection),
                        ("datetime", item.datetime), ("item_url", item.url)):
        position = rows.schema.get_field_index(name)
        field = rows.schema.field(name)
        rows = rows.set_column(position, field, pa.array([value] * rows.num_rows, field.type))
    return rows


def test_parse_range() -> None:
    day = parse_range("2021-06-01")
    assert day == (datetime(2021, 6, 1, tzinfo=UTC), datetime(2021, 6, 1, 23, 59, 59, 999999, tzinfo=UTC))
    assert parse_range("2021/..") == (datetime(2021, 1, 1, tzinfo=UTC), None)
    assert parse_range("../2021-06-01T12:00:00+02:00") == (None, datetime(2021, 6, 1, 10, tzinfo=UTC))
    for bad in ("..", "2021-13-01", "2022/2021", "a/b/c"):
        with pytest.raises(InputError, match="date range"):
            parse_range(bad)


def test_items_are_stored_read_back_and_filtered_by_date(tmp_path: Path) -> None:
    index = ChipIndex(tmp_path / "db")
    item = SceneItem("S2A_1", "sentinel-2", WHEN, "https://stac.example/items/S2A_1")
    index.replace_scenes(["a"], with_item("a", item, seed=1))
    index.replace_scenes(["b"], scene_rows("b", (10.3, 50.0), seed=2))  # a file ingested by path
    chips = {chip.scene_id: chip for chip in index.get(index_chip_ids(index))}
    assert (chips["a"].item_id, chips["a"].collection, chips["a"].datetime, chips["a"].item_url) == (
        "S2A_1", "sentinel-2", WHEN, "https://stac.example/items/S2A_1")
    assert chips["b"].item_id is None and chips["b"].datetime is None
    query = np.ones(DIM, np.float32)
    assert {hit.scene_id for hit in index.search(query, k=100, where=datetime_where("2021-06"))} == {"a"}
    assert index.search(query, k=100, where=datetime_where("2021-06-02/..")) == []


def index_chip_ids(index: ChipIndex) -> list[str]:
    table = index.table
    assert table is not None
    return table.to_arrow()["chip_id"].to_pylist()


def test_a_library_made_before_the_item_columns_is_read_and_then_given_them(tmp_path: Path) -> None:
    old = ChipIndex(tmp_path / "db")
    rows = scene_rows("a", (10.0, 50.0), seed=1).drop_columns([f.name for f in ITEM_FIELDS])
    old.create(rows)
    index = ChipIndex(tmp_path / "db")
    hits = index.search(np.ones(DIM, np.float32), k=3)
    assert len(hits) == 3 and all(hit.item_id is None for hit in hits)
    assert [chip.chip_id for chip in next(index.scan())[0]][:1]
    item = SceneItem("x", None, WHEN, None)
    index.replace_scenes(["b"], with_item("b", item, seed=2))
    table = index.table
    assert table is not None and {f.name for f in ITEM_FIELDS} <= set(table.schema.names)
    assert index.count_rows() == rows.num_rows * 2
    assert {h.scene_id for h in index.search(np.ones(DIM, np.float32), k=100, where=datetime_where("2021"))} == {"b"}
