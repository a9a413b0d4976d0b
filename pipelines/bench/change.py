"""``remoteclip-explorer bench change``: seconds to compare two dates over their whole overlap.

Times :func:`pipelines.services.change.compare_dates` on the Joplin tornado pair of ``../shared/data`` (4 tiles
before in EPSG:26915, 6 after in EPSG:4326; target: under 10 s on the CPU), after one warm-up. With
``--figure``, it also draws the top cells' before and after thumbnails side by side (the report's figure).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import click
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from pipelines.bench.common import write_result
from pipelines.cli.options import device_option, echo_json, output_format_option
from pipelines.services.change import ChangeReport, compare_dates
from pipelines.services.demo_library import shared_data_dir
from remoteclip.errors import InputError
from remoteclip.factory import load_model

#: the pair timed, under the shared data
JOPLIN = Path("scenes/xview2_joplin")
#: cells drawn by --figure
FIGURE_CELLS = 8


@click.command("change")
@click.option("--query", default="destroyed buildings", show_default=True,
              help="What change to look for ('' for any change).")
@click.option("--runs", type=click.IntRange(min=1), default=3, show_default=True, help="Timed runs.")
@click.option("--figure", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the top cells' before/after thumbnails to this PNG.")
@device_option
@output_format_option("table", "json")
def change_bench(query: str, runs: int, figure: Path | None, device: str, output_format: str) -> None:
    """Seconds to compare Joplin before and after the 2011 tornado over their whole overlap."""
    root = shared_data_dir() / JOPLIN
    before, after = sorted((root / "pre").glob("*.tif")), sorted((root / "post").glob("*.tif"))
    if not before or not after:
        raise InputError(f"the Joplin scenes are not under {root}; set REMOTECLIP_SHARED_DATA")
    model = load_model(None, device=device)
    compare_dates(before, after, model, query=query or None)  # warm-up
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        report = compare_dates(before, after, model, query=query or None)
        seconds.append(time.perf_counter() - started)
    rows, cols = report.grid.shape
    result = {
        "pair": str(JOPLIN),
        "scenes": [len(before), len(after)],
        "query": query or None,
        "device": device,
        "grid": {"crs": str(report.grid.crs), "rows": rows, "cols": cols, "cell_m": round(report.cell_m, 2)},
        "cells_compared": len(report.cells),
        "cells_without_imagery": report.uncovered,
        "seconds_p50": round(float(np.median(seconds)), 3),
        "seconds": [round(s, 3) for s in seconds],
        "target_seconds": 10,
        "top_cells": [dict(row.values) for row in report.table().rows[:FIGURE_CELLS]],
    }
    path = write_result(f"change_{device}", result)
    if figure is not None:
        _figure(report, FIGURE_CELLS).savefig(figure, dpi=110, bbox_inches="tight")
    if output_format == "json":
        echo_json({**result, "result_file": str(path)})
        return
    click.echo(
        f"Joplin {len(before)} + {len(after)} scenes: {len(report.cells)} cells of {report.cell_m:.0f} m "
        f"compared in {result['seconds_p50']} s (p50 of {runs})"
    )
    click.echo(f"-> {path}" + (f", {figure}" if figure is not None else ""))


def _figure(report: ChangeReport, top: int) -> Figure:
    """The ``top`` cells in rank order: before above, after below, each titled with its rank and score."""
    cells = report.cells[:top]
    fig = Figure(figsize=(1.6 * len(cells), 3.6))
    axes = fig.subplots(2, len(cells), squeeze=False)
    for i, cell in enumerate(cells):
        for row, jpeg in enumerate((cell.before_jpeg, cell.after_jpeg)):
            axis = axes[row][i]
            axis.imshow(np.asarray(Image.open(io.BytesIO(jpeg))))
            axis.set_xticks([])
            axis.set_yticks([])
        axes[0][i].set_title(f"#{i + 1}  z {cell.score(report.direction):+.1f}", fontsize=8)
    axes[0][0].set_ylabel("before")
    axes[1][0].set_ylabel("after")
    asked = f"what {report.direction.value}: “{report.query}”" if report.query else "any change"
    fig.suptitle(f"Top cells ({report.cell_m:.0f} m) ranked by {asked}", fontsize=9)
    return fig
