"""``bench ingest --remote``: one COG ingested from local disk, over HTTP, and over HTTP for an AOI of a tenth.

The COG (:func:`pipelines.bench.ingest.write_synthetic_cog`: 512 px DEFLATE tiles, overviews) is served by a
:class:`~pipelines.bench.range_server.RangeServer` on 127.0.0.1, which counts the body bytes it sends, so the
figures are what GDAL's ``/vsicurl/`` really fetched. Each run reads in this process (``workers=0``) into a
fresh library, under its own URL (GDAL caches fetched blocks per URL). Local reads are measured as the bytes
this process read from files (``rchar`` of ``/proc/self/io``: the COG, and the library's own reads). The AOI
is a centred square covering a tenth of the scene; the target is under 0.2 x the file fetched for it.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from rasterio.warp import transform_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from pipelines.bench.range_server import RangeServer
from pipelines.ingest.local import ingest_paths
from remoteclip.factory import LoadedModel
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex
from tiles.reader import open_scene

#: share of the scene the AOI run covers, and the most of the file it may fetch
AOI_SHARE = 0.1
AOI_TARGET = 0.2


def bench_remote(
    cog: Path, workdir: Path, model: LoadedModel, spec: ChipSpec, batch_size: int
) -> dict[str, Any]:
    """Ingest ``cog`` from disk, from a local HTTP server, and from it for a tenth of the scene: chips/s and
    bytes read or fetched for each."""
    size = cog.stat().st_size
    served = workdir / "served"
    served.mkdir()
    for name in ("whole.tif", "aoi.tif"):  # one URL per run: GDAL's block cache is per URL
        os.link(cog, served / name)
    server = RangeServer(served).start()
    try:
        runs = {
            "local": _ingest(cog, None, workdir / "db_local", model, spec, batch_size),
            "http": _ingest(f"{server.url}/whole.tif", None, workdir / "db_http", model, spec, batch_size),
            "http_aoi": _ingest(
                f"{server.url}/aoi.tif", tenth_aoi(cog), workdir / "db_aoi", model, spec, batch_size
            ),
        }
        runs["http"]["bytes"] = server.bytes_sent("whole.tif")
        runs["http_aoi"]["bytes"] = server.bytes_sent("aoi.tif")
        runs["http"]["requests"] = server.gets("whole.tif")
        runs["http_aoi"]["requests"] = server.gets("aoi.tif")
    finally:
        server.stop()
        shutil.rmtree(served, ignore_errors=True)
    for run in runs.values():
        run["bytes_per_file"] = round(run["bytes"] / size, 3)
    aoi_share = runs["http_aoi"]["bytes_per_file"]
    return {
        "file_mb": round(size / 1e6, 2),
        **runs,
        "http_vs_local_chips_per_s": round(runs["http"]["chips_per_s"] / runs["local"]["chips_per_s"], 3),
        "aoi_share": AOI_SHARE,
        "aoi_fetched_per_file": aoi_share,
        "aoi_target": AOI_TARGET,
        "aoi_target_met": aoi_share < AOI_TARGET,
    }


def tenth_aoi(cog: Path) -> BaseGeometry:
    """A centred square covering :data:`AOI_SHARE` of the scene, in EPSG:4326."""
    with open_scene(cog) as scene:
        left, top = scene.transform @ (0, 0)
        right, bottom = scene.transform @ (scene.width, scene.height)
        crs = scene.crs
    half = math.sqrt(AOI_SHARE) / 2
    cx, cy = (left + right) / 2, (top + bottom) / 2
    w, h = (right - left) * half, (top - bottom) * half
    return box(*transform_bounds(crs, "EPSG:4326", cx - w, cy - h, cx + w, cy + h))


def _ingest(
    source: Path | str,
    aoi: BaseGeometry | None,
    db: Path,
    model: LoadedModel,
    spec: ChipSpec,
    batch_size: int,
) -> dict[str, Any]:
    """One ingest in this process: chips, chips/s and (for a file) the bytes this process read."""
    before = _bytes_read()
    summary = ingest_paths(
        [source], ChipIndex(db), model, spec, batch_size=batch_size, workers=0, progress=False, aoi=aoi
    )
    if summary.failed:
        raise RuntimeError(f"bench ingest --remote: {summary.failed[0][0]} failed: {summary.failed[0][1]}")
    shutil.rmtree(db, ignore_errors=True)
    return {
        "chips": summary.chips,
        "seconds": round(summary.seconds, 2),
        "chips_per_s": round(summary.chips_per_s, 1),
        "bytes": _bytes_read() - before,
    }


def _bytes_read() -> int:
    """Bytes this process has read with read() calls (``rchar``), 0 where /proc has no io file."""
    try:
        with open("/proc/self/io") as handle:
            fields = dict(line.split(": ") for line in handle.read().splitlines())
    except OSError:
        return 0
    return int(fields["rchar"])
