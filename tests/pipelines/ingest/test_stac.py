"""``ingest --stac``: a static catalog written with pystac and a STAC API stub, on a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping, shape

from pipelines.cli.main import cli
from pipelines.ingest.stac import pick_asset, stac_scenes
from remoteclip.errors import InputError
from tests.remote_server import RangeServer, started, write_cog
from tiles.index.chip_index import ChipIndex

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")
#: (item id, collection, acquisition time) of the catalog's items, one COG each
ITEMS = [
    ("kampala-2021-01", "drone", datetime(2021, 1, 5, 9, tzinfo=UTC)),
    ("kampala-2021-06", "drone", datetime(2021, 6, 10, 9, tzinfo=UTC)),
    ("kampala-2022-03", "drone", datetime(2022, 3, 1, 9, tzinfo=UTC)),
    ("other-2021-06", "satellite", datetime(2021, 6, 11, 9, tzinfo=UTC)),
]
CHIP_ARGS = ["--chip-size", "256", "--workers", "0"]


def make_item(item_id: str, collection: str, when: datetime, cog: Path, href: str) -> pystac.Item:
    """An item of ``cog`` (its footprint), whose ``visual`` asset is ``href``."""
    with rasterio.open(cog) as src:
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    item = pystac.Item(item_id, mapping(box(*bounds)), list(bounds), when, {}, collection=collection)
    item.add_asset("visual", pystac.Asset(href, media_type=pystac.MediaType.COG, roles=["visual"]))
    item.add_asset("thumbnail", pystac.Asset(href.replace(".tif", ".png"), media_type=pystac.MediaType.PNG))
    return item


@pytest.fixture
def served(tmp_path: Path):
    """COGs of the items served over HTTP, a static catalog of them in ``catalog/``, and a STAC API at /api."""
    root = tmp_path / "served"
    root.mkdir()
    server = RangeServer(root)
    items = []
    for i, (item_id, collection, when) in enumerate(ITEMS):
        cog = write_cog(root / f"{item_id}.tif", seed=i, side_px=512, west=500_000.0 + 300 * i)
        items.append(make_item(item_id, collection, when, cog, f"{server.url}/{item_id}.tif"))
    catalog = pystac.Catalog("kampala", "Test scenes")
    for name in ("drone", "satellite"):
        members = [item for item in items if item.collection_id == name]
        extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                               pystac.TemporalExtent([[None, None]]))
        collection = pystac.Collection(name, f"{name} scenes", extent)
        collection.add_items(members)
        catalog.add_child(collection)
    catalog.normalize_hrefs(str(root / "catalog"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    add_stac_api(server, [item.to_dict() for item in items])
    with started(server):
        yield server, root / "catalog" / "catalog.json"


def add_stac_api(server: RangeServer, items: list[dict[str, Any]]) -> None:
    """A STAC API stub at /api: landing page, conformance and an item search (collections, datetime,
    intersects, limit) over ``items``."""
    api = f"{server.url}/api"
    landing = {
        "type": "Catalog", "id": "api", "description": "stub", "stac_version": "1.0.0",
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [
            {"rel": "self", "href": api, "type": "application/json"},
            {"rel": "root", "href": api, "type": "application/json"},
            {"rel": "search", "href": f"{api}/search", "type": "application/geo+json", "method": "POST"},
        ],
    }

    def reply(body: dict[str, Any]) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(body).encode()

    def search(query: dict[str, list[str]], payload: Any) -> tuple[int, str, bytes]:
        asked = payload or {key: values[0] for key, values in query.items()}
        found = []
        for item in items:
            if asked.get("collections") and item["collection"] not in asked["collections"]:
                continue
            if asked.get("intersects") and not shape(item["geometry"]).intersects(shape(asked["intersects"])):
                continue
            if asked.get("datetime"):
                start, _, end = asked["datetime"].partition("/")
                when = datetime.fromisoformat(item["properties"]["datetime"])
                if (start not in ("", "..") and when < datetime.fromisoformat(start)) or (
                        end not in ("", "..") and when > datetime.fromisoformat(end)):
                    continue
            found.append({**item, "links": [{"rel": "self", "href": f"{api}/items/{item['id']}"}]})
        return reply({"type": "FeatureCollection", "features": found[: int(asked.get("limit") or 100)],
                      "links": []})

    server.routes["/api"] = lambda query, payload: reply(landing)
    server.routes["/api/conformance"] = lambda query, payload: reply({"conformsTo": landing["conformsTo"]})
    server.routes["/api/search"] = search


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_a_static_catalog_is_walked_filtered_and_skipped_on_a_rerun(
    tmp_path: Path, served: tuple[RangeServer, Path], tiny_checkpoint: Path
) -> None:
    server, catalog = served
    db = str(tmp_path / "db")
    args = ["ingest", "--stac", str(catalog), "--collection", "drone", "--datetime", "2021", "--db", db,
            "--model", str(tiny_checkpoint), *CHIP_ARGS]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    index = ChipIndex(db)
    stored = {scene.scene_path for scene in index.scenes()}
    assert stored == {f"{server.url}/kampala-2021-01.tif", f"{server.url}/kampala-2021-06.tif"}
    chips = [chip for scene in index.scenes()
             for chip in index.get(index.stored_windows(scene.scene_id)["chip_id"].to_pylist())]
    june = {(c.item_id, c.collection, c.datetime, c.item_url) for c in chips if "2021-06" in c.scene_path}
    assert june == {("kampala-2021-06", "drone", ITEMS[1][2],
                     str(catalog.parent / "drone" / "kampala-2021-06" / "kampala-2021-06.json"))}

    found = invoke("search", "anything", "--db", db, "--model", str(tiny_checkpoint), "--datetime", "2021-06",
                   "--format", "json", "-k", "50")
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert hits and {hit["item"]["id"] for hit in hits} == {"kampala-2021-06"}
    assert hits[0]["item"]["datetime"] == "2021-06-10T09:00:00+00:00"

    fetched = server.bytes_sent("kampala-2021-01.tif")
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert "0 scenes" in again.stdout and "2 scenes already done" in again.stdout
    assert server.bytes_sent("kampala-2021-01.tif") == fetched


def test_a_stac_api_is_searched_on_the_server(
    tmp_path: Path, served: tuple[RangeServer, Path], tiny_checkpoint: Path
) -> None:
    server, _ = served
    with rasterio.open(tmp_path / "served" / "kampala-2021-06.tif") as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    middle = f"{west + (east - west) * 0.4},{south},{west + (east - west) * 0.6},{north}"
    db = str(tmp_path / "db")
    result = invoke("ingest", "--stac", f"{server.url}/api", "--bbox", middle, "--datetime",
                    "2021-06-01/2021-06-30", "--collection", "drone", "--db", db, "--model", str(tiny_checkpoint),
                    *CHIP_ARGS)
    assert result.exit_code == 0, result.output
    (search,) = server.requests("/api/search")
    asked = search["body"]
    assert asked["collections"] == ["drone"] and asked["datetime"].startswith("2021-06-01")
    index = ChipIndex(db)
    assert [scene.scene_path for scene in index.scenes()] == [f"{server.url}/kampala-2021-06.tif"]
    # --bbox also keeps only the chips meeting it: the middle column of the 2 x 2 chips is half of them
    assert index.count_rows() == 4
    chips = index.get(index.stored_windows(index.scenes()[0].scene_id)["chip_id"].to_pylist())
    assert {chip.item_url for chip in chips} == {f"{server.url}/api/items/kampala-2021-06"}


def test_max_items_and_unusable_items(served: tuple[RangeServer, Path]) -> None:
    server, catalog = served
    assert len(stac_scenes(str(catalog), max_items=2).scenes) == 2
    chosen = stac_scenes(str(catalog), asset="thumbnail")
    assert {str(scene.source).rsplit(".", 1)[-1] for scene in chosen.scenes} == {"png"}
    missing = stac_scenes(str(catalog), asset="B04")
    assert missing.scenes == [] and len(missing.skipped) == len(ITEMS)
    assert "no asset 'B04' (it has thumbnail, visual)" in missing.skipped[0][1]
    with pytest.raises(InputError, match="cannot read it as a STAC API or catalog"):
        stac_scenes(f"{server.url}/nothing-here.json")


def test_pick_asset_prefers_the_named_then_visual_then_rgb_bands_then_a_cog() -> None:
    item = pystac.Item("x", None, None, datetime(2021, 1, 1, tzinfo=UTC), {})
    item.add_asset("B01", pystac.Asset("https://h/B01.tif", media_type=pystac.MediaType.COG))
    rgb = {"eo:bands": [{"name": n, "common_name": n} for n in ("red", "green", "blue")]}
    item.add_asset("tci", pystac.Asset("https://h/tci.tif", media_type=pystac.MediaType.COG, extra_fields=rgb))
    assert pick_asset(item).href == "https://h/tci.tif"
    assert pick_asset(item, "B01").href == "https://h/B01.tif"
    item.add_asset("visual", pystac.Asset("https://h/visual.tif"))
    assert pick_asset(item).href == "https://h/visual.tif"
    cogs_only = pystac.Item("y", None, None, datetime(2021, 1, 1, tzinfo=UTC), {})
    cogs_only.add_asset("metadata", pystac.Asset("https://h/meta.xml", media_type=pystac.MediaType.XML))
    cogs_only.add_asset("B02", pystac.Asset("https://h/B02.TIF?sig=1"))
    assert pick_asset(cogs_only).href == "https://h/B02.TIF?sig=1"
    with pytest.raises(InputError, match="no RGB or GeoTIFF asset"):
        pick_asset(pystac.Item("z", None, None, datetime(2021, 1, 1, tzinfo=UTC), {}))
