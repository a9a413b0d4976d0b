"""The LanceDB table ``chips``: its schema and the deterministic ids of scenes and chips.

This is the one contract between ingest (which writes the table) and search / the app (which read it).
Columns are those of DESIGN.md plus ``pixel_space`` (footprint in pixel (col, row) space for images without a
georeference; such chips never match an AOI) and ``centroid_lon`` / ``centroid_lat``, and the catalog item a
scene came from (:data:`ITEM_FIELDS`, null for files ingested by path): libraries made before those columns
get them, all null, on their next write (:meth:`tiles.index.chip_index.ChipIndex.upsert`), and are read
without them until then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from tiles.georef import ChipGeoref
from tiles.grid import ChipWindow

TABLE_NAME = "chips"
#: Lance file format of new ``chips`` tables. 2.2 (pylance 14's default) decodes a whole page of a constant
#: column (``model_id``, ``level``, ``crs`` ... are constant in most libraries) on every random-access read:
#: ~2 ms per column per search at 1M rows, against ~0.5 ms in 2.1 (``bench query``)
DATA_STORAGE_VERSION = "2.1"
#: hex digits kept from the BLAKE2b digests used as ids
ID_HEX = 20

#: the catalog item (STAC) a chip's scene came from: its id, collection, acquisition time (UTC) and the URL of
#: the item itself (its ``self`` link), so a hit links back to it; null for scenes ingested by path
ITEM_FIELDS: tuple[pa.Field, ...] = (
    pa.field("item_id", pa.string()),
    pa.field("collection", pa.string()),
    pa.field("datetime", pa.timestamp("us", tz="UTC")),
    pa.field("item_url", pa.string()),
)
#: columns other than ``vector``, in table order
METADATA_FIELDS: tuple[pa.Field, ...] = (
    pa.field("chip_id", pa.string(), nullable=False),
    pa.field("scene_id", pa.string(), nullable=False),
    pa.field("scene_path", pa.string()),
    pa.field("level", pa.int32()),
    pa.field("col_off", pa.int64()),
    pa.field("row_off", pa.int64()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("crs", pa.string()),
    pa.field("minx", pa.float64()),
    pa.field("miny", pa.float64()),
    pa.field("maxx", pa.float64()),
    pa.field("maxy", pa.float64()),
    pa.field("footprint", pa.binary()),
    pa.field("gsd_m", pa.float32()),
    pa.field("pixel_space", pa.bool_()),
    pa.field("centroid_lon", pa.float64()),
    pa.field("centroid_lat", pa.float64()),
    pa.field("thumbnail", pa.binary()),
    pa.field("model_id", pa.string()),
    *ITEM_FIELDS,
)
METADATA_COLUMNS: tuple[str, ...] = tuple(field.name for field in METADATA_FIELDS)


def chips_schema(dim: int) -> pa.Schema:
    """The Arrow schema of the ``chips`` table for ``dim``-dimensional embeddings."""
    return pa.schema([*METADATA_FIELDS, pa.field("vector", pa.list_(pa.float32(), dim))])


def scene_id_for(path: Path) -> str:
    """Id of a scene from its file content, so a renamed or copied file is the same scene."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=32))
    return digest.hexdigest()[:ID_HEX]


def remote_scene_id(url: str, size: int, etag: str | None, mtime_ns: int) -> str:
    """Id of a remote scene from its URL, size and version (ETag, else Last-Modified), known without reading
    the file: the same URL changed on the server is a new scene; a copy under another URL is another one."""
    key = f"{url}\0{size}\0{etag or ''}\0{mtime_ns}"
    return hashlib.blake2b(key.encode(), digest_size=32).hexdigest()[:ID_HEX]


def chip_id_for(scene_id: str, window: ChipWindow) -> str:
    """Id of a chip from its scene and window: re-ingesting a scene yields the same ids."""
    key = f"{scene_id}/{window.level}/{window.col_off}/{window.row_off}/{window.width}/{window.height}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()[:ID_HEX]


@dataclass(frozen=True)
class SceneItem:
    """The catalog item a scene came from (:data:`ITEM_FIELDS`)."""

    item_id: str
    collection: str | None
    #: acquisition time, timezone-aware (UTC when the catalog gives none)
    datetime: datetime | None
    #: the item's own URL (its ``self`` link) or file
    url: str | None


@dataclass(frozen=True)
class ChipRecord:
    """Everything about one chip except its vector: what ingest collects before encoding."""

    scene_id: str
    scene_path: str
    window: ChipWindow
    georef: ChipGeoref
    #: source CRS as ``EPSG:n`` when it has a code, else WKT; None for images without a georeference
    crs: str | None
    thumbnail: bytes
    #: the catalog item of the scene, None for a file ingested by path
    item: SceneItem | None = None


def metadata_table(records: Sequence[ChipRecord], model_id: str) -> pa.Table:
    """The ``chips`` columns other than ``vector`` (:data:`METADATA_FIELDS`) of ``records``."""
    columns = {
        "chip_id": [chip_id_for(r.scene_id, r.window) for r in records],
        "scene_id": [r.scene_id for r in records],
        "scene_path": [r.scene_path for r in records],
        "level": [r.window.level for r in records],
        "col_off": [r.window.col_off for r in records],
        "row_off": [r.window.row_off for r in records],
        "width": [r.window.width for r in records],
        "height": [r.window.height for r in records],
        "crs": [r.crs for r in records],
        "minx": [r.georef.bbox[0] for r in records],
        "miny": [r.georef.bbox[1] for r in records],
        "maxx": [r.georef.bbox[2] for r in records],
        "maxy": [r.georef.bbox[3] for r in records],
        "footprint": [r.georef.footprint.wkb for r in records],
        "gsd_m": [r.georef.gsd_m for r in records],
        "pixel_space": [r.georef.pixel_space for r in records],
        "centroid_lon": [r.georef.centroid[0] for r in records],
        "centroid_lat": [r.georef.centroid[1] for r in records],
        "thumbnail": [r.thumbnail for r in records],
        "model_id": [model_id] * len(records),
        "item_id": [r.item.item_id if r.item else None for r in records],
        "collection": [r.item.collection if r.item else None for r in records],
        "datetime": [r.item.datetime if r.item else None for r in records],
        "item_url": [r.item.url if r.item else None for r in records],
    }
    return pa.Table.from_pydict(columns, schema=pa.schema(METADATA_FIELDS))


def with_vectors(metadata: pa.Table, vectors: np.ndarray) -> pa.Table:
    """Full ``chips`` rows: ``metadata`` (:func:`metadata_table`) and its ``(N, D)`` float32 ``vectors``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != metadata.num_rows:
        raise ValueError(f"{metadata.num_rows} rows but vectors of shape {vectors.shape}")
    vector_array = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    return metadata.select(list(METADATA_COLUMNS)).append_column(
        chips_schema(vectors.shape[1]).field("vector"), vector_array
    )


def rows_table(records: Sequence[ChipRecord], vectors: np.ndarray, model_id: str) -> pa.Table:
    """The ``chips`` rows of ``records`` with their ``(N, D)`` float32 ``vectors``."""
    return with_vectors(metadata_table(records, model_id), vectors)
