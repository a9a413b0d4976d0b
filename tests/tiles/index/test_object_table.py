"""The ``objects`` table beside ``chips``: real LanceDB tables in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from shapely.geometry import Point, Polygon, box

from tiles.index.chip_index import ChipIndex
from tiles.index.object_table import LOCATED_TABLE, OBJECTS_TABLE, ObjectPoint, ObjectTable, object_id_for


def points(n: int, x0: float = 10.0, y0: float = 50.0, step: float = 0.001) -> list[ObjectPoint]:
    """``n`` objects on a diagonal, one every ``step`` degrees, scores 0.9, 0.8, ..."""
    return [
        ObjectPoint(col=10.0 * i, row=10.0 * i, lon=x0 + i * step, lat=y0 + i * step, score=0.9 - 0.1 * i)
        for i in range(n)
    ]


def write(table: ObjectTable, scene: str, obj: str, rows: list[ObjectPoint]) -> int:
    return table.replace_scene(
        scene, obj, rows, scene_path=f"/data/{scene}.tif", model_id="m@1", threshold_floor=0.1,
        locator_id="loc", span_px=512,
    )


@pytest.fixture()
def table(tmp_path: Path) -> ObjectTable:
    return ObjectTable(ChipIndex(tmp_path / "db"))


def test_replace_scene_is_idempotent_and_replaces_only_that_scene_and_object(table: ObjectTable) -> None:
    assert table.count_rows() == 0 and table.objects() == {} and table.in_aoi("airplane", box(0, 0, 1, 1)) == []
    assert write(table, "s1", "airplane", points(5)) == 5
    write(table, "s1", "airplane", points(5))
    assert table.count_rows() == 5
    write(table, "s2", "airplane", points(2, x0=20.0))
    write(table, "s1", "ship", points(3))
    assert table.count_rows() == 10
    write(table, "s1", "airplane", points(2))  # fewer now: the others are gone
    assert table.count_rows("object = 'airplane' AND scene_id = 's1'") == 2
    assert table.count_rows() == 7
    write(table, "s1", "ship", [])  # nothing found any more: still recorded as searched
    assert table.count_rows("object = 'ship'") == 0
    located = table.located("ship")
    assert set(located) == {"s1"} and located["s1"].objects == 0 and located["s1"].span_px == 512
    assert set(table.located("airplane", ["s1", "s2", "s3"])) == {"s1", "s2"}
    assert table.objects() == {"airplane": 4, "ship": 0}
    db = table.index.db
    assert {OBJECTS_TABLE, LOCATED_TABLE} <= set(db.table_names())


def test_ids_are_deterministic_from_scene_object_and_rounded_position() -> None:
    assert object_id_for("s", "ship", 10.01, 20.04) == object_id_for("s", "ship", 10.04, 19.98)
    assert object_id_for("s", "ship", 10.0, 20.0) != object_id_for("s", "airplane", 10.0, 20.0)
    assert object_id_for("s", "ship", 10.0, 20.0) != object_id_for("t", "ship", 10.0, 20.0)


def test_in_aoi_is_exact_and_filters_by_object_and_score(table: ObjectTable) -> None:
    rows = points(9)
    write(table, "s1", "airplane", rows)
    write(table, "s1", "ship", rows)
    # a triangle whose bounding box holds every point but which covers only those below its diagonal edge
    triangle = Polygon([(9.9995, 49.9995), (10.0105, 49.9995), (10.0105, 50.0105)])
    inside = [p for p in rows if triangle.covers(Point(p.lon, p.lat))]
    assert 0 < len(inside) < len(rows)
    found = table.in_aoi("airplane", triangle)
    assert [(o.lon, o.lat) for o in found] == [(p.lon, p.lat) for p in inside]
    assert all(o.object == "airplane" and o.scene_path == "/data/s1.tif" and o.model_id == "m@1" for o in found)
    assert [o.score for o in found] == sorted((o.score for o in found), reverse=True)
    high = table.in_aoi("airplane", triangle, min_score=0.55)
    assert high and all(o.score >= 0.55 for o in high) and len(high) < len(found)
    assert table.in_aoi("car", triangle) == []
    assert table.in_aoi("airplane", box(0, 0, 1, 1)) == []
