"""``remoteclip-explorer bench tiling``: chips/s of tiling vs plain rasterio reads; peak memory vs scene size.

Writes synthetic RGB COGs (8k², 16k²) to a temporary folder (with ``--huge`` also a 30k² VRT mosaic of the
largest one, which costs no pixels on disk), then

* throughput: tiles the smallest one (``tiles.reader``: read, mask, pad, RGB) and reads the same windows
  with a plain ``rasterio`` ``DatasetReader.read``; reports both in chips/s and their ratio (target >= 0.8);
* memory: tiles each scene in a fresh process and reports how far its peak RSS grew past the RSS after opening
  the scene and reading one chip; flat growth across sizes shows that memory does not follow the scene.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import click
import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.windows import Window

from pipelines.bench.common import RESULTS_DIR, write_result
from pipelines.cli.options import parse_int_list
from tiles.grid import ChipSpec, iter_windows
from tiles.reader import gdal_env, open_scene

BLOCK_PX = 1024
#: side of the ``--huge`` scene
HUGE_PX = 30_000


def write_synthetic_cog(path: Path, size_px: int) -> Path:
    """A ``size_px``² 3-band uint8 COG (DEFLATE, 512-px blocks, overviews) with texture in every block."""
    staging = path.with_suffix(".staging.tif")
    profile = {
        "driver": "GTiff",
        "width": size_px,
        "height": size_px,
        "count": 3,
        "dtype": "uint8",
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "zlevel": 1,
        "crs": "EPSG:32616",
        "transform": rasterio.transform.from_origin(700000.0, 3800000.0, 0.5, 0.5),
    }
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, size=(3, BLOCK_PX, BLOCK_PX), dtype=np.uint8)
    with rasterio.open(staging, "w", **profile) as dst:
        for row in range(0, size_px, BLOCK_PX):
            for col in range(0, size_px, BLOCK_PX):
                win = Window(col, row, min(BLOCK_PX, size_px - col), min(BLOCK_PX, size_px - row))
                block = texture[:, : win.height, : win.width] // 2 + (row + col) // BLOCK_PX % 128
                dst.write(block, window=win)
    rasterio.shutil.copy(
        staging, path, driver="COG", compress="deflate", level=1, blocksize=512, overview_resampling="average"
    )
    staging.unlink()
    return path


def write_mosaic_vrt(source: Path, path: Path, size_px: int) -> Path:
    """A ``size_px``² VRT of copies of ``source`` side by side: a huge scene without writing its pixels."""
    with rasterio.open(source) as src:
        width, height, count = src.width, src.height, src.count
        geotransform, crs = src.transform.to_gdal(), src.crs.to_wkt()
    root = ET.Element("VRTDataset", rasterXSize=str(size_px), rasterYSize=str(size_px))
    ET.SubElement(root, "SRS").text = crs
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in geotransform)
    for band in range(1, count + 1):
        band_xml = ET.SubElement(root, "VRTRasterBand", dataType="Byte", band=str(band))
        for row in range(0, size_px, height):
            for col in range(0, size_px, width):
                source_xml = ET.SubElement(band_xml, "SimpleSource")
                ET.SubElement(source_xml, "SourceFilename", relativeToVRT="0").text = str(source)
                ET.SubElement(source_xml, "SourceBand").text = str(band)
                ET.SubElement(source_xml, "SrcRect", xOff="0", yOff="0", xSize=str(width), ySize=str(height))
                ET.SubElement(
                    source_xml, "DstRect", xOff=str(col), yOff=str(row), xSize=str(width), ySize=str(height)
                )
    ET.ElementTree(root).write(path)
    return path


def _throughput(path: Path, spec: ChipSpec, repeats: int) -> dict[str, float]:
    """chips/s of tiles.reader vs plain rasterio reads of the same windows.

    The two alternate chip by chip (which goes first alternates too), each on its own dataset handle so
    neither reuses the other's GDAL block cache; on a machine shared with other work, load changes then hit
    both alike.
    """
    spent = {"plain": 0.0, "tiling": 0.0}
    with gdal_env(), rasterio.open(path) as src:
        windows = list(iter_windows(src.width, src.height, spec))
        for _ in range(repeats):
            with open_scene(path) as scene:
                readers = {
                    "plain": lambda w: src.read(
                        [1, 2, 3],
                        window=w.window,
                        out_shape=(3, *w.out_shape(spec.chip_px)),
                        resampling=Resampling.bilinear,
                    ),
                    "tiling": lambda w: scene.read_chip(w, spec.chip_px, spec.min_valid),
                }
                for i, window in enumerate(windows):
                    for name in ("plain", "tiling") if i % 2 else ("tiling", "plain"):
                        start = time.perf_counter()
                        readers[name](window)
                        spent[name] += time.perf_counter() - start
    chips = len(windows) * repeats
    return {
        "chips": len(windows),
        "repeats": repeats,
        "tiling_chips_per_s": round(chips / spent["tiling"], 1),
        "plain_read_chips_per_s": round(chips / spent["plain"], 1),
        "ratio": round(spent["plain"] / spent["tiling"], 3),
    }


def _rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux ``/proc``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _tile_whole_scene(path: str, chip_px: int) -> dict[str, float]:
    """In a fresh process: how far RSS rises while tiling every chip of ``path``, after the first chip."""
    spec = ChipSpec(chip_px=chip_px)
    with gdal_env(), open_scene(path) as scene:
        windows = iter_windows(scene.width, scene.height, spec)
        scene.read_chip(next(windows), chip_px)
        base = peak = _rss_mb()
        start, chips = time.perf_counter(), 1
        for window in windows:
            scene.read_chip(window, chip_px)
            chips += 1
            peak = max(peak, _rss_mb())
        seconds = time.perf_counter() - start
    return {
        "chips": chips,
        "seconds": round(seconds, 2),
        "chips_per_s": round(chips / seconds, 1),
        "rss_after_first_chip_mb": round(base, 1),
        "peak_rss_mb": round(peak, 1),
        "peak_growth_mb": round(peak - base, 1),
    }


@click.command()
@click.option(
    "--sizes",
    "sides",
    default="8192,16384",
    show_default=True,
    callback=lambda ctx, param, value: sorted(set(parse_int_list(value, "8192,16384"))),
    help="Scene sides in pixels, comma-separated.",
)
@click.option(
    "--huge", is_flag=True, help="Also tile a 30,000 x 30,000 scene: a VRT mosaic of the largest COG."
)
@click.option("--chip-size", type=click.IntRange(min=8), default=256, show_default=True)
@click.option(
    "--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Throughput runs (best kept)."
)
@click.option(
    "--results-dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR, show_default=True
)
def tiling(sides: list[int], huge: bool, chip_size: int, repeats: int, results_dir: Path) -> None:
    """Tiling throughput vs plain rasterio reads, and peak memory vs scene size; writes tiling.json."""
    spec = ChipSpec(chip_px=chip_size)
    payload: dict[str, Any] = {"chip_px": chip_size, "throughput": {}, "memory": []}
    with tempfile.TemporaryDirectory(prefix="bench-tiling-") as tmp:
        scenes = {}
        for side in sides:
            start = time.perf_counter()
            scenes[side] = write_synthetic_cog(Path(tmp) / f"synthetic_{side}.tif", side)
            click.echo(
                f"wrote {side}² COG ({scenes[side].stat().st_size / 2**20:.0f} MB) "
                f"in {time.perf_counter() - start:.0f} s",
                err=True,
            )
        formats = dict.fromkeys(scenes, "COG")
        if huge:
            largest = scenes[sides[-1]]
            scenes[HUGE_PX] = write_mosaic_vrt(largest, Path(tmp) / "mosaic.vrt", HUGE_PX)
            formats[HUGE_PX] = f"VRT mosaic of the {sides[-1]}² COG"
        smallest = scenes[sides[0]]
        for level in (1, 2):
            level_spec = ChipSpec(chip_px=chip_size, levels=(level,))
            figures = _throughput(smallest, level_spec, repeats)
            payload["throughput"][f"level_{level}"] = {"scene_px": sides[0], **figures}
            click.echo(
                f"level {level} on {sides[0]}²: tiling {figures['tiling_chips_per_s']} chips/s, plain read "
                f"{figures['plain_read_chips_per_s']} chips/s, ratio {figures['ratio']} (target >= 0.8)"
            )
        with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
            for side, path in scenes.items():
                figures = pool.apply(_tile_whole_scene, (str(path), spec.chip_px))
                payload["memory"].append(
                    {
                        "scene_px": side,
                        "format": formats[side],
                        "file_mb": round(path.stat().st_size / 2**20, 1),
                        "raw_mb": round(side * side * 3 / 2**20, 1),
                        **figures,
                    }
                )
                click.echo(
                    f"{side}²: {figures['chips']} chips at {figures['chips_per_s']} chips/s, peak RSS "
                    f"+{figures['peak_growth_mb']} MB over {figures['rss_after_first_chip_mb']} MB "
                    f"(raw scene {side * side * 3 / 2**20:.0f} MB, {formats[side]})"
                )
    path = write_result("tiling", payload, results_dir)
    click.echo(f"wrote {path}")
