"""``remoteclip-explorer bench ingest``: ingest chips/s and peak memory on synthetic COGs of growing size.

For each size (default 1k², 10k², 30k² pixels) the benchmark writes a tiled, DEFLATE-compressed RGB COG with
overviews (textured, so it compresses like imagery rather than like zeros), window by window so writing needs
no whole-scene array. It then ingests it with :func:`pipelines.ingest.local.ingest_paths` into a fresh table and
samples the resident memory of this process and its reader processes every 50 ms: the peak must stay flat as
scenes grow. Model-only throughput is timed on chips of the same scene already in memory (``encode_images``
in batches), so ``ingest chips/s ÷ model-only chips/s`` says how busy the pipeline keeps the model.
``--model tiny`` uses a random 64-px ViT (runs in minutes on a CPU), an open_clip architecture (``ViT-B-32``)
with random weights as in ``bench encode``; any other value goes to ``load_model`` (:func:`bench_model`).

``--remote`` compares instead one COG (the first ``--sizes`` side) read from disk and over HTTP, whole and for
an AOI of a tenth of it: chips/s and the bytes fetched (:mod:`pipelines.bench.ingest_remote`).

``--small-scenes N`` adds the other shape of input: a folder of N one-chip GeoTIFFs (UAV frames, image chips),
ingested with small scenes grouped into shared commits (the default) and with a commit per scene
(``commit_rows=1``), against model-only throughput on the same chips.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Self

import click
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

from pipelines.bench.common import (
    backend_list,
    random_weights_arch,
    scratch_dir,
    workdir_option,
    write_result,
)
from pipelines.bench.ingest_remote import bench_remote
from pipelines.cli.options import device_option, echo_json, output_format_option, parse_int_list
from pipelines.ingest.local import COMMIT_ROWS, ingest_paths
from pipelines.ingest.read import DEFAULT_WORKERS, start_reader_server
from remoteclip.encode import encode_images
from remoteclip.factory import LoadedModel, load_model, quiet_open_clip
from tiles.grid import ChipSpec, iter_windows
from tiles.index.chip_index import ChipIndex
from tiles.reader import gdal_env, open_scene

#: open_clip config of ``--model tiny``: a 2-layer 64-px ViT with a 2-layer text tower
TINY_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
#: rows written per block when making a synthetic COG
WRITE_ROWS = 512
#: period in rows of the synthetic noise
NOISE_ROWS = 16
#: chips held in memory for the model-only timing
MODEL_ONLY_CHIPS = 256


def rgb_profile(side_px: int, west: float = 500_000.0) -> dict[str, object]:
    """Profile of a ``side_px``² 3-band uint8 GeoTIFF, EPSG:32633, 0.5 m pixels, west edge at ``west``."""
    return {
        "driver": "GTiff",
        "width": side_px,
        "height": side_px,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": from_origin(west, 5_000_000, 0.5, 0.5),
    }


def write_synthetic_cog(path: Path, side_px: int, seed: int = 0) -> Path:
    """A ``side_px``² 3-band uint8 COG (EPSG:32633, 0.5 m) with texture, written block by block."""
    # noise repeats every NOISE_ROWS rows: textured like imagery, yet DEFLATE finds repeats (fast to write)
    noise = np.random.default_rng(seed).integers(-20, 20, (3, NOISE_ROWS, side_px), dtype=np.int16)
    profile = {
        **rgb_profile(side_px),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "predictor": 2,
        "BIGTIFF": "IF_SAFER",
    }
    cols = np.arange(side_px)
    with rasterio.open(path, "w", **profile) as dst:
        for row_off in range(0, side_px, WRITE_ROWS):
            rows = min(WRITE_ROWS, side_px - row_off)
            y = np.arange(row_off, row_off + rows)[:, None]
            base = (np.sin(cols[None, :] / 37.0) * 40 + np.cos(y / 53.0) * 40 + 128).astype(np.int16)
            block_noise = noise[:, (y[:, 0] % NOISE_ROWS)]
            block = np.clip(base[None] + block_noise + np.array([0, 15, -15])[:, None, None], 0, 255)
            block = block.astype(np.uint8)
            dst.write(block, window=Window(0, row_off, side_px, rows))
        factors = [f for f in (2, 4, 8, 16, 32, 64) if side_px // f >= 256]
        if factors:
            dst.build_overviews(factors, Resampling.average)
    return path


class ProcessSampler:
    """Samples this process and its reader processes: peak resident memory (``peak_mb`` of both, and of each
    side alone) and the readers' CPU time. The readers are the fork server's children, not this process's, so
    their CPU is read from ``/proc`` at each sample (what a reader spends after its last sample is missed)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        #: this (encoding, writing) process alone
        self.peak_main_mb = 0.0
        #: the reader processes together
        self.peak_readers_mb = 0.0
        self._readers_cpu_s: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def readers_cpu_s(self) -> float:
        """CPU seconds of the reader processes, as last sampled."""
        return sum(self._readers_cpu_s.values())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            main = _rss_mb(os.getpid())
            readers = [child.pid for child in mp.active_children() if child.pid]
            for pid in readers:
                self._readers_cpu_s[pid] = max(self._readers_cpu_s.get(pid, 0.0), _cpu_s(pid))
            readers_mb = sum(_rss_mb(pid) for pid in readers)
            self.peak_main_mb = max(self.peak_main_mb, main)
            self.peak_readers_mb = max(self.peak_readers_mb, readers_mb)
            self.peak_mb = max(self.peak_mb, main + readers_mb)
            self._stop.wait(self.interval_s)


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, IndexError):  # the process has just exited
        return 0.0


def bench_model(name: str, scratch: Path, device: str, backend: str | None = None) -> LoadedModel:
    """The model a benchmark ingests with, loaded as ``ingest`` loads it.

    ``tiny``: a seeded random tiny CLIP (:data:`TINY_CONFIG`); an open_clip architecture that no package ships
    (``ViT-B-32``, ``RN50``): that architecture with random weights (seed 0), as ``bench encode`` times it, since
    throughput does not depend on the weights and official ones cannot be had offline (its model id reads
    ``random-ViT-B-32@…``); each saved once as a model folder under ``scratch``. Anything else (the shipped
    ``explorer-small``, a weights file, a model folder) goes to ``load_model``.
    """
    import open_clip
    import torch

    if name != "tiny" and not random_weights_arch(name):
        return load_model(name, device=device, backend=backend)
    folder = scratch / ("tiny" if name == "tiny" else f"random-{name}")
    if not (folder / "open_clip_pytorch_model.bin").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        config = TINY_CONFIG if name == "tiny" else open_clip.get_model_config(name)
        torch.manual_seed(0)
        with quiet_open_clip():  # "initialized randomly" is the point here
            model = open_clip.CLIP(**config) if name == "tiny" else open_clip.create_model(name)
        torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
        (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config}))
    return load_model(folder, device=device, backend=backend)


def warm_up(model: LoadedModel) -> None:
    """Encode one chip, so an ONNX export (first use only) is not timed as ingest."""
    encode_images(model, [np.zeros((8, 8, 3), np.uint8)])


def read_chips(paths: list[Path], spec: ChipSpec, limit: int = MODEL_ONLY_CHIPS) -> list[np.ndarray]:
    """Up to ``limit`` chips of these scenes, read into memory."""
    chips: list[np.ndarray] = []
    with gdal_env():
        for path in paths:
            with open_scene(path) as scene:
                windows = list(iter_windows(scene.width, scene.height, spec))[: limit - len(chips)]
                read = (scene.read_chip(window, spec.chip_px) for window in windows)
                chips += [chip for chip in read if chip is not None]
            if len(chips) >= limit:
                break
    return chips


def model_only_chips_per_s(model: LoadedModel, chips: list[np.ndarray], batch_size: int) -> float:
    """Encoding throughput on chips already in memory (preprocessing included, as the model needs it)."""
    encode_images(model, chips[:batch_size], batch_size)  # warm-up
    start = time.perf_counter()
    encode_images(model, chips, batch_size)
    return len(chips) / (time.perf_counter() - start)


def bench_size(
    side_px: int, workdir: Path, model: LoadedModel, spec: ChipSpec, batch_size: int, workers: int
) -> dict[str, float]:
    """Write one COG of ``side_px``², ingest it, and return its figures."""
    start = time.perf_counter()
    cog = write_synthetic_cog(workdir / f"cog_{side_px}.tif", side_px)
    write_s = time.perf_counter() - start
    cpu_before = os.times()
    with ProcessSampler() as sampled:
        summary = ingest_paths(
            [cog],
            ChipIndex(workdir / f"db_{side_px}"),
            model,
            spec,
            batch_size=batch_size,
            workers=workers,
            progress=False,
        )
    cpu_after = os.times()
    main_cpu_s = cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
    readers_cpu_s = sampled.readers_cpu_s
    model_only = model_only_chips_per_s(model, read_chips([cog], spec), batch_size)
    chips = max(1, summary.chips)
    figures = {
        "side_px": side_px,
        "file_mb": round(cog.stat().st_size / 1e6, 1),
        "write_s": round(write_s, 1),
        "chips": summary.chips,
        "ingest_s": round(summary.seconds, 2),
        "ingest_chips_per_s": round(summary.chips_per_s, 1),
        "model_only_chips_per_s": round(model_only, 1),
        "ratio": round(summary.chips_per_s / model_only, 3),
        "peak_rss_mb": round(sampled.peak_mb),
        "peak_main_mb": round(sampled.peak_main_mb),
        "peak_readers_mb": round(sampled.peak_readers_mb),
        # CPU per chip, which a busy machine changes far less than wall time: the encoding process (model,
        # preprocessing, writes) and the readers (decode, empty-chip test, thumbnails); with every core busy,
        # ingest ÷ model-only is at most main ÷ (main + readers)
        "main_cpu_ms_per_chip": round(main_cpu_s / chips * 1000, 2),
        "readers_cpu_ms_per_chip": round(readers_cpu_s / chips * 1000, 2),
    }
    cog.unlink()
    shutil.rmtree(workdir / f"db_{side_px}", ignore_errors=True)
    return figures


def write_small_scenes(folder: Path, count: int, side_px: int, seed: int = 1) -> list[Path]:
    """``count`` ``side_px``² RGB GeoTIFFs side by side (EPSG:32633, 0.5 m), each its own random texture."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for n in range(count):
        path = folder / f"frame_{n:05d}.tif"
        with rasterio.open(path, "w", **rgb_profile(side_px, west=500_000 + n * side_px * 0.5)) as dst:
            dst.write(rng.integers(0, 256, (3, side_px, side_px), dtype=np.uint8))
        paths.append(path)
    return paths


def bench_small_scenes(
    count: int, workdir: Path, model: LoadedModel, spec: ChipSpec, batch_size: int, workers: int
) -> dict[str, float]:
    """Ingest ``count`` one-chip scenes with grouped commits and with a commit per scene; their figures."""
    frames = write_small_scenes(workdir / "frames", count, spec.chip_px)
    figures: dict[str, float] = {"scenes": count}
    for name, commit_rows in (("grouped", COMMIT_ROWS), ("commit_per_scene", 1)):
        index = ChipIndex(workdir / f"db_{name}")
        summary = ingest_paths(
            frames, index, model, spec, batch_size=batch_size, workers=workers, commit_rows=commit_rows,
            progress=False,
        )
        figures[f"{name}_chips_per_s"] = round(summary.chips_per_s, 1)
        assert index.table is not None  # the ingest above wrote it
        figures[f"{name}_table_versions"] = index.table.version
        shutil.rmtree(workdir / f"db_{name}", ignore_errors=True)
    model_only = model_only_chips_per_s(model, read_chips(frames, spec, limit=count), batch_size)
    figures["model_only_chips_per_s"] = round(model_only, 1)
    figures["grouped_ratio"] = round(figures["grouped_chips_per_s"] / model_only, 3)
    figures["commit_per_scene_ratio"] = round(figures["commit_per_scene_chips_per_s"] / model_only, 3)
    shutil.rmtree(workdir / "frames", ignore_errors=True)
    return figures


def _sizes(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    sizes = parse_int_list(value, "1000,10000")
    if not sizes or min(sizes) < 256:
        raise click.BadParameter(f"{value!r}: give sizes of at least 256 pixels")
    return sizes


@click.command("ingest")
@click.option(
    "--sizes",
    default="1000,10000,30000",
    show_default=True,
    callback=_sizes,
    help="Sides in pixels of the synthetic square COGs.",
)
@click.option(
    "--model",
    "model_name",
    default="tiny",
    show_default=True,
    help="tiny (random 64-px ViT, fast on a CPU), an open_clip architecture such as ViT-B-32 (random weights, "
    "as bench encode), or a shipped model (explorer-small) / weights file / model folder.",
)
@device_option
@click.option(
    "--backend",
    "backends",
    default=None,
    help="Comma-separated backends ingested with side by side: torch, onnx, auto "
    "[default: torch,onnx on the CPU, torch on CUDA].",
)
@click.option("--chip-size", type=click.IntRange(min=8), default=256, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Reader processes of the local engine.",
)
@click.option(
    "--small-scenes",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Also ingest a folder of this many one-chip GeoTIFFs (0: skip).",
)
@click.option(
    "--remote",
    is_flag=True,
    help="Only compare one COG (the first --sizes side) on disk and over HTTP (whole, and an AOI of a tenth).",
)
@workdir_option
@output_format_option("table", "json")
def ingest(
    sizes: list[int],
    model_name: str,
    device: str,
    backends: str | None,
    chip_size: int,
    batch_size: int,
    workers: int,
    small_scenes: int,
    remote: bool,
    workdir: Path | None,
    output_format: str,
) -> None:
    """Ingest chips/s, model-only chips/s and peak memory on synthetic COGs of each --sizes side, per backend."""
    chosen = backend_list(backends, device)
    spec = ChipSpec(chip_px=chip_size)
    if remote:
        _bench_remote(sizes[0], model_name, device, chosen[0], spec, batch_size, workdir, output_format)
        return
    rows: list[dict[str, object]] = []
    small_rows: list[dict[str, object]] = []
    if workers:
        start_reader_server()  # as `ingest` does, before the model loads
    with scratch_dir("ingest", workdir) as tmp:
        for backend in chosen:
            model = bench_model(model_name, tmp, device, backend)
            warm_up(model)
            for side in sizes:
                rows.append({"backend": model.backend, **bench_size(side, tmp, model, spec, batch_size, workers)})
            if small_scenes:
                figures = bench_small_scenes(small_scenes, tmp, model, spec, batch_size, workers)
                small_rows.append({"backend": model.backend, **figures})
    comparison = _compare(rows)
    result = {
        "model": model_name,
        "model_id": model.model_id,
        "device": device,
        "backends": chosen,
        "chip_px": chip_size,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "batch_size": batch_size,
        "workers": workers,
        "gdal_num_threads": os.environ.get("GDAL_NUM_THREADS"),
        "sizes": rows,
        "small_scenes": small_rows or None,
        "comparison": comparison,
    }
    path = write_result(f"ingest_{model_name.replace('/', '_')}_{device.replace(':', '')}", result)
    if output_format == "json":
        echo_json({**result, "result_file": str(path)})
        return
    for row in rows:
        click.echo(
            f"{row['backend']:<5} {row['side_px']:>6}² px  {row['chips']:>6} chips  "
            f"ingest {row['ingest_chips_per_s']:>8} chips/s  "
            f"model-only {row['model_only_chips_per_s']:>8} chips/s  ratio {row['ratio']:.2f}  "
            f"peak {row['peak_rss_mb']} MB (main {row['peak_main_mb']}, readers {row['peak_readers_mb']})  "
            f"CPU/chip main {row['main_cpu_ms_per_chip']} ms, readers {row['readers_cpu_ms_per_chip']} ms"
        )
    for small in small_rows:
        click.echo(
            f"{small['backend']:<5} {small['scenes']} one-chip scenes: grouped {small['grouped_chips_per_s']} chips/s "
            f"(ratio {small['grouped_ratio']:.2f}), a commit per scene "
            f"{small['commit_per_scene_chips_per_s']} chips/s (ratio {small['commit_per_scene_ratio']:.2f}), "
            f"model-only {small['model_only_chips_per_s']}"
        )
    for entry in comparison:
        click.echo(
            f"{entry['side_px']:>6}² px: ONNX Runtime ingests {entry['ingest_speedup']:.2f}x PyTorch's chips/s "
            f"({entry['onnx_chips_per_s']} vs {entry['torch_chips_per_s']})"
        )
    click.echo(f"-> {path}")


def _bench_remote(
    side_px: int,
    model_name: str,
    device: str,
    backend: str,
    spec: ChipSpec,
    batch_size: int,
    workdir: Path | None,
    output_format: str,
) -> None:
    """``--remote``: one ``side_px``² COG from disk and over HTTP (:func:`pipelines.bench.ingest_remote.bench_remote`)."""
    with scratch_dir("ingest-remote", workdir) as tmp:
        model = bench_model(model_name, tmp, device, backend)
        warm_up(model)
        cog = write_synthetic_cog(tmp / f"cog_{side_px}.tif", side_px)
        figures = bench_remote(cog, tmp, model, spec, batch_size)
    result = {
        "model": model_name,
        "model_id": model.model_id,
        "backend": model.backend,
        "device": device,
        "chip_px": spec.chip_px,
        "side_px": side_px,
        "load_average_1m": round(os.getloadavg()[0], 2),
        **figures,
    }
    path = write_result(f"ingest_remote_{model_name.replace('/', '_')}_{device.replace(':', '')}", result)
    if output_format == "json":
        echo_json({**result, "result_file": str(path)})
        return
    for name in ("local", "http", "http_aoi"):
        run = figures[name]
        click.echo(
            f"{name:<8} {run['chips']:>6} chips  {run['chips_per_s']:>8} chips/s  "
            f"{run['bytes'] / 1e6:>8.2f} MB read ({run['bytes_per_file']:.3f} x the file)"
        )
    met = "met" if figures["aoi_target_met"] else "NOT met"
    click.echo(
        f"AOI of {figures['aoi_share']:.0%} of the scene fetched {figures['aoi_fetched_per_file']:.3f} x the "
        f"{figures['file_mb']} MB file (target < {figures['aoi_target']}: {met}) -> {path}"
    )


def _compare(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """ONNX Runtime's ingest against PyTorch's, per scene size."""
    by = {(row["backend"], row["side_px"]): row for row in rows}
    out: list[dict[str, object]] = []
    for (backend, side), row in by.items():
        plain = by.get(("torch", side))
        if backend != "onnx" or plain is None:
            continue
        onnx_rate, torch_rate = float(row["ingest_chips_per_s"]), float(plain["ingest_chips_per_s"])  # type: ignore[arg-type]
        out.append(
            {
                "side_px": side,
                "torch_chips_per_s": torch_rate,
                "onnx_chips_per_s": onnx_rate,
                "ingest_speedup": round(onnx_rate / torch_rate, 2) if torch_rate else None,
                "torch_ratio": plain["ratio"],
                "onnx_ratio": row["ratio"],
            }
        )
    return out
