"""``remoteclip-explorer bench count``: seconds to count the objects in one large image with the locator.

Times :func:`pipelines.services.locate.locate_objects` on a 2,560² image (target: under 15 s on the CPU):
an Airbus airport of ``../shared/data`` when there is one (the held-out ``valid/`` images, as a user's new
airport), else a synthetic 2,560² COG (the tiling benchmark's). Each run is timed after one warm-up.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
import rasterio

from pipelines.bench.common import scratch_dir, workdir_option, write_result
from pipelines.bench.tiling import write_synthetic_cog
from pipelines.cli.options import device_option, echo_json, output_format_option
from pipelines.services.demo_library import shared_data_dir
from pipelines.services.locate import DEFAULT_SPAN_PX, locate_objects, object_query
from remoteclip.factory import load_model
from remoteclip.locator import load_locator

#: side of the image counted
IMAGE_PX = 2560


def airbus_image(shared_data: Path) -> Path | None:
    """The first held-out Airbus airport image, if the shared data is there."""
    images = sorted((shared_data / "airbus-aircraft" / "valid").glob("*.jpg"))
    return images[0] if images else None


@click.command("count")
@click.option("--object", "noun", default="airplanes", show_default=True, help="What to count.")
@click.option("--runs", type=click.IntRange(min=1), default=3, show_default=True, help="Timed runs.")
@click.option(
    "--chip-size",
    "span_px",
    type=click.IntRange(min=64),
    default=DEFAULT_SPAN_PX,
    show_default=True,
    help="Source pixels a chip spans.",
)
@device_option
@workdir_option
@output_format_option("table", "json")
def count_bench(
    noun: str, runs: int, span_px: int, device: str, workdir: Path | None, output_format: str
) -> None:
    """Seconds to find every object in a 2,560² image with the default model's locator."""
    model = load_model(None, device=device)
    locator = load_locator(model)
    query = object_query(model, locator, noun)
    with scratch_dir("count", workdir) as tmp:
        image = airbus_image(shared_data_dir()) or write_synthetic_cog(tmp / "synthetic.tif", IMAGE_PX)
        with rasterio.open(image) as src:
            size = [src.width, src.height]
        locate_objects(model, locator, image, query, span_px=span_px)  # warm-up
        seconds, found = [], 0
        for _ in range(runs):
            started = time.perf_counter()
            found = locate_objects(model, locator, image, query, span_px=span_px).total
            seconds.append(time.perf_counter() - started)
    result = {
        "image": image.name,
        "size_px": size,
        "object": noun,
        "chip_span_px": span_px,
        "device": device,
        "found": found,
        "seconds_p50": round(float(np.median(seconds)), 3),
        "seconds": [round(s, 3) for s in seconds],
        "target_seconds": 15,
    }
    path = write_result(f"count_{device}", result)
    if output_format == "json":
        echo_json({**result, "result_file": str(path)})
        return
    click.echo(
        f"{image.name} {size[0]}x{size[1]}: {found} {noun} in {result['seconds_p50']} s (p50 of {runs})"
    )
    click.echo(f"-> {path}")
