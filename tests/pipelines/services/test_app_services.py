"""Services behind the app pages: result layers and exports, scene overviews, labels (uploads: test_uploads)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from shapely.geometry import shape

from pipelines.services.classify import mean_probabilities, parse_labels
from pipelines.services.export import chip_feature, hits_csv
from pipelines.services.overview import scene_overview
from pipelines.services.results import focus_bounds, hit_at, merge_regions
from remoteclip.errors import InputError
from tests.app_data import make_hit, write_scene


def write_geotiff(path: Path) -> Path:
    """A GeoTIFF far off its UTM zone's central meridian, so its footprint is rotated in EPSG:4326."""
    return write_scene(path, origin=(220000.0, 2800000.0))


def png_bytes(size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


# --- results


def test_chip_feature_is_plain_geojson() -> None:
    hit = make_hit(0, 0, 0.01, 0.9)
    feature = chip_feature(hit, count=3)
    assert shape(feature["geometry"]).equals(hit.footprint)
    assert feature["properties"] == {"chip_id": hit.chip_id, "scene": "s1.tif", "level": 1, "count": 3}
    json.dumps(feature)


def test_merge_regions_joins_touching_chips_only() -> None:
    # ranked hits: one far away, then three chips in a row that touch (listed out of spatial order)
    hits = [
        make_hit(1, 1, 0.01, 0.95),
        make_hit(0.01, 0, 0.01, 0.9),
        make_hit(0.02, 0, 0.01, 0.6),
        make_hit(0, 0, 0.01, 0.5),
    ]
    regions = merge_regions(hits)["features"]
    assert [r["properties"]["hits"] for r in regions] == [1, 3]
    assert [r["properties"]["best_rank"] for r in regions] == [1, 2]
    strip = shape(regions[1]["geometry"])
    assert strip.area == pytest.approx(0.03 * 0.01, rel=1e-3)
    assert strip.covers(hits[3].footprint.centroid) and regions[1]["properties"]["best_score"] == 0.9


def test_focus_bounds_follow_the_best_hits_scene() -> None:
    hits = [
        make_hit(5, 5, 1, 0.9, pixel_space=True),
        make_hit(0, 0, 0.01, 0.8, scene="a"),
        make_hit(100, 40, 0.01, 0.7, scene="b"),
        make_hit(0.01, 0.01, 0.01, 0.6, scene="a"),
    ]
    assert focus_bounds(hits) == pytest.approx((0, 0, 0.02, 0.02))
    assert focus_bounds(hits[:1]) is None


def test_hits_csv_round_trips() -> None:
    hits = [make_hit(0, 0, 0.01, 0.9), make_hit(5, 5, 10, 0.8, pixel_space=True)]
    rows = list(csv.DictReader(io.StringIO(hits_csv(hits))))
    assert [r["rank"] for r in rows] == ["1", "2"]
    assert float(rows[0]["score"]) == pytest.approx(0.9)
    assert float(rows[0]["centroid_lon"]) == pytest.approx(0.005)
    assert rows[1]["gsd_m"] == ""
    assert rows[0]["footprint_wkt"].startswith("POLYGON")


def test_hit_at_returns_best_ranked_hit_under_click() -> None:
    hits = [make_hit(0, 0, 0.02, 0.9), make_hit(0.01, 0.01, 0.02, 0.8)]
    assert hit_at(hits, 0.015, 0.015) is hits[0]
    assert hit_at(hits, 0.025, 0.025) is hits[1]
    assert hit_at(hits, 3, 3) is None


# --- overviews


def test_scene_overview_lies_on_the_scene(tmp_path: Path) -> None:
    path = write_geotiff(tmp_path / "utm.tif")
    overview = scene_overview(path)
    with rasterio.open(path) as src:
        expected = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    assert overview.bounds == pytest.approx(expected, abs=1e-4)
    image = Image.open(io.BytesIO(overview.image))
    assert image.format == "WEBP" and not overview.pixel_space
    rgba = np.asarray(image.convert("RGBA"))
    assert rgba[0, 0, 3] == 0 and rgba[rgba.shape[0] // 2, rgba.shape[1] // 2, 3] == 255  # clear outside


def test_scene_overview_of_plain_image_is_in_pixel_space(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    path.write_bytes(png_bytes(40))
    overview = scene_overview(path, max_px=16)
    assert overview.pixel_space and overview.bounds == (0.0, -40.0, 40.0, 0.0)
    assert max(Image.open(io.BytesIO(overview.image)).size) == 16


def test_parse_labels_and_scene_probabilities() -> None:
    assert parse_labels(" forest, harbor\nforest ,, airport ") == ["forest", "harbor", "airport"]
    with pytest.raises(InputError, match="at least two"):
        parse_labels("forest")
    scores = mean_probabilities(["a", "b"], np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert [(s.label, round(s.probability, 3)) for s in scores] == [("b", 0.6), ("a", 0.4)]
