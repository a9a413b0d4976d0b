"""The scenes of a STAC catalog to ingest: a STAC API searched (pystac-client) or a static catalog walked (pystac).

:func:`stac_scenes` finds the items of a collection, area and date range, picks each item's RGB asset
(:func:`pick_asset`) and returns its COG with the item's id, collection, acquisition time and own URL
(:class:`tiles.index.schema.SceneItem`), which ingest keeps with every chip so a hit links back to its item.
An API that offers item search filters on the server; a static catalog (a ``catalog.json``, ``collection.json``,
item or item collection, local or over HTTP) is walked and filtered here the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pystac
from pystac_client import Client, ConformanceClasses
from pystac_client.exceptions import APIError
from pystac_client.warnings import PystacClientWarning
from requests import RequestException
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from remoteclip.errors import InputError
from tiles.index.dates import parse_range
from tiles.index.schema import SceneItem
from tiles.remote import is_remote

#: the asset key most catalogs give their RGB rendering (Element 84's Earth Search, Maxar Open Data, NAIP)
VISUAL = "visual"
RGB_NAMES = frozenset({"red", "green", "blue"})
#: media types of the assets :func:`pick_asset` takes when nothing names the RGB one
TIFF_TYPES = (pystac.MediaType.COG, pystac.MediaType.GEOTIFF, pystac.MediaType.TIFF)
TIFF_SUFFIXES = (".tif", ".tiff")
#: seconds to wait for a STAC API's answer
STAC_TIMEOUT_S = 60


@dataclass(frozen=True)
class StacScene:
    """One item's raster to ingest: the asset's file or URL, and the item it came from."""

    source: Path | str
    item: SceneItem

    @property
    def scene_path(self) -> str:
        """The path the index stores for it (the URL, or the file's absolute path)."""
        return self.source if isinstance(self.source, str) else str(self.source.resolve())


@dataclass(frozen=True)
class StacSelection:
    """The scenes found, and (item, reason) of the items left out (no usable asset)."""

    scenes: list[StacScene]
    skipped: list[tuple[str, str]]

    def items(self) -> dict[str, SceneItem]:
        """Each scene's item by the path the index stores (what ``ingest_paths(items=...)`` takes)."""
        return {scene.scene_path: scene.item for scene in self.scenes}


def stac_scenes(
    source: str,
    *,
    collections: Sequence[str] = (),
    aoi: BaseGeometry | None = None,
    datetime_range: str | None = None,
    asset: str | None = None,
    max_items: int | None = None,
) -> StacSelection:
    """The items of ``source`` (a STAC API's or static catalog's URL, or a catalog file) in ``collections``
    (all when empty), meeting ``aoi`` (EPSG:4326) and acquired within ``datetime_range`` (``START/END``, see
    :func:`tiles.index.dates.parse_range`), at most ``max_items``, each with its RGB asset (:func:`pick_asset`).
    """
    if max_items is not None and max_items < 1:
        raise InputError(f"--max-items {max_items} must be at least 1")
    when = parse_range(datetime_range) if datetime_range else None
    scenes: list[StacScene] = []
    skipped: list[tuple[str, str]] = []
    try:
        for item in _items(source, collections, aoi, datetime_range, when, max_items):
            name = item.get_self_href() or item.id
            try:
                href = pick_asset(item, asset).get_absolute_href() or ""
            except InputError as exc:
                skipped.append((name, str(exc)))
                continue
            scene_item = SceneItem(item.id, item.collection_id, _item_time(item), item.get_self_href())
            scenes.append(StacScene(href if is_remote(href) else Path(href), scene_item))
    except (APIError, RequestException, pystac.STACError, OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{source}: cannot read it as a STAC API or catalog ({_one_line(exc)})") from exc
    return StacSelection(scenes, skipped)


def pick_asset(item: pystac.Item, name: str | None = None) -> pystac.Asset:
    """The RGB asset of ``item``: the one named ``name``; else ``visual``; else one with the role ``visual`` or
    red, green and blue bands (``eo:bands`` / ``bands`` common names); else the first GeoTIFF/COG."""
    assets = item.assets
    if name is not None:
        if name not in assets:
            raise InputError(f"no asset {name!r} (it has {', '.join(sorted(assets)) or 'none'})")
        return assets[name]
    if VISUAL in assets:
        return assets[VISUAL]
    for candidate in assets.values():
        if VISUAL in (candidate.roles or []) or RGB_NAMES <= set(_common_names(candidate)):
            return candidate
    for candidate in assets.values():
        if candidate.media_type in TIFF_TYPES or candidate.href.lower().split("?")[0].endswith(TIFF_SUFFIXES):
            return candidate
    raise InputError(
        f"no RGB or GeoTIFF asset (it has {', '.join(sorted(assets)) or 'none'}); name one with --asset"
    )


def _items(
    source: str,
    collections: Sequence[str],
    aoi: BaseGeometry | None,
    datetime_range: str | None,
    when: tuple[datetime | None, datetime | None] | None,
    max_items: int | None,
) -> Iterator[pystac.Item]:
    """Items found by the API's search, or walked in a static catalog and filtered here."""
    if is_remote(source):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PystacClientWarning)  # "no conformance": a static catalog
            client = Client.open(source, timeout=STAC_TIMEOUT_S)
        if client.conforms_to(ConformanceClasses.ITEM_SEARCH):
            search = client.search(
                collections=list(collections) or None,
                intersects=mapping(aoi) if aoi is not None else None,
                datetime=datetime_range,
                max_items=max_items,
            )
            yield from search.items()
            return
        root: pystac.STACObject | pystac.ItemCollection = client
    else:
        root = pystac.read_file(source)
    found = 0
    for item in _walk(root):
        if max_items is not None and found >= max_items:
            return
        if _wanted(item, collections, aoi, when):
            found += 1
            yield item


def _walk(root: pystac.STACObject | pystac.ItemCollection) -> Iterable[pystac.Item]:
    """Every item of a catalog or collection (recursively), an item collection, or the item itself."""
    if isinstance(root, pystac.Item):
        return [root]
    if isinstance(root, pystac.ItemCollection):
        return root.items
    if isinstance(root, pystac.Catalog):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PystacClientWarning)
            return list(root.get_items(recursive=True))
    raise InputError(f"{root}: not a STAC catalog, collection, item or item collection")


def _wanted(
    item: pystac.Item,
    collections: Sequence[str],
    aoi: BaseGeometry | None,
    when: tuple[datetime | None, datetime | None] | None,
) -> bool:
    """Whether a static catalog's item is in ``collections``, meets ``aoi`` and was acquired ``when``."""
    if collections and item.collection_id not in collections:
        return False
    if aoi is not None:
        footprint = shape(item.geometry) if item.geometry else box(*item.bbox) if item.bbox else None
        if footprint is None or not footprint.intersects(aoi):
            return False
    if when is not None:
        start, end = when
        first = item.common_metadata.start_datetime or item.datetime
        last = item.common_metadata.end_datetime or item.datetime
        if first is None or last is None:
            return False
        if (end is not None and _utc(first) > end) or (start is not None and _utc(last) < start):
            return False
    return True


def _item_time(item: pystac.Item) -> datetime | None:
    """The item's acquisition time in UTC (its start for an interval)."""
    moment = item.datetime or item.common_metadata.start_datetime
    return _utc(moment) if moment is not None else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _common_names(asset: pystac.Asset) -> list[str]:
    """The common names (red, green, ...) of an asset's bands, from ``eo:bands`` or STAC 1.1 ``bands``."""
    bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    return [
        str(band.get("common_name") or band.get("eo:common_name"))
        for band in bands
        if isinstance(band, dict)
    ]


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
