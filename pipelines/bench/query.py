"""``remoteclip-explorer bench query``: search latency and recall@k on a synthetic chip index of N rows.

The table has the real ``chips`` schema. Its vectors are clustered like real embeddings (a Gaussian mixture in
a low-dimensional latent space, mapped into ``dim`` dimensions plus a little isotropic noise, L2-normalised),
not uniform noise, which no ANN index handles the way it handles real data. Chips lie in scenes of 32 x 32
footprints scattered over land-sized boxes, so an AOI selects whole and partial scenes as it would in real
use. Queries are perturbed table vectors (like "more like this" and text queries near real chips); recall@k is
measured against an exact brute-force search over the same rows (with the AOI: over the rows whose footprint
meets it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import shapely
from shapely.geometry import box

from pipelines.bench.common import scratch_dir, workdir_option, write_result
from pipelines.cli.options import echo_json, output_format_option
from tiles.index.ann import AnnKind, AnnPolicy
from tiles.index.chip_index import ChipIndex
from tiles.index.schema import METADATA_COLUMNS, chips_schema

#: chips per synthetic scene (a 32 x 32 grid)
SCENE_SIDE = 32
#: chip side in degrees (~250 m)
CHIP_DEG = 0.00225
#: latent dimensions of the synthetic embeddings
LATENT_DIM = 48
#: rows written per Arrow batch
WRITE_BATCH = 50_000
#: refine rounds timed (each fits a probe and searches with it)
REFINE_ROUNDS = 20


def clustered_vectors(n: int, dim: int, seed: int = 0, rows_per_cluster: int = 500) -> np.ndarray:
    """``n`` L2-normalised float32 vectors drawn from a Gaussian mixture in a ``LATENT_DIM``-d subspace."""
    rng = np.random.default_rng(seed)
    projection = np.random.default_rng(10_000 + dim).standard_normal((LATENT_DIM, dim)).astype(np.float32)
    projection /= np.sqrt(LATENT_DIM)
    centres = (
        np.random.default_rng(20_000).standard_normal((max(16, n // rows_per_cluster), LATENT_DIM)) * 2.0
    )
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, WRITE_BATCH):
        size = min(WRITE_BATCH, n - start)
        latent = centres[rng.integers(0, len(centres), size)] + rng.standard_normal((size, LATENT_DIM))
        block = (
            latent.astype(np.float32) @ projection
            + rng.standard_normal((size, dim)).astype(np.float32) * 0.02
        )
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def chip_boxes(n: int, seed: int = 0) -> np.ndarray:
    """(n, 4) footprint bounds (minx, miny, maxx, maxy) in EPSG:4326: 32 x 32-chip scenes placed at random."""
    rng = np.random.default_rng(seed + 1)
    scenes = -(-n // (SCENE_SIDE * SCENE_SIDE))
    origins = np.column_stack([rng.uniform(-10.0, 30.0, scenes), rng.uniform(35.0, 60.0, scenes)])  # Europe
    index = np.arange(n)
    scene, cell = index // (SCENE_SIDE * SCENE_SIDE), index % (SCENE_SIDE * SCENE_SIDE)
    minx = origins[scene, 0] + (cell % SCENE_SIDE) * CHIP_DEG
    miny = origins[scene, 1] + (cell // SCENE_SIDE) * CHIP_DEG
    return np.column_stack([minx, miny, minx + CHIP_DEG, miny + CHIP_DEG])


def synthetic_batches(
    vectors: np.ndarray, boxes: np.ndarray, model_id: str = "synthetic", thumbnail: bytes = b""
) -> Iterator[pa.RecordBatch]:
    """The rows of a synthetic ``chips`` table in record batches of the real schema (one thumbnail in all)."""
    schema = chips_schema(vectors.shape[1])
    for start in range(0, len(vectors), WRITE_BATCH):
        stop = min(start + WRITE_BATCH, len(vectors))
        b = boxes[start:stop]
        ids = np.arange(start, stop)
        scene = ids // (SCENE_SIDE * SCENE_SIDE)
        columns = {
            "chip_id": [f"c{i:09d}" for i in ids],
            "scene_id": [f"s{s:06d}" for s in scene],
            "scene_path": [f"/synthetic/scene_{s:06d}.tif" for s in scene],
            "level": np.ones(len(ids), np.int32),
            "col_off": (ids % SCENE_SIDE) * 256,
            "row_off": (ids // SCENE_SIDE % SCENE_SIDE) * 256,
            "width": np.full(len(ids), 256, np.int32),
            "height": np.full(len(ids), 256, np.int32),
            "crs": ["EPSG:4326"] * len(ids),
            "minx": b[:, 0],
            "miny": b[:, 1],
            "maxx": b[:, 2],
            "maxy": b[:, 3],
            "footprint": shapely.to_wkb(shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])),
            "gsd_m": np.full(len(ids), 1.0, np.float32),
            "pixel_space": np.zeros(len(ids), bool),
            "centroid_lon": (b[:, 0] + b[:, 2]) / 2,
            "centroid_lat": (b[:, 1] + b[:, 3]) / 2,
            "thumbnail": [thumbnail] * len(ids),
            "model_id": [model_id] * len(ids),
        }
        arrays = [
            pa.array(columns[name], type=schema.field(name).type)
            if name in columns
            else pa.nulls(len(ids), schema.field(name).type)  # no catalog items
            for name in METADATA_COLUMNS
        ]
        flat = pa.array(vectors[start:stop].reshape(-1))
        yield pa.RecordBatch.from_arrays(
            [*arrays, pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])], schema=schema
        )


def write_synthetic_table(
    index: ChipIndex,
    vectors: np.ndarray,
    boxes: np.ndarray,
    model_id: str = "synthetic",
    thumbnail: bytes = b"",
) -> None:
    """Create the ``chips`` table of ``index`` from synthetic rows (one commit)."""
    batches = synthetic_batches(vectors, boxes, model_id, thumbnail)
    index.create(pa.RecordBatchReader.from_batches(chips_schema(vectors.shape[1]), batches))


def exact_top_k(
    vectors: np.ndarray, query: np.ndarray, k: int, candidates: np.ndarray | None = None
) -> set[int]:
    """Row numbers of the exact top-``k`` by cosine (among ``candidates`` when given)."""
    rows = np.arange(len(vectors)) if candidates is None else candidates
    scores = vectors[rows] @ query
    top = np.argpartition(-scores, min(k, len(rows) - 1))[:k] if len(rows) > k else np.arange(len(rows))
    return set(rows[top].tolist())


def measure(
    index: ChipIndex,
    vectors: np.ndarray,
    boxes: np.ndarray,
    queries: np.ndarray,
    k: int,
    aoi: shapely.Polygon | None,
) -> dict[str, float]:
    """p50 / p99 latency (ms) of ``ChipIndex.search``, its CPU time (all threads) and mean recall@k vs exact.

    The CPU time says what a query costs when the machine is shared (wall time then includes waiting for a
    core). """
    candidates = None
    if aoi is not None:
        minx, miny, maxx, maxy = aoi.bounds
        candidates = np.flatnonzero(
            (boxes[:, 2] >= minx) & (boxes[:, 0] <= maxx) & (boxes[:, 3] >= miny) & (boxes[:, 1] <= maxy)
        )
    # the exact answers first: a brute-force pass over every vector between two timed searches would evict
    # the index from the CPU caches and time that, not the search
    exact = [exact_top_k(vectors, query, k, candidates) for query in queries]
    index.search(queries[0], k, aoi=aoi)  # warm caches (index files, metadata)
    latencies, cpu, found = [], [], []
    for query in queries:
        start, start_cpu = time.perf_counter(), time.process_time()
        hits = index.search(query, k, aoi=aoi)
        latencies.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        found.append({int(hit.chip_id[1:]) for hit in hits})
    recalls = [len(got & want) / max(1, len(want)) for got, want in zip(found, exact, strict=True)]
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "cpu_ms_p50": round(float(np.percentile(cpu, 50)), 2),
        "recall_at_k": round(float(np.mean(recalls)), 4),
        "aoi_rows": int(len(vectors) if candidates is None else len(candidates)),
    }


def measure_refine(index: ChipIndex, vectors: np.ndarray, queries: np.ndarray, k: int) -> dict[str, float]:
    """p50 / p99 (ms) of one refine round without the page: 3 right and 2 wrong marks read from the index, the
    probe fitted with its library background (:func:`pipelines.services.refine.fit_probe`) and searched
    (:func:`pipelines.services.refine.search_probe`: its direction and its 3 exemplars)."""
    from pipelines.services.refine import BACKGROUND_CHIPS, fit_probe, search_probe

    rng = np.random.default_rng(7)
    latencies = []
    for query in queries:
        near = np.argsort(-(vectors @ query))[:3]
        marked = [f"c{int(i):09d}" for i in (*near, *rng.integers(0, len(vectors), 2))]
        start = time.perf_counter()
        marks = index.vectors(marked)
        probe = fit_probe(query, marks[:3], marks[3:], index.sample_vectors(BACKGROUND_CHIPS, exclude=marked))
        search_probe(index, probe, k)
        latencies.append((time.perf_counter() - start) * 1000)
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "rounds": len(latencies),
    }


def run_query_bench(
    rows: int, dim: int, n_queries: int, k: int, db_dir: Path, policy: AnnPolicy, seed: int = 0
) -> dict[str, Any]:
    """Write a synthetic table of ``rows`` chips in ``db_dir``, index it by ``policy``, measure searches."""
    start = time.perf_counter()
    vectors = clustered_vectors(rows, dim, seed)
    boxes = chip_boxes(rows, seed)
    index = ChipIndex(db_dir, ann=policy)
    write_synthetic_table(index, vectors, boxes)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    action = index.build_ann()
    build_s = time.perf_counter() - start
    rng = np.random.default_rng(seed + 2)
    picks = rng.integers(0, rows, n_queries)
    queries = vectors[picks] + rng.standard_normal((n_queries, dim)).astype(np.float32) * 0.02
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    # an AOI of ~1 x 0.7 degrees around the first query's chip: a few scenes, whole and partial
    cx, cy = boxes[picks[0], 0], boxes[picks[0], 1]
    aoi = box(cx - 0.5, cy - 0.35, cx + 0.5, cy + 0.35)
    return {
        "rows": rows,
        "dim": dim,
        "queries": n_queries,
        "k": k,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "index": {
            "action": action,
            "kind": policy.kind.value if action != "none" else "flat",
            "min_rows": policy.min_rows,
            "nprobes": policy.nprobes,
            "refine_factor": policy.refine_factor,
            "build_s": round(build_s, 2),
        },
        "write_s": round(write_s, 2),
        "no_aoi": measure(index, vectors, boxes, queries, k, None),
        "aoi": measure(index, vectors, boxes, queries, k, aoi),
        "refine_round": measure_refine(index, vectors, queries[:REFINE_ROUNDS], k),
    }


@click.command("query")
@click.option(
    "--rows",
    type=click.IntRange(min=1_000),
    default=100_000,
    show_default=True,
    help="Rows of the synthetic chip table.",
)
@click.option(
    "--dim", type=click.IntRange(min=8), default=512, show_default=True, help="Embedding dimension."
)
@click.option(
    "--queries",
    "n_queries",
    type=click.IntRange(min=10),
    default=200,
    show_default=True,
    help="Queries timed (each with and without an AOI).",
)
@click.option(
    "-k", type=click.IntRange(min=1), default=10, show_default=True, help="Results per query (recall@k)."
)
@click.option(
    "--index",
    "kind",
    type=click.Choice([kind.value for kind in AnnKind]),
    default=AnnPolicy.kind.value,
    show_default=True,
    help="Vector index type built past the row threshold.",
)
@click.option(
    "--min-rows",
    type=click.IntRange(min=0),
    default=AnnPolicy.min_rows,
    show_default=True,
    help="Rows from which the vector index is built (below: exact flat scan).",
)
@workdir_option
@output_format_option("table", "json")
def query(
    rows: int,
    dim: int,
    n_queries: int,
    k: int,
    kind: str,
    min_rows: int,
    workdir: Path | None,
    output_format: str,
) -> None:
    """Search latency (p50/p99) and recall@k vs exact search on a synthetic table, with and without an AOI."""
    policy = AnnPolicy(min_rows=min_rows, kind=AnnKind(kind))
    with scratch_dir("query", workdir) as tmp:
        result = run_query_bench(rows, dim, n_queries, k, tmp / "db", policy)
    name = f"query_{rows}" if policy.kind is AnnPolicy.kind else f"query_{rows}_{policy.kind.value}"
    path = write_result(name, result)
    if output_format == "json":
        echo_json({**result, "result_file": str(path)})
        return
    index = result["index"]
    click.echo(f"{rows} rows x {dim}: {index['kind']} index ({index['action']}, {index['build_s']} s)")
    for name in ("no_aoi", "aoi"):
        m = result[name]
        click.echo(
            f"  {name:6s} p50 {m['p50_ms']} ms  p99 {m['p99_ms']} ms  recall@{k} {m['recall_at_k']}  "
            f"over {m['aoi_rows']} rows"
        )
    click.echo(f"-> {path}")
