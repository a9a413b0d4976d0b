"""``remoteclip-explorer bench encode``: model-only image encoding throughput (images/s) per architecture and
backend, PyTorch and ONNX Runtime side by side in one run, and one query's text encoding (ms).

Random weights for open_clip architectures (nothing is downloaded); the project's shipped model
(``explorer-small``) with its own weights. Random input tensors at the model's image size,
``torch.inference_mode``; on CUDA channels-last inputs and ``torch.cuda.synchronize`` around the timed loop.
The ``onnx`` backend (CPU only) is each tower exported once (:mod:`remoteclip.onnx_backend`, cached) and run by
ONNX Runtime with as many intra-op threads as PyTorch uses; each row says how far its vectors are from
PyTorch's. Batch sizes whose one batch would take longer than ``--max-seconds`` (estimated from the previous
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

from pipelines.bench.common import write_result
from pipelines.cli.options import parse_int_list
from remoteclip.factory import _export_samples, load_model, quiet_open_clip
from remoteclip.onnx_backend import OnnxTowers, export_key
from remoteclip.pretrained import REGISTRY

#: precision -> (open_clip model precision, autocast dtype or None)
PRECISIONS: dict[str, tuple[str, torch.dtype | None]] = {
    "fp32": ("fp32", None),
    "amp": ("fp32", torch.float16),
    "fp16": ("fp16", None),
    "bf16": ("bf16", None),
}
BENCH_BACKENDS = ("torch", "onnx")
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
) -> tuple[int, float]:
    """Run ``forward`` (default ``model.encode_image``) ``warmup`` times, then until ``max_seconds`` or
    ``max_iters``: (iterations, s)."""
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
        iterations, started = 0, time.perf_counter()
        while iterations < max_iters and (iterations == 0 or time.perf_counter() - started < max_seconds):
            run(batch)
            iterations += 1
        _sync(device)
    return iterations, time.perf_counter() - started


@dataclass
class _Bench:
    """One architecture to time: the PyTorch model, its tokenizer, and its towers in ONNX Runtime."""

    arch: str
    model: CLIP | CustomTextCLIP
    tokenizer: Callable[..., torch.Tensor]
    size: tuple[int, int]
    onnx: OnnxTowers | None
    weights: str

    def forward(self, backend: str, tower: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if backend == "torch":
            return self.model.encode_image if tower == "image" else self.model.encode_text
        towers = self.onnx
        assert towers is not None

        def run(batch: torch.Tensor) -> torch.Tensor:
            output = towers.run(tower, batch)  # type: ignore[arg-type]
            if output is None:
                raise click.ClickException(f"the {tower} tower of {self.arch} does not run in ONNX Runtime")
            return output

        return run


def _bench_model(arch: str, device: torch.device, model_precision: str, onnx: bool) -> _Bench:
    """The shipped model with its weights (``explorer-small``), else the architecture with random weights."""
    entry = REGISTRY.get(arch)
    if entry is not None and isinstance(entry.source, str):  # shipped in a package: no download
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
    return _Bench(arch, model, tokenizer, size, towers, weights)


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
    bench = _bench_model(arch, device, model_precision, "onnx" in backends)
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
                        f"{arch:<14} {backend:<5} batch {batch_size:>4}: skipped "
                        f"(about {estimate_s:.0f} s > --max-seconds)"
                    )
                    continue
            forward = bench.forward(backend, "image")
            inputs = batch.to(memory_format=torch.channels_last) if backend == "torch" else batch.contiguous()
            if backend == "onnx" and bench.onnx is not None:
                bench.onnx.session("image")  # exported (or read from the cache) before the clock starts
            iterations, seconds = time_encoder(
                bench.model, inputs, autocast_dtype, warmup, max_seconds, max_iters, forward
            )
            images_per_s = iterations * batch_size / seconds
            row: dict[str, Any] = {
                "arch": arch,
                "backend": backend,
                "batch_size": batch_size,
                "images_per_s": round(images_per_s, 2),
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
            rows.append(row)
            click.echo(
                f"{arch:<14} {backend:<5} batch {batch_size:>4}: {images_per_s:10.1f} images/s "
                f"({iterations} x {seconds / iterations * 1000:.1f} ms)"
                + (f", max |Δ| vs {backends[0]} {row['max_abs_diff']:.1e}" if "max_abs_diff" in row else "")
            )
    text_rows = [_time_text(bench, backend, device, max_seconds) for backend in backends]
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
    click.echo(f"{bench.arch:<14} {backend:<5} one query's text: {text_ms:8.1f} ms (median of {len(times)})")
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
    help="Comma-separated backends timed side by side: torch, onnx (ONNX Runtime, CPU only) "
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
    benchmarks/results/encode_<device>*.json."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("no CUDA GPU is available here; use --device cpu", param_hint="--device")
    backends = backends or (["torch", "onnx"] if device == "cpu" and precision == "fp32" else ["torch"])
    if "onnx" in backends and (device != "cpu" or precision != "fp32"):
        raise click.BadParameter("the onnx backend runs fp32 on the CPU", param_hint="--backend")
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
    name = f"encode_{device}" if precision == "fp32" else f"encode_{device}_{precision}"
    if device == "cpu" and torch.get_num_threads() != (os.cpu_count() or 1):  # OMP_NUM_THREADS set
        name += f"_{torch.get_num_threads()}threads"
    path = write_result(
        name,
        {
            "device": device,
            "precision": precision,
            "backends": backends,
            "torch": torch.__version__,
            "onnxruntime": _onnxruntime_version() if "onnx" in backends else None,
            "threads": torch.get_num_threads(),
            "max_seconds": budget,
            # CPU figures are only comparable on an otherwise idle machine: this says how idle it was
            "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
            "peak_rss_mb": peak_rss_mb(),
            "results": results,
            "skipped": skipped,
            "text": text,
            "comparison": comparison,
        },
    )
    click.echo(f"wrote {path}")


def _onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
