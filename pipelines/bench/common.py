"""What every benchmark shares: where its figures go (with the machine they were measured on) and its scratch folder."""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import open_clip

from remoteclip.pretrained import REGISTRY

RESULTS_DIR = Path("benchmarks/results")

def machine_info() -> dict[str, Any]:
    """What the figures were measured on (CPU, cores, GPU name when one is used)."""
    import os

    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def write_result(name: str, payload: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write one benchmark's figures (with machine info and a timestamp) as ``<name>.json``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine_info(), **payload}
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(record, indent=2))
    return path


workdir_option = click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the benchmark's temporary files (default: the system temp dir); removed afterwards.",
)


@contextmanager
def scratch_dir(benchmark: str, workdir: Path | None) -> Iterator[Path]:
    """A temporary folder for one benchmark run (inside ``workdir`` when given), removed afterwards."""
    prefix = f"bench-{benchmark}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=workdir, ignore_cleanup_errors=True) as tmp:
        yield Path(tmp)


def random_weights_arch(name: str) -> bool:
    """Whether a benchmark runs ``name`` with random weights: an open_clip architecture (``ViT-B-32``) that no
    pip package ships weights for (``explorer-small`` is timed with its shipped weights)."""
    entry = REGISTRY.get(name)
    return name in open_clip.list_models() and not (entry is not None and isinstance(entry.source, str))


def backend_list(value: str | None, device: str) -> list[str]:
    """The backends of a ``--backend`` option (comma-separated among auto, torch, onnx), each once; by default
    torch and onnx side by side on the CPU, torch on CUDA."""
    if value is None:
        return ["torch", "onnx"] if device == "cpu" else ["torch"]
    names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if not names or any(name not in ("auto", "torch", "onnx") for name in names):
        raise click.BadParameter(f"{value!r} must list backends among auto, torch, onnx", param_hint="--backend")
    return names
