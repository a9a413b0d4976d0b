"""Query services shared by the CLI and the app: text search and "more like this", optionally within an AOI.

Each returns :class:`tiles.index.chip_index.Hit` values (plain frozen dataclasses);
:mod:`pipelines.services.export` turns them into JSON, GeoJSON and CSV.
"""

from __future__ import annotations

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
