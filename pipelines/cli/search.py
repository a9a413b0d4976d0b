"""``remoteclip-explorer search``: ranked chips for a text query or a chip, optionally within an AOI.

``--format table`` and ``json`` print; ``geojson``, ``csv`` and ``gpkg`` are the app's exports
(:mod:`pipelines.services.export`: lon/lat only for georeferenced chips; query, model id and time recorded),
printed or written to ``--out`` (a GeoPackage is written to a file only).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from pipelines.cli.model_table import library_index
from pipelines.cli.options import (
    aoi_option,
    backend_option,
    check_export_out,
    db_option,
    device_option,
    echo_json,
    emit_export,
    export_out_option,
    model_option,
    output_format_option,
    overwrite_option,
    storage_options_option,
    weights_option,
)
from pipelines.services.export import FORMATS, ExportContext, hit_record, hits_table, scene_name
from pipelines.services.refine import refine_search
from pipelines.services.search import search_like, search_text
from remoteclip.factory import load_model
from tiles.aoi import load_aoi
from tiles.index.chip_index import ChipIndex, Hit
from tiles.index.dates import datetime_where


def _table(hits: list[Hit]) -> str:
    """Ranked hits as a text table: score, scene, window and footprint bbox."""
    rows: list[list[Any]] = []
    for rank, hit in enumerate(hits, start=1):
        bbox = ", ".join(f"{v:.6f}" if not hit.pixel_space else f"{v:.0f}" for v in hit.bbox)
        rows.append(
            [
                rank,
                f"{hit.score:.4f}",
                scene_name(hit.scene_path),
                hit.level,
                f"{hit.col_off},{hit.row_off} {hit.width}x{hit.height}",
                f"({bbox})" + (" px" if hit.pixel_space else ""),
                hit.chip_id,
            ]
        )
    return tabulate(
        rows,
        headers=[
            "#",
            "score",
            "scene",
            "level",
            "window (col,row wxh)",
            "footprint bbox (lon/lat)",
            "chip_id",
        ],
    )


@click.command()
@click.argument("query", required=False)
@click.option(
    "--like", "like_chip", metavar="CHIP_ID", help="Find chips that look like this chip (no QUERY)."
)
@click.option(
    "--positive",
    "positives",
    metavar="CHIP_ID",
    multiple=True,
    help="A chip that is right for QUERY (repeatable): refine the search with a probe on the marks.",
)
@click.option(
    "--negative",
    "negatives",
    metavar="CHIP_ID",
    multiple=True,
    help="A chip that is wrong for QUERY (repeatable).",
)
@db_option
@storage_options_option
@click.option("-k", "k", type=click.IntRange(min=1), default=20, show_default=True, help="Number of results.")
@aoi_option
@click.option(
    "--datetime",
    "datetime_range",
    metavar="RANGE",
    default=None,
    help="Only chips of scenes acquired in RANGE (2020-01-01/2020-12-31, 2021-06, ../2022-01-01): those "
    "ingested from a STAC catalog.",
)
@model_option
@weights_option
@device_option
@backend_option
@output_format_option("table", "json", *(f.name for f in FORMATS))
@export_out_option
@overwrite_option
def search(
    query: str | None,
    like_chip: str | None,
    positives: tuple[str, ...],
    negatives: tuple[str, ...],
    db: Path | str,
    storage_options: dict[str, str],
    k: int,
    aoi: Path | None,
    datetime_range: str | None,
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    output_format: str,
    out: Path | None,
    overwrite: bool,
) -> None:
    """Print the chips at --db that best match QUERY (plain English, e.g. "ships in harbor")."""
    if (query is None) == (like_chip is None):
        raise click.UsageError("give either a QUERY or --like CHIP_ID")
    if (positives or negatives) and query is None:
        raise click.UsageError("--positive and --negative refine a text QUERY; give one")
    if datetime_range is not None and (positives or negatives):
        raise click.UsageError("--datetime filters a search, not a refined one (--positive / --negative)")
    check_export_out(output_format, out, overwrite)
    index = ChipIndex(db, storage_options=storage_options)
    area = load_aoi(aoi) if aoi is not None else None
    where = datetime_where(datetime_range) if datetime_range is not None else None
    if like_chip is not None:
        hits = search_like(index, like_chip, k=k, aoi=area, where=where)
        asked, model_id = f"more like chip {like_chip}", index.model_id or ""
    else:
        model = load_model(model_name, weights=weights, device=device, backend=backend)
        index = library_index(db, model.model_id, storage_options)  # the model's own table; refused if none
        if positives or negatives:
            _, refined = refine_search(index, model, query or "", positives, negatives, k=k, aoi=area)
            # a refined hit's score is the probe's probability that it is right
            hits = [replace(r.hit, score=r.probability) for r in refined]
            asked = f"{query} (refined: {len(positives)} right, {len(negatives)} wrong)"
        else:
            hits = search_text(index, model, query or "", k=k, aoi=area, where=where)
            asked = query or ""
        model_id = model.model_id
    if output_format == "json":
        echo_json([hit_record(hit, rank) for rank, hit in enumerate(hits, start=1)])
    elif output_format == "table":
        click.echo(_table(hits) if hits else "no chips found")
    else:
        data = hits_table(hits).encode(output_format, ExportContext.now(asked, model_id, aoi=area))
        emit_export(data, out, f"{len(hits)} hits")
