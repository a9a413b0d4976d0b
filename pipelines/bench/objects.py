"""``bench objects``: an AOI count over objects stored at ingest (``ObjectTable.in_aoi``) in a large library.

A synthetic library of N chips (:func:`pipelines.bench.query.write_synthetic_table`) gets a synthetic
``objects`` table of :data:`OBJECTS_PER_CHIP` objects per chip, placed at random in the chips' footprints and
written in one commit per batch; AOIs of a few sizes around random chips are then timed (p50/p99).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
from shapely.geometry import box

from pipelines.bench.common import scratch_dir, workdir_option, write_result
from pipelines.bench.query import WRITE_BATCH, chip_boxes, clustered_vectors, write_synthetic_table
from pipelines.cli.options import echo_json, output_format_option
from tiles.index.chip_index import ChipIndex
from tiles.index.object_table import OBJECTS_SCHEMA, OBJECTS_TABLE, ObjectTable
from tiles.index.schema import DATA_STORAGE_VERSION

OBJECTS_PER_CHIP = 3
#: AOI half-sizes in degrees: a few chips, a scene, several scenes
AOI_HALF_DEG = {"small_0.01deg": 0.005, "scene_0.08deg": 0.04, "large_1deg": 0.5}
NOUNS = ("airplane", "ship", "storage tank")


def write_objects(index: ChipIndex, boxes: np.ndarray, per_chip: int, seed: int = 0) -> int:
    """The synthetic ``objects`` table: ``per_chip`` objects in each chip's footprint (nouns in turn)."""
    rng = np.random.default_rng(seed + 3)
    table = None
    n = len(boxes) * per_chip
    for start in range(0, n, WRITE_BATCH):
        ids = np.arange(start, min(start + WRITE_BATCH, n))
        chip = ids // per_chip
        b = boxes[chip]
        u, v = rng.uniform(0, 1, (2, len(ids)))
        scene = chip // 1024
        batch = pa.table(
            {
                "object_id": [f"o{i:010d}" for i in ids],
                "object": [NOUNS[i % len(NOUNS)] for i in ids],
                "scene_id": [f"s{s:06d}" for s in scene],
                "scene_path": [f"/synthetic/scene_{s:06d}.tif" for s in scene],
                "col": u * 256,
                "row": v * 256,
                "lon": b[:, 0] + u * (b[:, 2] - b[:, 0]),
                "lat": b[:, 3] - v * (b[:, 3] - b[:, 1]),
                "score": rng.uniform(0.1, 1.0, len(ids)).astype(np.float32),
                "model_id": ["synthetic"] * len(ids),
                "threshold_floor": np.full(len(ids), 0.1, np.float32),
            },
            schema=OBJECTS_SCHEMA,
        )
        if table is None:
            table = index.db.create_table(
                OBJECTS_TABLE, data=batch, schema=OBJECTS_SCHEMA, data_storage_version=DATA_STORAGE_VERSION
            )
        else:
            table.add(batch)
    return n


def run_objects_bench(chips: int, n_queries: int, db_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Write the library and its objects in ``db_dir``, then time ``in_aoi`` for each AOI size."""
    start = time.perf_counter()
    boxes = chip_boxes(chips, seed)
    index = ChipIndex(db_dir)
    write_synthetic_table(index, clustered_vectors(chips, 64, seed), boxes)
    n_objects = write_objects(index, boxes, OBJECTS_PER_CHIP, seed)
    write_s = time.perf_counter() - start
    table = ObjectTable(index)
    rng = np.random.default_rng(seed + 4)
    results: dict[str, Any] = {}
    for name, half in AOI_HALF_DEG.items():
        timings, found = [], []
        for pick in rng.integers(0, chips, n_queries):
            cx, cy = (boxes[pick, 0] + boxes[pick, 2]) / 2, (boxes[pick, 1] + boxes[pick, 3]) / 2
            aoi = box(cx - half, cy - half * 0.7, cx + half, cy + half * 0.7)
            t0 = time.perf_counter()
            objects = table.in_aoi("airplane", aoi, min_score=0.1)
            timings.append(time.perf_counter() - t0)
            found.append(len(objects))
        ms = np.array(timings) * 1000
        results[name] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2),
            "mean_objects": round(float(np.mean(found)), 1),
        }
    return {
        "chips": chips,
        "objects": n_objects,
        "objects_per_chip": OBJECTS_PER_CHIP,
        "queries_per_aoi": n_queries,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "write_s": round(write_s, 2),
        "target_ms": 1000,
        "aoi": results,
    }


@click.command("objects")
@click.option(
    "--chips", type=click.IntRange(min=1_000), default=100_000, show_default=True, help="Chips of the library."
)
@click.option(
    "--queries", "n_queries", type=click.IntRange(min=5), default=50, show_default=True,
    help="AOI queries timed per AOI size.",
)
@workdir_option
@output_format_option("table", "json")
def objects_bench(chips: int, n_queries: int, workdir: Path | None, output_format: str) -> None:
    """AOI counts over stored objects (p50/p99 of ObjectTable.in_aoi) for AOIs of a few sizes."""
    with scratch_dir("objects", workdir) as tmp:
        result = run_objects_bench(chips, n_queries, tmp / "db")
    path = write_result(f"objects_{chips}", result)
    if output_format == "json":
        echo_json({**result, "result_file": str(path)})
        return
    click.echo(f"{chips} chips, {result['objects']} objects (written in {result['write_s']} s)")
    for name, m in result["aoi"].items():
        click.echo(f"  {name:14s} p50 {m['p50_ms']} ms  p99 {m['p99_ms']} ms  ~{m['mean_objects']} objects")
    click.echo(f"-> {path}")
