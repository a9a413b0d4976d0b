"""``remoteclip-explorer change``: what changed between two dates of a place, ranked cell by cell.

``--before`` and ``--after`` take scene files, folders or globs (as ``ingest`` does); the scenes of each date may
be in any CRS and resolution. The comparison itself is :func:`pipelines.services.change.compare_dates`.
"""

from __future__ import annotations

from pathlib import Path

import click
from tabulate import tabulate
from tqdm import tqdm

from pipelines.cli.options import (
    aoi_option,
    backend_option,
    check_export_out,
    device_option,
    echo_json,
    emit_export,
    export_out_option,
    model_option,
    output_format_option,
    overwrite_option,
    weights_option,
)
from pipelines.ingest.plan import expand_paths
from pipelines.services.change import CELL_PX, ChangeReport, Direction, compare_dates
from pipelines.services.export import FORMATS
from remoteclip.errors import InputError
from remoteclip.factory import load_model
from tiles.aoi import load_aoi

#: cells listed by the table and json formats unless --top says otherwise
TOP_CELLS = 20


def _scenes(values: tuple[str, ...], option: str) -> list[Path]:
    """The scene files named by ``values`` (files, folders, globs); a name matching nothing is an error."""
    found, missing = expand_paths(values)
    if missing:
        raise click.BadParameter("; ".join(f"{name}: {why}" for name, why in missing), param_hint=option)
    return found


@click.command()
@click.option("--before", "before", multiple=True, required=True, metavar="PATH",
              help="A scene of the earlier date: file, folder or glob (repeatable).")
@click.option("--after", "after", multiple=True, required=True, metavar="PATH",
              help="A scene of the later date: file, folder or glob (repeatable).")
@aoi_option
@click.option("--query", default=None, help='What kind of change to look for, e.g. "destroyed buildings".')
@click.option(
    "--direction",
    type=click.Choice([d.value for d in Direction]),
    default=None,
    help="Rank what appeared or what disappeared (needs --query), or any change "
    "[default: appeared with --query, else any].",
)
@click.option("--cell-size", "cell_px", type=click.IntRange(32, 1024), default=CELL_PX, show_default=True,
              help="Side of a compared cell, in pixels of the common grid.")
@click.option("--gsd", "gsd_m", type=click.FloatRange(0, min_open=True), default=None,
              help="Metres per pixel of the common grid [default: the coarser of the two dates' finest].")
@click.option("--top", type=click.IntRange(1), default=TOP_CELLS, show_default=True,
              help="Cells listed by --format table and json (exports hold every cell).")
@click.option("--thumbnails", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the --top cells' before and after thumbnails (JPEG) to this folder.")
@model_option
@weights_option
@device_option
@backend_option
@output_format_option("table", "json", *(f.name for f in FORMATS))
@export_out_option
@overwrite_option
def change(
    before: tuple[str, ...],
    after: tuple[str, ...],
    aoi: Path | None,
    query: str | None,
    direction: str | None,
    cell_px: int,
    gsd_m: float | None,
    top: int,
    thumbnails: Path | None,
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    output_format: str,
    out: Path | None,
    overwrite: bool,
) -> None:
    """Compare the --before scenes with the --after scenes over where both have imagery, most changed first."""
    check_export_out(output_format, out, overwrite)
    if direction not in (None, Direction.ANY.value) and not (query and query.strip()):
        raise click.BadParameter(f"--direction {direction} needs --query", param_hint="--direction")
    before_paths, after_paths = _scenes(before, "--before"), _scenes(after, "--after")
    area = load_aoi(aoi) if aoi is not None else None
    model = load_model(model_name, weights=weights, device=device, backend=backend)
    with tqdm(total=0, unit="cell", desc="comparing", disable=None) as bar:

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = compare_dates(
            before_paths,
            after_paths,
            model,
            aoi=area,
            query=query,
            direction=Direction(direction) if direction else None,
            gsd_m=gsd_m,
            cell_px=cell_px,
            on_progress=advance,
        )
    if thumbnails is not None:
        _write_thumbnails(report, thumbnails, top)
    if output_format == "table":
        click.echo(_summary(report))
        click.echo(_table(report, top))
    elif output_format == "json":
        echo_json(_as_json(report, top))
    else:
        data = report.table().encode(output_format, report.context(area))
        emit_export(data, out, f"{len(report.cells)} cells")


def _summary(report: ChangeReport) -> str:
    """One line: what was compared, on what grid, ranked how."""
    rows, cols = report.grid.shape
    ranked = "any change" if report.query is None else f"what {report.direction.value}: {report.query!r}"
    skipped = f", {report.uncovered} without imagery in one date" if report.uncovered else ""
    return (
        f"{len(report.before)} before and {len(report.after)} after scenes; {len(report.cells)} cells of "
        f"{report.cell_m:.0f} m compared on a {rows} x {cols} grid in {report.grid.crs}{skipped}; ranked by {ranked}"
    )


def _table(report: ChangeReport, top: int) -> str:
    """The top cells as a text table: rank, score, distance, directed change, grid place, centre."""
    rows = []
    for rank, cell in enumerate(report.cells[:top], start=1):
        centre = cell.footprint.centroid
        toward = "" if cell.toward_query is None else f"{cell.toward_query:+.4f}"
        rows.append([rank, f"{cell.score(report.direction):+.2f}", f"{cell.distance:.4f}", toward,
                     f"{cell.row},{cell.col}", f"{centre.x:.6f},{centre.y:.6f}"])
    return tabulate(rows, headers=["#", "score (z)", "1 - cos", "toward query", "row,col", "lon,lat"])


def _as_json(report: ChangeReport, top: int) -> dict[str, object]:
    """The comparison's setting and its top cells, for scripts."""
    rows, cols = report.grid.shape
    return {
        "before": [str(p) for p in report.before],
        "after": [str(p) for p in report.after],
        "query": report.query,
        "direction": report.direction.value,
        "grid": {"crs": str(report.grid.crs), "rows": rows, "cols": cols, "cell_m": round(report.cell_m, 3)},
        "cells_compared": len(report.cells),
        "cells_without_imagery": report.uncovered,
        "model_id": report.model_id,
        "cells": [
            {**row.values, "centroid": [round(c, 7) for c in row.geometry.centroid.coords[0]]}
            for row in report.table().rows[:top]
            if row.geometry is not None
        ],
    }


def _write_thumbnails(report: ChangeReport, folder: Path, top: int) -> None:
    """``{rank:02d}_r{row}c{col}_before.jpg`` and ``..._after.jpg`` of the top cells."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write thumbnails to {folder}: {exc}") from exc
    for rank, cell in enumerate(report.cells[:top], start=1):
        stem = f"{rank:02d}_r{cell.row}c{cell.col}"
        (folder / f"{stem}_before.jpg").write_bytes(cell.before_jpeg)
        (folder / f"{stem}_after.jpg").write_bytes(cell.after_jpeg)
    click.echo(f"wrote the top {min(top, len(report.cells))} cells' thumbnails to {folder}", err=True)
