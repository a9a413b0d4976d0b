"""``remoteclip-explorer bench encode``: model-only image encoding throughput (images/s) per architecture and
backend, PyTorch and ONNX Runtime side by side in one run, and one query's text encoding (ms).

Random weights for open_clip architectures (nothing is downloaded); the project's shipped model
(``explorer-small``) with its own weights. Random input tensors at the model's image size,
``torch.inference_mode``; on CUDA channels-last inputs and ``torch.cuda.synchronize`` around the timed loop.
The ``onnx`` backend (CPU only) is each tower exported once (:mod:`remoteclip.onnx_backend`, cached) and run by
ONNX Runtime with as many intra-op threads as PyTorch uses; each row says how far its vectors are from
PyTorch's. ``onnx-int8`` (asked for by name) is the image tower quantised to int8, calibrated on the images of
``REMOTECLIP_INT8_CALIBRATION``; its rows add the mean cosine of its vectors to the first backend's. Every
row gives wall images/s and the process's CPU ms per image (on a shared machine the CPU time swings less).
Batch sizes whose one batch would take longer than ``--max-seconds`` (estimated from the previous
batch size) are skipped and reported, so CPU runs stay short.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CustomTextCLIP
from open_clip.transform import PreprocessCfg, image_transform_v2

from pipelines.bench.common import random_weights_arch, write_result
from pipelines.cli.options import parse_int_list
from remoteclip.factory import _export_samples, load_model, quiet_open_clip
from remoteclip.onnx_backend import (
    ENV_INT8_CALIBRATION,
    ONNX_BACKENDS,
    OnnxTowers,
    export_key,
    int8_calibration,
)

#: precision -> (open_clip model precision, autocast dtype or None)
PRECISIONS: dict[str, tuple[str, torch.dtype | None]] = {
    "fp32": ("fp32", None),
    "amp": ("fp32", torch.float16),
    "fp16": ("fp16", None),
    "bf16": ("bf16", None),
}
BENCH_BACKENDS = ("torch", "onnx", "onnx-int8")
#: the query whose text encoding is timed (tokenizer and text tower, one text)
QUERY = "a satellite photo of many cars parked in a parking lot"
#: timed text encodings per backend (fewer if --max-seconds runs out)
TEXT_RUNS = 20


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    numbers = sorted(set(parse_int_list(value, "1,32,256")))
    if not numbers or numbers[0] < 1:
        raise click.BadParameter(f"{value!r} must list positive integers such as 1,32,256")
    return numbers


def _backends(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCH_BACKENDS]
    if not names or unknown:
        raise click.BadParameter(f"{value!r} must list backends among {', '.join(BENCH_BACKENDS)}")
    return list(dict.fromkeys(names))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_mb() -> float:
    """This process's resident memory now, in MB (0 where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def time_encoder(
    model: CLIP | CustomTextCLIP,
    batch: torch.Tensor,
    autocast_dtype: torch.dtype | None,
    warmup: int,
    max_seconds: float,
    max_iters: int,
    forward: Callable[[torch.Tensor], object] | None = None,
) -> tuple[int, float, float]:
    """Run ``forward`` (default ``model.encode_image``) ``warmup`` times, then until ``max_seconds`` or
    ``max_iters``: (iterations, wall s, this process's CPU s)."""
    device = batch.device
    run = forward or model.encode_image
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        for _ in range(warmup):
            run(batch)
        _sync(device)
        iterations, started, cpu_started = 0, time.perf_counter(), time.process_time()
        while iterations < max_iters and (iterations == 0 or time.perf_counter() - started < max_seconds):
            run(batch)
            iterations += 1
        _sync(device)
    return iterations, time.perf_counter() - started, time.process_time() - cpu_started


@dataclass
class _Bench:
    """One architecture to time: the PyTorch model, its tokenizer, and its towers in ONNX Runtime."""

    arch: str
    model: CLIP | CustomTextCLIP
    tokenizer: Callable[..., torch.Tensor]
    size: tuple[int, int]
    onnx: OnnxTowers | None
    weights: str
    #: the towers with the image tower in int8 (``onnx-int8``)
    int8: OnnxTowers | None = None

    def towers(self, backend: str) -> OnnxTowers | None:
        return self.int8 if backend == "onnx-int8" else self.onnx if backend == "onnx" else None

    def forward(self, backend: str, tower: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if backend == "torch":
            return self.model.encode_image if tower == "image" else self.model.encode_text
        towers = self.towers(backend)
        assert towers is not None

        def run(batch: torch.Tensor) -> torch.Tensor:
            output = towers.run(tower, batch)  # type: ignore[arg-type]
            if output is None:
                raise click.ClickException(f"the {tower} tower of {self.arch} does not run in ONNX Runtime")
            return output

        return run


def _bench_model(arch: str, device: torch.device, model_precision: str, backends: list[str]) -> _Bench:
    """The shipped model with its weights (``explorer-small``), else the architecture with random weights."""
    onnx = any(backend in ONNX_BACKENDS for backend in backends)
    if not random_weights_arch(arch):  # shipped in a package: no download
        loaded = load_model(arch, device=str(device), precision=model_precision, backend="onnx" if onnx else "torch")
        model, tokenizer, towers, weights = loaded.model, loaded.tokenizer, loaded.onnx, loaded.model_id
    else:
        torch.manual_seed(0)
        with quiet_open_clip():  # "initialized randomly" is the point here
            model = open_clip.create_model(arch, precision=model_precision, device=device).eval()
        model = model.to(memory_format=torch.channels_last)  # as remoteclip.factory.load_model loads every model
        tokenizer = open_clip.get_tokenizer(arch)
        towers, weights = None, "random (seed 0)"
    size = model.visual.image_size  # type: ignore[union-attr]  # open_clip models only: no SigLIP is shipped
    size = size if isinstance(size, tuple) else (size, size)
    if onnx and towers is None:
        key = export_key(f"random-seed-0-{arch}", open_clip.get_model_config(arch), list(size), packages=False)
        towers = OnnxTowers(model, f"bench-{arch}", key, _export_samples(model, tokenizer, size))
    int8 = None
    if "onnx-int8" in backends and towers is not None:
        preprocess = image_transform_v2(PreprocessCfg(**open_clip.get_model_preprocess_cfg(model)), is_train=False)
        int8 = OnnxTowers(model, towers.name, towers.key, towers.samples, int8=int8_calibration(preprocess))
    return _Bench(arch, model, tokenizer, size, towers, weights, int8)


def bench_arch(
    arch: str,
    batch_sizes: list[int],
    device: torch.device,
    precision: str,
    max_seconds: float,
    max_iters: int,
    backends: list[str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Images/s of one architecture at each batch size and backend, and its query text encoding:
    (measured rows, skipped rows, text rows)."""
    backends = backends or ["torch"]
    model_precision, autocast_dtype = PRECISIONS[precision]
    bench = _bench_model(arch, device, model_precision, backends)
    input_dtype = open_clip.get_input_dtype(model_precision) or torch.float32
    params_m = sum(p.numel() for p in bench.model.visual.parameters()) / 1e6
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    warmup = 10 if device.type == "cuda" else 1
    for batch_size in batch_sizes:
        batch = torch.randn(
            batch_size, 3, *bench.size, generator=torch.Generator().manual_seed(batch_size)
        ).to(device=device, dtype=input_dtype)
        reference: torch.Tensor | None = None
        for backend in backends:
            previous = [row for row in rows if row["backend"] == backend]
            if previous:
                estimate_s = batch_size / previous[-1]["images_per_s"] * (1 + warmup)
                if estimate_s > max_seconds:
                    skipped.append(
                        {"arch": arch, "backend": backend, "batch_size": batch_size,
                         "estimated_s": round(estimate_s, 1)}
                    )
                    click.echo(
                        f"{arch:<14} {backend:<9} batch {batch_size:>4}: skipped "
                        f"(about {estimate_s:.0f} s > --max-seconds)"
                    )
                    continue
            forward = bench.forward(backend, "image")
            inputs = batch.to(memory_format=torch.channels_last) if backend == "torch" else batch.contiguous()
            towers = bench.towers(backend)
            if towers is not None:
                towers.session("image")  # exported (or read from the cache, or quantised) before the clock starts
            iterations, seconds, cpu_seconds = time_encoder(
                bench.model, inputs, autocast_dtype, warmup, max_seconds, max_iters, forward
            )
            images_per_s = iterations * batch_size / seconds
            row: dict[str, Any] = {
                "arch": arch,
                "backend": backend,
                "batch_size": batch_size,
                "images_per_s": round(images_per_s, 2),
                "cpu_ms_per_image": round(cpu_seconds * 1000 / (iterations * batch_size), 3),
                "iterations": iterations,
                "seconds": round(seconds, 3),
                "vision_params_m": round(params_m, 1),
                "image_size": list(bench.size),
                "weights": bench.weights,
                "rss_mb": rss_mb(),
            }
            with torch.inference_mode():
                vectors = F.normalize(forward(inputs).float(), dim=-1).cpu()
            if reference is None:
                reference = vectors
            else:
                row["max_abs_diff"] = float(f"{float((vectors - reference).abs().max()):.2e}")
            if backend == "onnx-int8":
                row["int8"] = bool(towers is not None and towers.image_int8)
                row["mean_cosine"] = round(float((vectors * reference).sum(dim=-1).mean()), 5)
            rows.append(row)
            click.echo(
                f"{arch:<14} {backend:<9} batch {batch_size:>4}: {images_per_s:10.1f} images/s "
                f"({iterations} x {seconds / iterations * 1000:.1f} ms), "
                f"{row['cpu_ms_per_image']:.2f} CPU ms/image"
                + (f", max |Δ| vs {backends[0]} {row['max_abs_diff']:.1e}" if "max_abs_diff" in row else "")
                + (f", mean cosine {row['mean_cosine']:.4f}" if "mean_cosine" in row else "")
            )
    # onnx-int8's text tower is onnx's (fp32): timed once
    text_rows = [
        _time_text(bench, backend, device, max_seconds) for backend in backends if backend != "onnx-int8"
    ]
    del bench
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows, skipped, text_rows


def _time_text(bench: _Bench, backend: str, device: torch.device, max_seconds: float) -> dict[str, Any]:
    """Milliseconds to encode one query (tokenizer and text tower), median of up to :data:`TEXT_RUNS`."""
    forward = bench.forward(backend, "text")
    times: list[float] = []
    with torch.inference_mode():
        forward(bench.tokenizer([QUERY]).to(device))  # warm-up (and the export, for onnx)
        budget = time.perf_counter() + max_seconds
        while len(times) < TEXT_RUNS and (not times or time.perf_counter() < budget):
            start = time.perf_counter()
            forward(bench.tokenizer([QUERY]).to(device))
            _sync(device)
            times.append(time.perf_counter() - start)
    text_ms = statistics.median(times) * 1000
    click.echo(f"{bench.arch:<14} {backend:<9} one query's text: {text_ms:8.1f} ms (median of {len(times)})")
    return {"arch": bench.arch, "backend": backend, "text_ms_p50": round(text_ms, 2), "runs": len(times)}


def compare(rows: list[dict[str, Any]], text_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ONNX Runtime against PyTorch per architecture and batch size: images/s ratio, text ms ratio."""
    by_key = {(row["arch"], row["batch_size"], row["backend"]): row for row in rows}
    text = {(row["arch"], row["backend"]): row["text_ms_p50"] for row in text_rows}
    out = []
    for (arch, batch_size, backend), row in by_key.items():
        plain = by_key.get((arch, batch_size, "torch"))
        if backend != "onnx" or plain is None:
            continue
        entry: dict[str, Any] = {
            "arch": arch,
            "batch_size": batch_size,
            "torch_images_per_s": plain["images_per_s"],
            "onnx_images_per_s": row["images_per_s"],
            "speedup": round(row["images_per_s"] / plain["images_per_s"], 2),
            "max_abs_diff": row.get("max_abs_diff"),
        }
        if (arch, "torch") in text and (arch, "onnx") in text:
            entry["text_ms_torch"], entry["text_ms_onnx"] = text[(arch, "torch")], text[(arch, "onnx")]
        out.append(entry)
    return out


def compare_int8(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The int8 image tower against the fp32 one in ONNX Runtime per architecture and batch size."""
    by_key = {(row["arch"], row["batch_size"], row["backend"]): row for row in rows}
    out = []
    for (arch, batch_size, backend), row in by_key.items():
        fp32 = by_key.get((arch, batch_size, "onnx"))
        if backend != "onnx-int8" or fp32 is None:
            continue
        out.append(
            {
                "arch": arch,
                "batch_size": batch_size,
                "int8": row.get("int8"),
                "onnx_images_per_s": fp32["images_per_s"],
                "int8_images_per_s": row["images_per_s"],
                "images_per_s_ratio": round(row["images_per_s"] / fp32["images_per_s"], 2),
                "onnx_cpu_ms_per_image": fp32["cpu_ms_per_image"],
                "int8_cpu_ms_per_image": row["cpu_ms_per_image"],
                "cpu_time_ratio": round(row["cpu_ms_per_image"] / fp32["cpu_ms_per_image"], 2),
            }
        )
    return out


@click.command()
@click.option(
    "--arch",
    "archs",
    default="explorer-small,RN50,ViT-B-32,ViT-L-14",
    show_default=True,
    help="Comma-separated open_clip architectures (random weights) or the shipped explorer-small (its weights).",
)
@click.option("--batch-sizes", default="1,32,256", show_default=True, callback=_int_list)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default=None,
    help="Default: cuda when available, else cpu.",
)
@click.option(
    "--backend",
    "backends",
    default=None,
    callback=lambda ctx, param, value: None if value is None else _backends(ctx, param, value),
    help="Comma-separated backends timed side by side: torch, onnx (ONNX Runtime, CPU only), onnx-int8 "
    "(the image tower in int8, calibrated on $REMOTECLIP_INT8_CALIBRATION) "
    "[default: torch,onnx on the CPU, torch on CUDA].",
)
@click.option(
    "--precision",
    type=click.Choice(list(PRECISIONS)),
    default="fp32",
    show_default=True,
    help="fp32, amp (fp32 weights + fp16 autocast), fp16 or bf16 weights.",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Time budget per batch size (default 10 on CPU, 5 on CUDA).",
)
@click.option(
    "--max-iters",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Most timed iterations per batch size.",
)
def encode(
    archs: str,
    batch_sizes: list[int],
    device: str | None,
    backends: list[str] | None,
    precision: str,
    max_seconds: float | None,
    max_iters: int,
) -> None:
    """Image-encoder throughput (and one query's text encoding) per backend; writes
    benchmarks/results/encode_<device>*.json (encode_cpu_int8*.json with onnx-int8)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("no CUDA GPU is available here; use --device cpu", param_hint="--device")
    backends = backends or (["torch", "onnx"] if device == "cpu" and precision == "fp32" else ["torch"])
    onnx = [backend for backend in backends if backend in ONNX_BACKENDS]
    if onnx and (device != "cpu" or precision != "fp32"):
        raise click.BadParameter(f"the {onnx[0]} backend runs fp32 on the CPU", param_hint="--backend")
    arch_list = [arch.strip() for arch in archs.split(",") if arch.strip()]
    unknown = [arch for arch in arch_list if arch not in open_clip.list_models()]
    if unknown:
        raise click.BadParameter(f"unknown open_clip architectures {unknown}", param_hint="--arch")
    budget = max_seconds if max_seconds is not None else (5.0 if device == "cuda" else 10.0)
    torch_device = torch.device(device)
    torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest convolutions
    results, skipped, text = [], [], []
    load_before = os.getloadavg()[0]
    for arch in arch_list:
        rows, skips, text_rows = bench_arch(arch, batch_sizes, torch_device, precision, budget, max_iters, backends)
        results += rows
        skipped += skips
        text += text_rows
    comparison = compare(results, text)
    for entry in comparison:
        click.echo(
            f"{entry['arch']:<14} batch {entry['batch_size']:>4}: ONNX Runtime {entry['speedup']:.2f}x PyTorch "
            f"({entry['onnx_images_per_s']:.1f} vs {entry['torch_images_per_s']:.1f} images/s)"
        )
    int8 = compare_int8(results)
    for entry in int8:
        click.echo(
            f"{entry['arch']:<14} batch {entry['batch_size']:>4}: int8 {entry['images_per_s_ratio']:.2f}x fp32 "
            f"images/s, {entry['cpu_time_ratio']:.2f}x its CPU time per image "
            f"({entry['int8_cpu_ms_per_image']:.2f} vs {entry['onnx_cpu_ms_per_image']:.2f} ms)"
        )
    name = f"encode_{device}" if precision == "fp32" else f"encode_{device}_{precision}"
    if "onnx-int8" in backends:  # kept apart from the fp32 runs' file
        name += "_int8"
    if device == "cpu" and torch.get_num_threads() != (os.cpu_count() or 1):  # OMP_NUM_THREADS set
        name += f"_{torch.get_num_threads()}threads"
    path = write_result(
        name,
        {
            "device": device,
            "precision": precision,
            "backends": backends,
            "torch": torch.__version__,
            "onnxruntime": _onnxruntime_version() if onnx else None,
            "int8_calibration": os.environ.get(ENV_INT8_CALIBRATION) if "onnx-int8" in backends else None,
            "threads": torch.get_num_threads(),
            "max_seconds": budget,
            # CPU figures are only comparable on an otherwise idle machine: this says how idle it was
            "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
            "peak_rss_mb": peak_rss_mb(),
            "results": results,
            "skipped": skipped,
            "text": text,
            "comparison": comparison,
            **({"int8_comparison": int8} if "onnx-int8" in backends else {}),
        },
    )
    click.echo(f"wrote {path}")


def _onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
