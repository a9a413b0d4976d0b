"""pipelines.services.export: GeoJSON, CSV and GeoPackage files of hits and chips, read back as a GIS would."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from shapely.geometry import box

from pipelines.services.export import (
    APP_VERSION,
    FORMATS,
    HIT_COLUMNS,
    ExportContext,
    chips_table,
    file_stem,
    hits_table,
)
from remoteclip.errors import InputError
from tests.app_data import make_hit
from tiles.index.chip_index import Hit

CONTEXT_COLUMNS = ["query", "model_id", "exported_at", "threshold", "aoi_wkt", "app_version"]


@pytest.fixture
def hits() -> list[Hit]:
    """A georeferenced hit, and one of an image without a CRS whose window starts at (1024, 256)."""
    flat = dataclasses.replace(make_hit(1024, 256, 256, 0.8, pixel_space=True), col_off=1024, row_off=256)
    return [make_hit(0.0, 0.0, 0.01, 0.9), flat]


@pytest.fixture
def context() -> ExportContext:
    return ExportContext.now("ships in a harbor", "tiny@0", threshold=0.25, aoi=box(-1, -1, 1, 1))


def written(tmp_path: Path, data: bytes, suffix: str) -> Path:
    path = tmp_path / f"export.{suffix}"
    path.write_bytes(data)
    return path


def test_context_records_the_query_model_time_and_aoi(context: ExportContext) -> None:
    assert datetime.fromisoformat(context.exported_at).utcoffset() == UTC.utcoffset(None)
    assert shapely.from_wkt(context.aoi_wkt).equals(box(-1, -1, 1, 1))
    assert list(context.as_dict()) == CONTEXT_COLUMNS
    assert context.as_dict()["threshold"] == 0.25 and context.app_version == APP_VERSION != ""


def test_geojson_places_only_georeferenced_hits(
    hits: list[Hit], context: ExportContext, tmp_path: Path
) -> None:
    collection = hits_table(hits).geojson(context)
    assert collection["metadata"] == context.as_dict()
    located, flat = collection["features"]
    assert shapely.geometry.shape(located["geometry"]).equals(hits[0].footprint)
    assert located["properties"]["centroid_lon"] == pytest.approx(0.005)
    assert flat["geometry"] is None and flat["id"] == hits[1].chip_id
    assert flat["properties"]["centroid_lon"] is None and flat["properties"]["centroid_lat"] is None
    assert (flat["properties"]["centroid_col"], flat["properties"]["centroid_row"]) == (1152, 384)
    assert list(flat["properties"]) == list(HIT_COLUMNS)

    frame = gpd.read_file(written(tmp_path, hits_table(hits).encode("geojson", context), "geojson"))
    assert frame.crs.to_epsg() == 4326 and list(frame["rank"]) == [1, 2]
    assert frame.geometry[0].equals(hits[0].footprint) and frame.geometry[1] is None
    assert json.loads(hits_table(hits).encode("geojson", context)) == json.loads(json.dumps(collection))
    assert "metadata" not in hits_table(hits).geojson()  # a map layer


def test_csv_repeats_the_context_and_leaves_pixel_lonlat_empty(
    hits: list[Hit], context: ExportContext, tmp_path: Path
) -> None:
    text = hits_table(hits).csv(context)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [*HIT_COLUMNS, "footprint_wkt", *CONTEXT_COLUMNS]
    located, flat = rows
    assert float(located["centroid_lon"]) == pytest.approx(0.005)
    assert shapely.from_wkt(located["footprint_wkt"]).equals(hits[0].footprint)
    assert flat["centroid_lon"] == flat["centroid_lat"] == flat["footprint_wkt"] == flat["gsd_m"] == ""
    assert (flat["col_off"], flat["row_off"], flat["centroid_col"], flat["centroid_row"]) == (
        "1024",
        "256",
        "1152.0",
        "384.0",
    )
    for row in rows:
        assert row["query"] == "ships in a harbor" and row["model_id"] == "tiny@0"
        assert row["exported_at"] == context.exported_at and row["threshold"] == "0.25"

    # as GDAL (and so QGIS) reads it: the WKT column is the geometry, empty for the pixel-space row
    path = written(tmp_path, text.encode(), "csv")
    frame = pyogrio.read_dataframe(path, GEOM_POSSIBLE_NAMES="footprint_wkt", KEEP_GEOM_COLUMNS="NO")
    assert frame.geometry[0].equals(hits[0].footprint) and frame.geometry[1] is None
    assert list(frame["query"]) == ["ships in a harbor"] * 2


def test_geopackage_keeps_pixel_space_rows_off_the_map(
    hits: list[Hit], context: ExportContext, tmp_path: Path
) -> None:
    path = written(tmp_path, hits_table(hits).encode("gpkg", context), "gpkg")
    layers = dict(pyogrio.list_layers(path).tolist())
    assert layers == {"hits": "Polygon", "hits_pixel_space": None, "metadata": None}

    located = gpd.read_file(path, layer="hits")
    assert located.crs.to_epsg() == 4326 and len(located) == 1
    assert located.geometry[0].equals(hits[0].footprint)
    assert located["centroid_lon"][0] == pytest.approx(0.005) and located["chip_id"][0] == hits[0].chip_id
    assert list(located.columns) == [*HIT_COLUMNS, *CONTEXT_COLUMNS, "geometry"]

    flat = pyogrio.read_dataframe(path, layer="hits_pixel_space")
    assert "geometry" not in flat.columns and len(flat) == 1
    assert flat["centroid_lon"].isna().all() and flat["centroid_lat"].isna().all()
    assert (flat["centroid_col"][0], flat["centroid_row"][0]) == (1152, 384)
    assert flat["query"][0] == "ships in a harbor" and flat["model_id"][0] == "tiny@0"

    meta = pyogrio.read_dataframe(path, layer="metadata")
    assert dict(zip(meta["key"], meta["value"], strict=True))["exported_at"] == context.exported_at
    info = pyogrio.read_info(path, layer="hits")
    assert info["layer_metadata"]["query"] == "ships in a harbor"
    assert info["dataset_metadata"]["model_id"] == "tiny@0"


def test_geopackage_of_georeferenced_rows_only_has_no_pixel_layer(tmp_path: Path) -> None:
    chips = [make_hit(0, 0, 0.01, 0.9), make_hit(0.01, 0, 0.01, 0.8)]
    table = chips_table("chip_counts", chips, [{"count": 3}, {"count": 0}], ("count",))
    path = written(tmp_path, table.encode("gpkg", ExportContext.now("cars", "tiny@0")), "gpkg")
    assert dict(pyogrio.list_layers(path).tolist()) == {"chip_counts": "Polygon", "metadata": None}
    frame = gpd.read_file(path, layer="chip_counts")
    assert list(frame["count"]) == [3, 0] and frame["threshold"].isna().all()
    assert list(frame.columns[:3]) == ["count", "scene", "level"]


def test_an_empty_result_still_makes_a_valid_file(context: ExportContext, tmp_path: Path) -> None:
    table = hits_table([])
    path = written(tmp_path, table.encode("gpkg", context), "gpkg")
    assert gpd.read_file(path, layer="hits").crs.to_epsg() == 4326
    assert table.csv(context).splitlines() == [",".join([*HIT_COLUMNS, "footprint_wkt", *CONTEXT_COLUMNS])]
    assert table.geojson(context)["features"] == []


def test_bad_inputs_are_refused(hits: list[Hit]) -> None:
    with pytest.raises(InputError, match="choose one of geojson, csv, gpkg"):
        hits_table(hits).encode("shp")
    with pytest.raises(InputError, match="one row per chip"):
        chips_table("chips", hits, [{"count": 1}], ("count",))
    assert [f.name for f in FORMATS] == ["geojson", "csv", "gpkg"]


def test_file_stems_are_short_and_safe() -> None:
    assert file_stem("hits", "Ships in a <b>harbor</b>!") == "hits-ships-in-a-b-harbor-b"
    assert file_stem("objects", "") == "objects" and file_stem("", "???") == "export"
    assert len(file_stem("hits", "x" * 200)) <= 60


def test_rated_hits_export_their_relevance_and_match(
    hits: list[Hit], context: ExportContext, tmp_path: Path
) -> None:
    table = hits_table(hits, [(5.61234, "strong"), (3.2, "no match")])
    rows = list(csv.DictReader(io.StringIO(table.csv(context))))
    assert list(rows[0])[:4] == ["rank", "score", "relevance", "match"]
    assert [(r["relevance"], r["match"]) for r in rows] == [("5.612", "strong"), ("3.2", "no match")]
    layer = gpd.read_file(written(tmp_path, table.gpkg(context), "gpkg"), layer="hits")
    assert list(layer["match"]) == ["strong"]  # the georeferenced hit; the other is in the pixel-space layer
    with pytest.raises(ValueError):
        hits_table(hits, [(1.0, "weak")])  # one rating per hit
