"""AOI counting over a real chip index built with the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import box
from shapely.ops import unary_union

from pipelines.services.count import count_in_aoi, inside_fractions
from remoteclip.counting import build_count_captions, estimate_counts
from remoteclip.errors import InputError
from tests.app_data import build_library, make_hit, write_scene
from tiles.index.chip_index import ChipIndex


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> ChipIndex:
    root = tmp_path_factory.mktemp("count")
    return build_library(root / "db", tiny_model, [write_scene(root / "scene.tif")])


def level1_chips(index: ChipIndex) -> list:
    return [c for c in index.search(np.ones(index.dim, np.float32), k=100) if c.level == 1]


def test_inside_fractions_count_overlaps_once() -> None:
    a, b = make_hit(0, 0, 1.0, 0.9), make_hit(0.5, 0, 1.0, 0.8)  # b overlaps half of a
    assert inside_fractions([a, b], box(-5, -5, 5, 5)) == pytest.approx([1.0, 0.5])
    assert inside_fractions([a, b], box(0, 0, 0.25, 1)) == pytest.approx([0.25, 0.0])
    assert inside_fractions([a], box(10, 10, 11, 11)) == [0.0]


def test_count_in_aoi_sums_weighted_chip_counts(library: ChipIndex, tiny_model: object) -> None:
    chips = level1_chips(library)
    whole = unary_union([c.footprint for c in chips])
    minx, miny, maxx, maxy = whole.bounds
    aoi = box(minx, miny, (minx + maxx) / 2, maxy)  # the western half of the scene
    result = count_in_aoi(library, tiny_model, "cars", aoi)

    expected_ids = {c.chip_id for c in chips if c.footprint.intersection(aoi).area > 1e-3 * c.footprint.area}
    assert {c.chip.chip_id for c in result.chips} >= expected_ids
    assert all(c.chip.level == 1 for c in result.chips)
    assert sum(c.inside * c.chip.footprint.area for c in result.chips) == pytest.approx(
        aoi.intersection(whole).area, rel=1e-6
    )

    captions = build_count_captions(tiny_model, "cars")
    own = estimate_counts(
        library.vectors([c.chip.chip_id for c in result.chips]), captions, tiny_model.logit_scale
    )
    assert [c.count for c in result.chips] == [e.count for e in own]
    assert result.total == pytest.approx(sum(c.count * c.inside for c in result.chips))

    assert result.model_id == tiny_model.model_id
    collection = result.table().geojson()
    assert len(collection["features"]) == len(result.chips)
    assert {"count", "expected_count", "inside", "contribution"} <= set(collection["features"][0]["properties"])
    rows = result.rows()
    assert rows[0]["contribution"] == max(r["contribution"] for r in rows)
    by_id = {c.chip.chip_id: c for c in result.chips}
    for row in rows:  # where the chip is first, its hash id last
        chip = by_id[row["chip_id"]].chip
        assert list(row)[:3] == ["scene", "level", "window"] and list(row)[-1] == "chip_id"
        assert row["scene"] == "scene.tif" and row["level"] == 1
        assert row["window"] == f"col {chip.col_off}, row {chip.row_off} · {chip.width}×{chip.height} px"
        assert row["expected_count"] == round(by_id[row["chip_id"]].expected, 2)


def test_count_outside_library_is_zero_and_empty_object_is_refused(
    library: ChipIndex, tiny_model: object
) -> None:
    far = count_in_aoi(library, tiny_model, "ships", box(10, 10, 11, 11))
    assert far.total == 0.0 and far.chips == []
    with pytest.raises(InputError, match="empty"):
        count_in_aoi(library, tiny_model, "  ", box(10, 10, 11, 11))
