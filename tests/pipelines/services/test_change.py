"""Change between two dates: a real scene and a copy in another CRS with planted patches of other scenes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject, transform_geom
from rasterio.windows import Window
from shapely.geometry import Polygon, box

from pipelines.services.change import (
    Direction,
    capture_date,
    compare_dates,
    date_groups,
    robust_z,
)
from remoteclip.errors import InputError

#: the before date: a real 0.6 m residential tile of Joplin (EPSG:26915), 1024 x 1024
BEFORE = "scenes/xview2_joplin/pre/tile_337-9136.tif"
#: (row, col) of the top-left corner of each 512 x 512 patch planted in the after date
HARBOR_AT = (64, 64)
FOREST_AT = (448, 512)
PATCH_PX = 512


@dataclass(frozen=True)
class PlantedPair:
    """The two dates and where (EPSG:4326) the planted harbor and forest lie."""

    before: Path
    after: Path
    harbor: Polygon
    forest: Polygon


def _patch_outline(transform: rasterio.Affine, corner: tuple[int, int], crs: str) -> Polygon:
    """The EPSG:4326 outline of a ``PATCH_PX`` square at (row, col) ``corner`` of a scene."""
    row, col = corner
    x0, y0 = transform @ (col, row)
    x1, y1 = transform @ (col + PATCH_PX, row + PATCH_PX)
    return Polygon(transform_geom(crs, "EPSG:4326", box(x0, y1, x1, y0).__geo_interface__)["coordinates"][0])


@pytest.fixture(scope="module")
def planted(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> PlantedPair:
    """The Joplin tile, and a copy with a DOTA harbor and a drone forest pasted in, warped to EPSG:4326."""
    harbor = np.asarray(Image.open(shared_data / "dota/dota_devkit/images/P0706.png").convert("RGB"))
    harbor = harbor[200 : 200 + PATCH_PX, 200 : 200 + PATCH_PX]
    with rasterio.open(shared_data / "scenes/deepforest/5dded5bc0140b80006d2e565_23.tif") as drone:
        forest = drone.read((1, 2, 3), window=Window(512, 512, 1024, 1024), out_shape=(3, PATCH_PX, PATCH_PX))
    before = shared_data / BEFORE
    with rasterio.open(before) as src:
        data = src.read()
        for (row, col), patch in ((HARBOR_AT, np.moveaxis(harbor, -1, 0)), (FOREST_AT, forest)):
            data[:, row : row + PATCH_PX, col : col + PATCH_PX] = patch
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds
        )
        warped = np.zeros((3, height, width), dtype=np.uint8)
        reproject(data, warped, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs="EPSG:4326", resampling=Resampling.bilinear)
        profile = dict(src.profile, crs="EPSG:4326", transform=transform, width=width, height=height)
        outlines = [_patch_outline(src.transform, corner, src.crs) for corner in (HARBOR_AT, FOREST_AT)]
    after = tmp_path_factory.mktemp("change") / "after_4326.tif"
    with rasterio.open(after, "w", **profile) as dst:
        dst.write(warped)
    return PlantedPair(before, after, *outlines)


def _share(cell_footprint: Polygon, patch: Polygon) -> float:
    return cell_footprint.intersection(patch).area / cell_footprint.area


def test_planted_cells_rank_first(planted: PlantedPair, default_model: object) -> None:
    progress: list[tuple[int, int]] = []
    report = compare_dates(
        [planted.before], [planted.after], default_model, on_progress=lambda *p: progress.append(p)
    )
    assert report.direction is Direction.ANY and report.query is None
    planted_share = [max(_share(c.footprint, planted.harbor), _share(c.footprint, planted.forest)) for c in report.cells]
    changed = sum(share >= 0.5 for share in planted_share)
    assert changed >= 4
    # every cell at least half planted ranks above every cell left as it was
    untouched = [i for i, share in enumerate(planted_share) if share == 0]
    assert untouched and max(i for i, s in enumerate(planted_share) if s >= 0.5) < min(untouched)
    assert report.cells[0].distance > 10 * max(report.cells[i].distance for i in untouched)
    assert all(report.cells[i].distance < 0.05 for i in untouched)  # resampled across CRSs, yet the same
    assert progress[-1] == (len(report.cells) + report.uncovered, len(report.cells) + report.uncovered)
    assert report.cells[0].before_jpeg[:2] == report.cells[0].after_jpeg[:2] == b"\xff\xd8"


def test_a_query_prefers_the_planted_kind(planted: PlantedPair, default_model: object) -> None:
    for query, wanted, other in (
        ("ships in a harbor", planted.harbor, planted.forest),
        ("trees and forest", planted.forest, planted.harbor),
    ):
        report = compare_dates([planted.before], [planted.after], default_model, query=query)
        assert report.direction is Direction.APPEARED
        best = report.cells[0]
        assert _share(best.footprint, wanted) >= 0.5, query
        toward = {id(c): c.toward_query for c in report.cells}
        best_other = max(toward[id(c)] for c in report.cells if _share(c.footprint, other) >= 0.5)
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
