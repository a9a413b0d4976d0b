"""``remoteclip-explorer bench encode``: model-only image encoding throughput (images/s) per architecture.

Random weights (nothing is downloaded), random input tensors at the model's image size,
``torch.inference_mode``; on CUDA channels-last inputs and ``torch.cuda.synchronize`` around the timed loop.
Needs only torch, open_clip and click. Batch sizes whose one batch would take longer than ``--max-seconds``
(estimated from the previous batch size) are skipped and reported, so CPU runs stay short.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import click
import open_clip
import torch
from open_clip.model import CLIP, CustomTextCLIP

from pipelines.bench.common import write_result
from pipelines.cli.options import parse_int_list
from remoteclip.factory import quiet_open_clip

#: precision -> (open_clip model precision, autocast dtype or None)
PRECISIONS: dict[str, tuple[str, torch.dtype | None]] = {
    "fp32": ("fp32", None),
    "amp": ("fp32", torch.float16),
    "fp16": ("fp16", None),
    "bf16": ("bf16", None),
}


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    numbers = sorted(set(parse_int_list(value, "1,32,256")))
    if not numbers or numbers[0] < 1:
        raise click.BadParameter(f"{value!r} must list positive integers such as 1,32,256")
    return numbers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_encoder(
    model: CLIP | CustomTextCLIP,
    batch: torch.Tensor,
    autocast_dtype: torch.dtype | None,
    warmup: int,
    max_seconds: float,
    max_iters: int,
) -> tuple[int, float]:
    """Run ``encode_image`` ``warmup`` times, then until ``max_seconds`` or ``max_iters``: (iterations, s)."""
    device = batch.device
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        for _ in range(warmup):
            model.encode_image(batch)
        _sync(device)
        iterations, started = 0, time.perf_counter()
        while iterations < max_iters and (iterations == 0 or time.perf_counter() - started < max_seconds):
            model.encode_image(batch)
            iterations += 1
        _sync(device)
    return iterations, time.perf_counter() - started


def bench_arch(
    arch: str,
    batch_sizes: list[int],
    device: torch.device,
    precision: str,
    max_seconds: float,
    max_iters: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Images/s of one architecture at each batch size: (measured rows, skipped rows)."""
    model_precision, autocast_dtype = PRECISIONS[precision]
    torch.manual_seed(0)
    with quiet_open_clip():  # "initialized randomly" is the point here
        model = open_clip.create_model(arch, precision=model_precision, device=device).eval()
    input_dtype = open_clip.get_input_dtype(model_precision) or torch.float32
    memory_format = torch.channels_last  # as remoteclip.factory.load_model loads every model
    model = model.to(memory_format=memory_format)
    size = model.visual.image_size
    size = size if isinstance(size, tuple) else (size, size)
    params_m = sum(p.numel() for p in model.visual.parameters()) / 1e6
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    warmup = 10 if device.type == "cuda" else 1
    for batch_size in batch_sizes:
        if rows:
            estimate_s = batch_size / rows[-1]["images_per_s"] * (1 + warmup)
            if estimate_s > max_seconds:
                skipped.append({"arch": arch, "batch_size": batch_size, "estimated_s": round(estimate_s, 1)})
                click.echo(
                    f"{arch:<10} batch {batch_size:>4}: skipped (about {estimate_s:.0f} s > --max-seconds)"
                )
                continue
        batch = torch.randn(batch_size, 3, *size, device=device, dtype=input_dtype).to(
            memory_format=memory_format
        )
        iterations, seconds = time_encoder(model, batch, autocast_dtype, warmup, max_seconds, max_iters)
        images_per_s = iterations * batch_size / seconds
        rows.append(
            {
                "arch": arch,
                "batch_size": batch_size,
                "images_per_s": round(images_per_s, 2),
                "iterations": iterations,
                "seconds": round(seconds, 3),
                "vision_params_m": round(params_m, 1),
                "image_size": list(size),
            }
        )
        click.echo(
            f"{arch:<10} batch {batch_size:>4}: {images_per_s:10.1f} images/s "
            f"({iterations} x {seconds / iterations * 1000:.1f} ms)"
        )
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows, skipped


@click.command()
@click.option(
    "--arch",
    "archs",
    default="RN50,ViT-B-32,ViT-L-14",
    show_default=True,
    help="Comma-separated open_clip architectures.",
)
@click.option("--batch-sizes", default="1,32,256", show_default=True, callback=_int_list)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default=None,
    help="Default: cuda when available, else cpu.",
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
    precision: str,
    max_seconds: float | None,
    max_iters: int,
) -> None:
    """Image-encoder throughput with random weights; writes benchmarks/results/encode_<device>*.json."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("no CUDA GPU is available here; use --device cpu", param_hint="--device")
    arch_list = [arch.strip() for arch in archs.split(",") if arch.strip()]
    unknown = [arch for arch in arch_list if arch not in open_clip.list_models()]
    if unknown:
        raise click.BadParameter(f"unknown open_clip architectures {unknown}", param_hint="--arch")
    budget = max_seconds if max_seconds is not None else (5.0 if device == "cuda" else 10.0)
    torch_device = torch.device(device)
    torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest convolutions
    results, skipped = [], []
    load_before = os.getloadavg()[0]
    for arch in arch_list:
        rows, skips = bench_arch(arch, batch_sizes, torch_device, precision, budget, max_iters)
        results += rows
        skipped += skips
    name = f"encode_{device}" if precision == "fp32" else f"encode_{device}_{precision}"
    path = write_result(
        name,
        {
            "device": device,
            "precision": precision,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "max_seconds": budget,
            # CPU figures are only comparable on an otherwise idle machine: this says how idle it was
            "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
            "results": results,
            "skipped": skipped,
        },
    )
    click.echo(f"wrote {path}")
