"""Change between two dates: a real scene and a copy in another CRS with planted patches of other scenes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin
from shapely.geometry import box

from pipelines.services.change import (
    Direction,
    capture_date,
    compare_dates,
    date_groups,
    robust_z,
)
from remoteclip.errors import InputError
from tests.change_pair import PlantedPair, planted_share, write_planted_pair


@pytest.fixture(scope="module")
def planted(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> PlantedPair:
    """The Joplin tile and its planted copy in EPSG:4326."""
    return write_planted_pair(shared_data, tmp_path_factory.mktemp("change"))


def test_planted_cells_rank_first(planted: PlantedPair, default_model: object) -> None:
    progress: list[tuple[int, int]] = []
    report = compare_dates(
        [planted.before], [planted.after], default_model, on_progress=lambda *p: progress.append(p)
    )
    assert report.direction is Direction.ANY and report.query is None
    shares = [max(planted_share(c.footprint, planted.harbor), planted_share(c.footprint, planted.forest)) for c in report.cells]
    changed = sum(share >= 0.5 for share in shares)
    assert changed >= 4
    # every cell at least half planted ranks above every cell left as it was
    untouched = [i for i, share in enumerate(shares) if share == 0]
    assert untouched and max(i for i, share in enumerate(shares) if share >= 0.5) < min(untouched)
    assert report.cells[0].distance > 10 * max(report.cells[i].distance for i in untouched)
    assert all(report.cells[i].distance < 0.05 for i in untouched)  # resampled across CRSs, yet the same
    assert progress[-1] == (len(report.cells) + report.uncovered, len(report.cells) + report.uncovered)
    assert report.cells[0].before_jpeg[:2] == report.cells[0].after_jpeg[:2] == b"\xff\xd8"


def test_a_query_prefers_the_planted_kind(planted: PlantedPair, default_model: object) -> None:
    for query, wanted, other in (
        ("ships in a harbor", planted.harbor, planted.forest),
        # "a forest", not "trees and forest": the shipped heads move that wording away from this drone forest
        # (model card, "Behaviour that changed with these heads")
        ("a forest", planted.forest, planted.harbor),
    ):
        report = compare_dates([planted.before], [planted.after], default_model, query=query)
        assert report.direction is Direction.APPEARED
        best = report.cells[0]
        assert planted_share(best.footprint, wanted) >= 0.5, query
        toward = {id(c): c.toward_query for c in report.cells}
        best_other = max(toward[id(c)] for c in report.cells if planted_share(c.footprint, other) >= 0.5)
        assert best.toward_query is not None and best.toward_query > best_other, query
        # what disappeared is the same score turned round: the planted kind ranks last
        gone = compare_dates(
            [planted.before], [planted.after], default_model, query=query, direction=Direction.DISAPPEARED
        )
        assert (gone.cells[-1].row, gone.cells[-1].col) == (best.row, best.col)


def test_the_export_lists_the_cells_in_rank_order(planted: PlantedPair, default_model: object) -> None:
    aoi = planted.harbor.buffer(0.0005)
    report = compare_dates([planted.before], [planted.after], default_model, aoi=aoi)
    assert all(cell.footprint.intersects(aoi) for cell in report.cells)
    collection = json.loads(report.table().encode("geojson", report.context(aoi)))
    ranks = [f["properties"]["rank"] for f in collection["features"]]
    assert ranks == list(range(1, len(report.cells) + 1))
    assert collection["metadata"]["query"] == "any change"
    scores = [f["properties"]["score"] for f in collection["features"]]
    assert scores == sorted(scores, reverse=True)


def test_bad_pairs_are_refused_with_a_reason(planted: PlantedPair, default_model: object, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.tif"
    with rasterio.open(
        elsewhere, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs="EPSG:32631",
        transform=from_origin(500_000, 5_000_000, 1.0, 1.0),
    ) as dst:
        dst.write(np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8))
    with pytest.raises(InputError, match="do not overlap"):
        compare_dates([planted.before], [elsewhere], default_model)
    plain = tmp_path / "photo.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(plain)
    with pytest.raises(InputError, match="no georeference"):
        compare_dates([planted.before], [plain], default_model)
    with pytest.raises(InputError, match="needs a query"):
        compare_dates([planted.before], [planted.after], default_model, direction=Direction.APPEARED)
    with pytest.raises(InputError, match="outside"):
        compare_dates([planted.before], [planted.after], default_model, aoi=box(0, 0, 1, 1))


def test_robust_z_ignores_the_outliers_it_measures() -> None:
    values = np.array([0.1, 0.11, 0.09, 0.1, 0.105, 0.095, 0.9])
    z = robust_z(values)
    assert z[-1] > 20 and abs(z[:-1]).max() < 2
    assert np.allclose(robust_z(np.ones(4)), 0)


def test_dates_come_from_tags_names_or_folders(tmp_path: Path) -> None:
    def scene(path: Path, tags: dict[str, str] | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(
            path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", crs="EPSG:32615",
            transform=from_origin(0, 0, 1, 1),
        ) as dst:
            dst.write(np.zeros((1, 8, 8), np.uint8))
            dst.update_tags(**(tags or {}))
        return path

    tagged = scene(tmp_path / "a.tif", {"TIFFTAG_DATETIME": "2011:05:23 10:00:00"})
    named = scene(tmp_path / "joplin_20110520_rgb.tif")
    assert capture_date(tagged) == date(2011, 5, 23)
    assert capture_date(named) == date(2011, 5, 20)
    assert capture_date(scene(tmp_path / "tile_337-9136.tif")) is None
    assert [name for name, _ in date_groups([tagged, named])] == ["2011-05-20", "2011-05-23"]
    later, earlier = scene(tmp_path / "post" / "a.tif"), scene(tmp_path / "pre" / "b.tif")
    groups = date_groups([later, earlier])
    assert [name for name, _ in groups] == ["pre", "post"]
    assert [s.path for s in groups[0][1]] == [earlier]
