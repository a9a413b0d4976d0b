"""What leaves the app and the CLI: GeoJSON, CSV and GeoPackage files of hits, per-chip counts and objects.

:func:`feature` and :func:`feature_collection` are the one GeoJSON builder: every layer the map draws and
every export is made with them.

Every export is an :class:`ExportTable` (made by :func:`hits_table`, :func:`chips_table` or a service such as
``AoiObjects.table``): flat rows, each with its EPSG:4326 geometry, or none for a chip of an image without a
georeference (``pixel_space``). :meth:`ExportTable.encode` writes it in one of :data:`FORMATS`, recording the
:class:`ExportContext` the caller made (query, model id, time, threshold, AOI, app version):

- every row has its place in scene pixels (the window ``col_off``/``row_off``/``width``/``height`` and the
  centroid ``centroid_col``/``centroid_row``, or ``col``/``row`` for a point); lon/lat (EPSG:4326) are set for
  georeferenced rows only, empty for pixel-space ones, never pixel numbers posing as degrees;
- GeoJSON: pixel-space features get ``geometry: null``; the context is a top-level ``metadata`` member (a
  foreign member, allowed by RFC 7946);
- CSV: the context is repeated as columns on every row (``query``, ``model_id``, ``threshold``,
  ``exported_at``, ``app_version``, ``aoi_wkt``) rather than as leading ``# key: value`` lines, which GIS
  tools and spreadsheets read as broken data rows; a column survives any import, filter or join;
- GeoPackage: georeferenced rows in a layer with EPSG:4326 geometry named after the table, pixel-space rows in
  a separate layer without geometry (``<name>_pixel_space``) so QGIS never places them on the globe; the
  context as the same columns, as layer and dataset metadata, and as a ``metadata`` table (key, value).
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from remoteclip.errors import InputError
from tiles.index.chip_index import Chip, Hit

#: where a chip is, on every row: scene, level, window and centroid in scene pixels, lon/lat if georeferenced
PLACE_COLUMNS = (
    "scene",
    "level",
    "col_off",
    "row_off",
    "width",
    "height",
    "centroid_col",
    "centroid_row",
    "centroid_lon",
    "centroid_lat",
    "gsd_m",
    "pixel_space",
)
#: which chip a row is: last, since a hash means nothing to a reader
ID_COLUMNS = ("scene_path", "scene_id", "chip_id")
HIT_COLUMNS = ("rank", "score", *PLACE_COLUMNS, *ID_COLUMNS)
#: digits of degrees written (1e-7 degree is about 1 cm)
LONLAT_DIGITS = 7


def _app_version() -> str:
    try:
        return version("remoteclip-explorer")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


APP_VERSION = _app_version()


@dataclass(frozen=True)
class ExportFormat:
    """One file format offered for every export: its name (also the file suffix), label and MIME type."""

    name: str
    label: str
    mime: str


FORMATS = (
    ExportFormat("geojson", "GeoJSON", "application/geo+json"),
    ExportFormat("csv", "CSV", "text/csv"),
    ExportFormat("gpkg", "GeoPackage", "application/geopackage+sqlite3"),
)


@dataclass(frozen=True)
class ExportContext:
    """What an export records besides its rows: what was asked, of which model, when, and how."""

    #: the search text ("more like chip <id>" for a chip), or the object counted
    query: str
    model_id: str
    #: when the file was made (ISO 8601, UTC)
    exported_at: str
    #: the score threshold the rows were kept at (None where there is none, e.g. RemoteCount estimates)
    threshold: float | None = None
    #: the area of interest (EPSG:4326) as WKT, if the results were restricted to one
    aoi_wkt: str | None = None
    app_version: str = APP_VERSION

    @classmethod
    def now(
        cls, query: str, model_id: str, *, threshold: float | None = None, aoi: BaseGeometry | None = None
    ) -> ExportContext:
        """The context of an export made now."""
        return cls(
            query=query,
            model_id=model_id,
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            threshold=None if threshold is None else round(float(threshold), 4),
            aoi_wkt=None if aoi is None else shapely.to_wkt(aoi, rounding_precision=LONLAT_DIGITS),
        )

    def as_dict(self) -> dict[str, Any]:
        """The context as the columns (and metadata keys) every export carries."""
        return asdict(self)


@dataclass(frozen=True)
class ExportRow:
    """One row of an export: its values by column, and its geometry in EPSG:4326 (None in pixel space)."""

    values: Mapping[str, Any]
    geometry: BaseGeometry | None
    feature_id: str | None = None


@dataclass(frozen=True)
class ExportTable:
    """One result set ready to write: named columns, rows with a geometry each, the layer's geometry type."""

    #: the GeoPackage layer name, and the start of the file name
    name: str
    columns: tuple[str, ...]
    rows: tuple[ExportRow, ...]
    #: the GeoPackage geometry type of the georeferenced rows ("Polygon", "Point")
    geometry_type: str
    #: a CSV column holding each row's geometry as WKT (GIS tools read it as the geometry), or None
    wkt_column: str | None = None

    def geojson(self, context: ExportContext | None = None) -> dict[str, Any]:
        """A FeatureCollection of the rows (EPSG:4326), the context as ``metadata`` (none for a map layer)."""
        collection = feature_collection(
            feature(row.geometry, row.feature_id, **{c: row.values[c] for c in self.columns})
            for row in self.rows
        )
        if context is not None:
            collection["metadata"] = context.as_dict()
        return collection

    def csv(self, context: ExportContext | None = None) -> str:
        """The rows as CSV text, every row repeating the context's columns; empty cells for None."""
        meta = context.as_dict() if context is not None else {}
        wkt = (self.wkt_column,) if self.wkt_column else ()
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([*self.columns, *wkt, *meta])
        for row in self.rows:
            shape = () if not wkt else (_wkt(row.geometry),)
            cells = [*(row.values[c] for c in self.columns), *shape, *meta.values()]
            writer.writerow(["" if cell is None else cell for cell in cells])
        return buffer.getvalue()

    def gpkg(self, context: ExportContext | None = None) -> bytes:
        """The rows as a GeoPackage file's bytes: the georeferenced rows in layer :attr:`name` (EPSG:4326),
        the pixel-space ones in ``<name>_pixel_space`` (no geometry, only when there are any), the context
        as columns, layer and dataset metadata and a ``metadata`` table."""
        meta = context.as_dict() if context is not None else {}
        frame = pd.DataFrame([{**row.values, **meta} for row in self.rows], columns=[*self.columns, *meta])
        placed = np.array([row.geometry is not None for row in self.rows], dtype=bool)
        geometries = [row.geometry for row in self.rows if row.geometry is not None]
        layer_meta = {key: str(value) for key, value in meta.items() if value is not None} or None
        with tempfile.TemporaryDirectory(prefix="export-") as folder:
            path = Path(folder) / f"{self.name}.gpkg"
            located = gpd.GeoDataFrame(
                frame[placed].reset_index(drop=True), geometry=gpd.GeoSeries(geometries), crs="EPSG:4326"
            )
            pyogrio.write_dataframe(
                located,
                path,
                layer=self.name,
                driver="GPKG",
                geometry_type=self.geometry_type,
                layer_metadata=layer_meta,
                dataset_metadata=layer_meta,
            )
            if not placed.all():
                pyogrio.write_dataframe(
                    frame[~placed], path, layer=f"{self.name}_pixel_space", layer_metadata=layer_meta
                )
            if meta:
                pairs = pd.DataFrame(
                    {"key": list(meta), "value": ["" if v is None else str(v) for v in meta.values()]}
                )
                pyogrio.write_dataframe(pairs, path, layer="metadata")
            return path.read_bytes()

    def encode(self, format_name: str, context: ExportContext | None = None) -> bytes:
        """The file of this table in the format named ``format_name`` (one of :data:`FORMATS`), as bytes."""
        if format_name == "geojson":
            return json.dumps(self.geojson(context)).encode()
        if format_name == "csv":
            return self.csv(context).encode()
        if format_name == "gpkg":
            return self.gpkg(context)
        names = ", ".join(f.name for f in FORMATS)
        raise InputError(f"unknown export format {format_name!r}; choose one of {names}")


def scene_name(scene_path: str) -> str:
    """The file name of a scene, as tables, tooltips and layer names show it."""
    return Path(scene_path).name


def window_label(chip: Chip) -> str:
    """A chip's window in its scene's pixels, as tables show it: ``col 256, row 0 · 256×256 px``."""
    return f"col {chip.col_off}, row {chip.row_off} · {chip.width}×{chip.height} px"


def file_stem(*parts: str) -> str:
    """A short, file-system-safe file name stem made of ``parts`` (e.g. ``hits-ships-in-a-harbor``)."""
    stem = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")[:60].strip("-")
    return stem or "export"


def feature(
    geometry: BaseGeometry | dict[str, Any] | None, feature_id: str | None = None, **properties: Any
) -> dict[str, Any]:
    """A GeoJSON Feature of a shapely geometry (or an already mapped one, or None) with ``properties``."""
    if isinstance(geometry, BaseGeometry):
        geometry = mapping(geometry)
    out: dict[str, Any] = {"type": "Feature", "geometry": geometry, "properties": properties}
    if feature_id is not None:
        out["id"] = feature_id
    return out


def feature_collection(features: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of ``features``."""
    return {"type": "FeatureCollection", "features": list(features)}


def chip_feature(chip: Chip, **properties: Any) -> dict[str, Any]:
    """A GeoJSON Feature of a chip's footprint, with its id, scene, level and any extra ``properties``."""
    return feature(
        chip.footprint,
        chip_id=chip.chip_id,
        scene=scene_name(chip.scene_path),
        level=chip.level,
        **properties,
    )


def chip_place(chip: Chip) -> dict[str, Any]:
    """The :data:`PLACE_COLUMNS` and :data:`ID_COLUMNS` of a chip: lon/lat of its centroid only when
    georeferenced (a pixel-space footprint is in pixels, not degrees)."""
    centroid = None if chip.pixel_space else chip.footprint.centroid
    return {
        "scene": scene_name(chip.scene_path),
        "level": chip.level,
        "col_off": chip.col_off,
        "row_off": chip.row_off,
        "width": chip.width,
        "height": chip.height,
        "centroid_col": chip.col_off + chip.width / 2,
        "centroid_row": chip.row_off + chip.height / 2,
        "centroid_lon": None if centroid is None else round(centroid.x, LONLAT_DIGITS),
        "centroid_lat": None if centroid is None else round(centroid.y, LONLAT_DIGITS),
        "gsd_m": None if chip.gsd_m is None else round(float(chip.gsd_m), 4),
        "pixel_space": chip.pixel_space,
        "scene_path": chip.scene_path,
        "scene_id": chip.scene_id,
        "chip_id": chip.chip_id,
    }


def chips_table(
    name: str, chips: Sequence[Chip], values: Sequence[Mapping[str, Any]], value_columns: Sequence[str]
) -> ExportTable:
    """Chips with their ``values`` (e.g. a count per chip) as an export of their footprints.

    The ``value_columns`` come first, then where each chip is (:data:`PLACE_COLUMNS`), then which it is.
    """
    if len(chips) != len(values):
        raise InputError(f"{len(chips)} chips but {len(values)} rows of values; give one row per chip")
    rows = tuple(
        ExportRow({**v, **chip_place(c)}, None if c.pixel_space else c.footprint, c.chip_id)
        for c, v in zip(chips, values, strict=True)
    )
    columns = (*value_columns, *PLACE_COLUMNS, *ID_COLUMNS)
    return ExportTable(name, columns, rows, geometry_type="Polygon", wkt_column="footprint_wkt")


def hits_table(hits: Sequence[Hit], ratings: Sequence[tuple[float, str]] | None = None) -> ExportTable:
    """Ranked hits as an export of their footprints: rank and score first, then where each chip is.

    ``ratings``: each hit's (relevance, match band) from a rated text search (see pipelines.services.search),
    exported as the columns ``relevance`` and ``match`` after the cosine ``score``.
    """
    values = [{"rank": rank, "score": round(float(h.score), 6)} for rank, h in enumerate(hits, start=1)]
    if ratings is None:
        return chips_table("hits", hits, values, ("rank", "score"))
    rated = [
        {**v, "relevance": round(z, 3), "match": band} for v, (z, band) in zip(values, ratings, strict=True)
    ]
    return chips_table("hits", hits, rated, ("rank", "score", "relevance", "match"))


def hit_record(hit: Hit, rank: int) -> dict[str, Any]:
    """A JSON-ready dict of one hit (no thumbnail bytes; footprint as a GeoJSON geometry; for a scene from a
    STAC catalog, its ``item``: id, collection, datetime and URL)."""
    item = {
        "id": hit.item_id,
        "collection": hit.collection,
        "datetime": hit.datetime.isoformat() if hit.datetime else None,
        "url": hit.item_url,
    }
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
        **({"item": item} if hit.item_id is not None else {}),
    }


def hits_geojson(hits: Sequence[Hit], context: ExportContext | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of hit footprints (EPSG:4326); pixel-space hits get no geometry."""
    return hits_table(hits).geojson(context)


def hits_csv(hits: Sequence[Hit], context: ExportContext | None = None) -> str:
    """The ranked hits as CSV text (one row per hit, footprint as WKT for georeferenced hits)."""
    return hits_table(hits).csv(context)


def _wkt(geometry: BaseGeometry | None) -> str | None:
    return None if geometry is None else shapely.to_wkt(geometry, rounding_precision=LONLAT_DIGITS)
