"""The LanceDB table ``chips``: its schema and the deterministic ids of scenes and chips.

This is the one contract between ingest (which writes the table) and search / the app (which read it).
Columns are those of DESIGN.md plus ``pixel_space`` (footprint in pixel (col, row) space for images without a
georeference; such chips never match an AOI) and ``centroid_lon`` / ``centroid_lat``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from tiles.grid import ChipWindow

TABLE_NAME = "chips"
#: hex digits kept from the BLAKE2b digests used as ids
ID_HEX = 20

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


def chip_id_for(scene_id: str, window: ChipWindow) -> str:
    """Id of a chip from its scene and window: re-ingesting a scene yields the same ids."""
    key = f"{scene_id}/{window.level}/{window.col_off}/{window.row_off}/{window.width}/{window.height}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()[:ID_HEX]
