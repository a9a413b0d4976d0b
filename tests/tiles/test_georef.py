"""tiles.georef footprints, bboxes and GSD against independent computations, and tiles.aoi parsing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box, shape
from shapely.ops import unary_union

from remoteclip.errors import InputError
from tiles.aoi import aoi_from_geojson, bbox_where, load_aoi
from tiles.georef import DENSIFY_PTS, chip_georef
from tiles.grid import ChipSpec, ChipWindow, iter_windows

SCENES = [  # one per CRS family: UTM N/S, EPSG:4326, EPSG:3395, RD New
    "rasterio/RGB.byte.tif",
    "xview2_joplin/post/tile_31500-5137.tif",
    "xview2_joplin/pre/tile_337-9136.tif",
    "deepforest/5b90f92da0d7280005fab355_4310.tif",
    "deepforest/test_tiled.tif",
    "solaris_spacenet/pan1.tif",
    "riotiler_hro/pix4d_alpha_nodata.tif",
]
WGS84_A = 6378137.0
# rasterio.windows.bounds still uses Affine's `*`
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


@pytest.mark.parametrize("name", SCENES)
def test_chip_bboxes_match_rasterio_transform_bounds(shared_data: Path, name: str) -> None:
    with rasterio.open(shared_data / "scenes" / name) as src:
        for w in iter_windows(src.width, src.height, ChipSpec(levels=(1, 2))):
            geo = chip_georef(w, src.transform, src.crs)
            expected = transform_bounds(
                src.crs, "EPSG:4326", *window_bounds(w.window, src.transform), densify_pts=DENSIFY_PTS
            )
            np.testing.assert_allclose(geo.bbox, expected, rtol=0, atol=1e-9)
            assert geo.footprint.is_valid and not geo.pixel_space


def test_rgb_byte_extent_matches_the_rasterio_docs(shared_data: Path) -> None:
    """``rio bounds --geographic RGB.byte.tif`` as printed in rasterio's documentation."""
    with rasterio.open(shared_data / "scenes/rasterio/RGB.byte.tif") as src:
        boxes = [
            chip_georef(w, src.transform, src.crs).bbox
            for w in iter_windows(src.width, src.height, ChipSpec())
        ]
    extent = (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
    docs = (-78.95864996545055, 23.564991210854686, -76.57492370013823, 25.550873767433984)
    np.testing.assert_allclose(extent, docs, rtol=0, atol=1e-8)


def test_epsg4326_footprint_corners_are_the_geotransform_corners(shared_data: Path) -> None:
    with rasterio.open(shared_data / "scenes/xview2_joplin/post/tile_31500-5137.tif") as src:
        w = ChipWindow(level=1, col_off=256, row_off=512, width=256, height=256, span_px=256)
        geo = chip_georef(w, src.transform, src.crs)
        left, top = src.transform @ (256, 512)
        right, bottom = src.transform @ (512, 768)
    assert geo.bbox == pytest.approx((left, bottom, right, top), abs=1e-12)
    coords = np.array(geo.footprint.exterior.coords)
    assert len(coords) == 4 * (DENSIFY_PTS + 1) + 1
    assert coords[0] == pytest.approx((left, top), abs=1e-12)
    assert geo.centroid == pytest.approx(((left + right) / 2, (top + bottom) / 2), abs=1e-9)


def test_world_mercator_longitudes_by_hand(shared_data: Path) -> None:
    """EPSG:3395 longitude is x / a radians; the GSD shrinks by cos(latitude) from the nominal 0.1 m."""
    with rasterio.open(shared_data / "scenes/deepforest/5b90f92da0d7280005fab355_4310.tif") as src:
        w = ChipWindow(level=1, col_off=0, row_off=0, width=256, height=256, span_px=256)
        geo = chip_georef(w, src.transform, src.crs)
        x_left, _ = src.transform @ (0, 0)
        x_right, _ = src.transform @ (256, 0)
        nominal = src.res[0]
    assert geo.bbox[0] == pytest.approx(math.degrees(x_left / WGS84_A), abs=1e-10)
    assert geo.bbox[2] == pytest.approx(math.degrees(x_right / WGS84_A), abs=1e-10)
    lat = geo.centroid[1]
    assert geo.gsd_m == pytest.approx(nominal * math.cos(math.radians(lat)), rel=5e-3)


@pytest.mark.parametrize(
    ("name", "gsd_m"),
    [
        ("solaris_spacenet/pan1.tif", 0.5),
        ("xview2_joplin/pre/tile_337-9136.tif", 0.6),
        ("xview2_joplin/post/tile_31500-5137.tif", 0.6),
    ],
)
def test_gsd_in_metres_scales_with_the_level(shared_data: Path, name: str, gsd_m: float) -> None:
    with rasterio.open(shared_data / "scenes" / name) as src:
        level1 = chip_georef(ChipWindow(1, 0, 0, 256, 256, 256), src.transform, src.crs)
        level2 = chip_georef(ChipWindow(2, 0, 0, 512, 512, 512), src.transform, src.crs)
    assert level1.gsd_m == pytest.approx(gsd_m, rel=0.05)
    assert level2.gsd_m == pytest.approx(2 * level1.gsd_m, rel=1e-3)


def test_pixel_space_footprint_is_the_window() -> None:
    geo = chip_georef(ChipWindow(1, 32, 16, 8, 8, 16), rasterio.Affine.identity(), None)
    assert geo.pixel_space and geo.gsd_m is None
    assert geo.bbox == (32.0, 16.0, 40.0, 24.0)
    assert geo.footprint.equals(box(32, 16, 40, 24))


def test_aoi_union_of_features(tmp_path: Path) -> None:
    features = [
        {"type": "Feature", "properties": {}, "geometry": box(x, 0, x + 1, 1).__geo_interface__}
        for x in (0, 2)
    ]
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    aoi = load_aoi(path)
    assert aoi.area == pytest.approx(2.0)
    assert aoi.bounds == (0.0, 0.0, 3.0, 1.0)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"type": "Point", "coordinates": [1, 2]}, "no area"),
        ({"type": "Polygon", "coordinates": "nonsense"}, "not valid GeoJSON"),
        ({"type": "FeatureCollection", "features": []}, "no area"),
        (box(500000, 4000000, 501000, 4001000).__geo_interface__, "reproject the GeoJSON to EPSG:4326"),
    ],
)
def test_bad_aois_are_refused(obj: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        aoi_from_geojson(obj)


def test_unreadable_aoi_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "aoi.geojson"
    path.write_text("{not json")
    with pytest.raises(InputError, match="aoi.geojson"):
        load_aoi(path)


def test_bbox_where_is_an_intersection_test() -> None:
    assert bbox_where((1.0, 2.0, 3.0, 4.0)) == (
        "maxx >= 1.0 AND minx <= 3.0 AND maxy >= 2.0 AND miny <= 4.0 AND NOT pixel_space"
    )
    # with the largest chip's size, minx/miny get ranges an index can answer; the same rows match
    assert bbox_where((1.0, 2.0, 3.0, 4.0), (0.5, 0.25)) == (
        "minx BETWEEN 0.5 AND 3.0 AND miny BETWEEN 1.75 AND 4.0 "
        "AND maxx >= 1.0 AND maxy >= 2.0 AND NOT pixel_space"
    )


def test_aoi_declared_in_utm_is_reprojected(shared_data: Path) -> None:
    """solaris' building labels carry a legacy ``crs`` member (EPSG:32616), as GDAL writes them."""
    path = shared_data / "scenes/solaris_spacenet/geotiff_labels.geojson"
    aoi = load_aoi(path)
    features = json.loads(path.read_text())["features"]
    by_gdal = unary_union([shape(transform_geom("EPSG:32616", "EPSG:4326", f["geometry"])) for f in features])
    np.testing.assert_allclose(aoi.bounds, by_gdal.bounds, atol=1e-8)
    assert aoi.symmetric_difference(by_gdal).area < 1e-6 * aoi.area
    with rasterio.open(shared_data / "scenes/solaris_spacenet/sample_geotiff.tif") as src:
        scene = box(*transform_bounds(src.crs, "EPSG:4326", *src.bounds))
    assert scene.contains(aoi)


def test_aoi_with_an_unknown_crs_is_refused() -> None:
    obj = {
        **box(0, 0, 1, 1).__geo_interface__,
        "crs": {"type": "name", "properties": {"name": "EPSG:999999"}},
    }
    with pytest.raises(InputError, match="unknown CRS 'EPSG:999999'"):
        aoi_from_geojson(obj)


def _geotiff(path: Path, crs: str, transform: object, size: int = 64) -> Path:
    data = np.random.default_rng(0).integers(0, 255, (3, size, size), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=crs,
                       transform=transform) as dst:
        dst.write(data)
    return path


def _whole(size: int = 64) -> ChipWindow:
    return ChipWindow(1, 0, 0, size, size, size)


@pytest.mark.parametrize(
    ("crs", "transform"),
    [
        # degrees past 180: 179.95 to 180.05 east
        ("EPSG:4326", rasterio.transform.from_origin(179.95, -16.0, 0.1 / 64, 0.1 / 64)),
        # UTM zone 60 south over Fiji's antimeridian: longitudes jump from 179.9x to -179.9x
        ("EPSG:32760", rasterio.transform.from_origin(815_000.0, 8_230_000.0, 200.0, 200.0)),
    ],
)
def test_a_chip_across_the_antimeridian_is_split_there(tmp_path: Path, crs: str, transform: object) -> None:
    from tiles.reader import open_scene

    with open_scene(_geotiff(tmp_path / "across.tif", crs, transform)) as scene:
        georef = chip_georef(_whole(), scene.transform, scene.crs)
    footprint = georef.footprint
    assert footprint.is_valid and footprint.geom_type == "MultiPolygon" and len(footprint.geoms) == 2
    minx, miny, maxx, maxy = georef.bbox
    assert minx >= -180 and maxx <= 180 and maxx - minx > 359  # the parts touch both sides of the map
    east, west = sorted(footprint.geoms, key=lambda part: -part.bounds[0])
    assert east.bounds[2] == pytest.approx(180) and west.bounds[0] == pytest.approx(-180)
    assert footprint.area < 0.1  # a small chip, not a band round the globe
    assert abs(georef.centroid[0]) > 179  # the centroid stays by the antimeridian, in [-180, 180)
    # an AOI just west of -180 + epsilon finds it, through the bbox prefilter and the exact test
    aoi = box(-179.999, miny, -179.99, maxy)
    assert footprint.intersects(aoi)


@pytest.mark.parametrize(
    ("crs", "pole"), [("EPSG:3031", -90.0), ("EPSG:3413", 90.0)]  # Antarctic and Arctic polar stereographic
)
def test_a_chip_over_a_pole_is_closed_along_the_pole(tmp_path: Path, crs: str, pole: float) -> None:
    from tiles.reader import open_scene

    # a 6.4 km chip centred on the pole
    transform = rasterio.transform.from_origin(-3200.0, 3200.0, 100.0, 100.0)
    with open_scene(_geotiff(tmp_path / "pole.tif", crs, transform)) as scene:
        georef = chip_georef(_whole(), scene.transform, scene.crs)
    footprint = georef.footprint
    assert footprint.is_valid
    minx, miny, maxx, maxy = georef.bbox
    assert (minx, maxx) == (pytest.approx(-180), pytest.approx(180))
    assert (miny if pole < 0 else maxy) == pole and 89.9 < abs(maxy if pole < 0 else miny) < 90
    for lon in (-135.0, -45.0, 45.0, 135.0):  # 1 km from the pole in every direction: inside
        assert footprint.contains(shape({"type": "Point", "coordinates": [lon, pole - math.copysign(0.009, pole)]}))
    far = shape({"type": "Point", "coordinates": [0.0, pole - math.copysign(0.5, pole)]})
    assert not footprint.contains(far)
