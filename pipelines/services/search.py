"""Query services shared by the CLI and the app: text search and "more like this", optionally within an AOI.

Each returns :class:`tiles.index.chip_index.Hit` values (plain frozen dataclasses); :func:`hit_record` and
:func:`hits_geojson` turn them into JSON-ready dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from remoteclip.encode import encode_texts
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from tiles.index.chip_index import ChipIndex, Hit

#: example queries offered by the app's Search page (and timed by ``bench app``)
EXAMPLE_QUERIES: tuple[str, ...] = (
    "ships in a harbor",
    "cars in a parking lot",
    "airplanes at an airport",
    "a bridge over a river",
    "dense residential houses",
    "trees and forest",
    "farmland fields",
    "storage tanks",
)


def search_text(
    index: ChipIndex, model: LoadedModel, query: str, k: int = 20, aoi: BaseGeometry | None = None
) -> list[Hit]:
    """The ``k`` chips that best match a plain-English ``query`` (cosine similarity), within ``aoi``."""
    if not query.strip():
        raise InputError('the search text is empty; type what to look for, e.g. "ships in harbor"')
    index.check_model(model.model_id)
    return index.search(encode_texts(model, [query])[0], k=k, aoi=aoi)


def search_like(index: ChipIndex, chip_id: str, k: int = 20, aoi: BaseGeometry | None = None) -> list[Hit]:
    """The ``k`` chips that look most like chip ``chip_id`` (itself left out), within ``aoi`` if given."""
    vector = index.vectors([chip_id])[0]
    return [hit for hit in index.search(vector, k=k + 1, aoi=aoi) if hit.chip_id != chip_id][:k]


def hit_record(hit: Hit, rank: int) -> dict[str, Any]:
    """A JSON-ready dict of one hit (no thumbnail bytes; footprint as a GeoJSON geometry)."""
    return {
        "rank": rank,
        "score": round(hit.score, 6),
        "chip_id": hit.chip_id,
        "scene_id": hit.scene_id,
        "scene_path": hit.scene_path,
        "level": hit.level,
        "window": {"col_off": hit.col_off, "row_off": hit.row_off, "width": hit.width, "height": hit.height},
        "crs": hit.crs,
        "gsd_m": hit.gsd_m,
        "pixel_space": hit.pixel_space,
        "bbox": list(hit.bbox),
        "footprint": mapping(hit.footprint),
    }


def hits_geojson(hits: Sequence[Hit]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of hit footprints (EPSG:4326); pixel-space hits get no geometry."""
    features = []
    for rank, hit in enumerate(hits, start=1):
        properties = hit_record(hit, rank)
        geometry = properties.pop("footprint")
        features.append(
            {
                "type": "Feature",
                "id": hit.chip_id,
                "properties": properties,
                "geometry": None if hit.pixel_space else geometry,
            }
        )
    return {"type": "FeatureCollection", "features": features}
