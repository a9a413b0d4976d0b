"""Load a model by registry name, weights file or model folder: ``load_model`` returns a :class:`LoadedModel`.

Weights are read safely (safetensors, or ``torch.load(weights_only=True)``) and loaded strictly: a checkpoint
that does not fit the architecture is a :class:`~remoteclip.errors.WeightsError`, never a half-loaded model.
open_clip builds the CLIP models (state dicts and folders in open_clip's Hub layout); ``transformers`` builds
SigLIP folders (:mod:`remoteclip.siglip`), which then encode and score through the same interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import pickle
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.model import CLIP, CustomTextCLIP
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from remoteclip.errors import InputError, ModelNotFoundError, WeightsError
from remoteclip.model_configs import register_config
from remoteclip.onnx_backend import ONNX_BACKENDS, OnnxTowers, export_key, int8_calibration, resolve_backend
from remoteclip.package_towers import TRUNK_PREFIX, load_package_trunk
from remoteclip.pretrained import (
    ALIASES,
    DEFAULT_MODEL,
    REGISTRY,
    WeightsEntry,
    check_weights,
    companion_folders,
    entry_for_filename,
    find_weights,
    get_entry,
)
from remoteclip.siglip import (
    SiglipTowers,
    is_siglip_folder,
    read_siglip_config,
    siglip_preprocess,
    siglip_tokenizer,
    siglip_transform,
    siglip_weights,
)

PRECISIONS = ("fp32", "fp16", "bf16")
WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
FOLDER_CONFIG = "open_clip_config.json"
#: weights file names looked for in a model folder, best first (safetensors preferred)
FOLDER_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pt",
    "pytorch_model.bin",
)


@dataclass
class LoadedModel:
    """A model ready to encode: the open_clip (or SigLIP) model, its own preprocessing and tokenizer, a stable id."""

    model: CLIP | CustomTextCLIP | SiglipTowers
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]
    #: names model and weights (``RemoteCLIP-ViT-B-32@<sha256[:12]>``); stored with every vector
    model_id: str
    embed_dim: int
    device: torch.device
    arch: str
    precision: str = "fp32"
    #: what runs the embedding towers: ``torch``, ``onnx`` (ONNX Runtime on the CPU, see ``onnx`` below) or
    #: ``onnx-int8`` (the same with the image tower quantised to int8)
    backend: str = "torch"
    #: the towers in ONNX Runtime when ``backend`` is ``onnx`` or ``onnx-int8`` (exported on first use);
    #: ``model`` stays PyTorch
    onnx: OnnxTowers | None = field(default=None, repr=False, compare=False)

    @property
    def logit_scale(self) -> float:
        """The learned temperature, ``exp(logit_scale)`` (100 for OpenAI-style models)."""
        return float(self.model.logit_scale.exp().item())

    @property
    def logit_bias(self) -> float | None:
        """The bias of a model trained with the sigmoid loss (SigLIP): its score of a pair is
        ``sigmoid(logit_scale * cosine + logit_bias)``; None for a softmax-trained CLIP model."""
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(bias.item())


@dataclass(frozen=True)
class _Source:
    """What to build: a display name, an open_clip architecture, its weights and how to load them."""

    name: str
    arch: str
    weights: Path
    preprocess: dict[str, Any]
    #: the registry entry whose published size and SHA-256 the file must match (None: nothing published)
    expected: WeightsEntry | None = None
    frozen_from_package: tuple[str, ...] = ()
    #: ``open_clip`` (built by open_clip) or ``siglip`` (a transformers folder, ``folder``)
    layout: str = "open_clip"
    folder: Path | None = None
    #: keys of the checkpoint the architecture has no use for are dropped
    extra_keys_ok: bool = False


@dataclass(frozen=True)
class _Built:
    """A model with its weights loaded, its preprocessing, tokenizer and config (the ONNX cache key's part)."""

    model: CLIP | CustomTextCLIP | SiglipTowers
    preprocess: PreprocessCfg
    tokenizer: Callable[..., torch.Tensor]
    config: dict[str, Any]
    embed_dim: int
    #: the image transform when not open_clip's for ``preprocess``
    transform: Callable[[Image.Image], torch.Tensor] | None = None


def load_model(
    name_or_path: str | Path | None = None,
    *,
    weights: Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    backend: str | None = None,
) -> LoadedModel:
    """Load a model by registry name (``None``: the project default), weights file or folder with a config.

    Args:
        name_or_path: registry name or alias (``RemoteCLIP-ViT-B-32``, ``ViT-B-32``), an open_clip
            architecture (then ``weights`` is required), a weights file named like an official one, or a model
            folder holding ``open_clip_config.json`` and weights.
        weights: local weights file to use instead of the Hub / shipped file.
        device: torch device (``cpu``, ``cuda``, ``cuda:1``).
        precision: ``fp32``, ``fp16`` or ``bf16``.
        backend: what runs the embedding towers: ``auto`` (ONNX Runtime for fp32 on the CPU, PyTorch
            elsewhere), ``torch`` or ``onnx``; ``None``: ``REMOTECLIP_BACKEND``, else ``auto``. Both give the
            same vectors (to 1e-5), so a library ingested with one is searched with the other. ``onnx-int8``
            (opt-in): ONNX Runtime with the image tower quantised to int8, calibrated on the images of
            ``REMOTECLIP_INT8_CALIBRATION``; its image vectors are close to fp32's, not equal (see
            :mod:`remoteclip.onnx_backend`).
    """
    torch_device = _check_device(device)
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r} is not supported; use one of {', '.join(PRECISIONS)}")
    chosen_backend = resolve_backend(backend, torch_device, precision)
    source = _resolve_source(DEFAULT_MODEL if name_or_path is None else str(name_or_path), weights)
    digest = check_weights(source.weights, source.expected)
    state_dict = read_state_dict(source.weights)
    build = _build_siglip if source.layout == "siglip" else _build_open_clip
    built = build(source, state_dict, torch_device, precision)
    preprocess = built.transform or image_transform_v2(built.preprocess, is_train=False)
    onnx = None
    if chosen_backend in ONNX_BACKENDS:
        key = export_key(digest, built.config, built.preprocess.size, packages=bool(source.frozen_from_package))
        onnx = OnnxTowers(
            built.model,
            source.name,
            key,
            _export_samples(built.model, built.tokenizer, built.preprocess.size),
            int8=int8_calibration(preprocess) if chosen_backend == "onnx-int8" else None,
        )
    return LoadedModel(
        model=built.model,
        preprocess=preprocess,
        tokenizer=built.tokenizer,
        model_id=f"{source.name}@{digest[:12]}",
        embed_dim=built.embed_dim,
        device=torch_device,
        arch=source.arch,
        precision=precision,
        backend=chosen_backend,
        onnx=onnx,
    )


def _build_open_clip(
    source: _Source, state_dict: dict[str, torch.Tensor], device: torch.device, precision: str
) -> _Built:
    """An open_clip model of ``source.arch`` with the state dict loaded strictly."""
    try:
        with quiet_open_clip():  # it warns "initialized randomly": the weights come next
            model = open_clip.create_model(
                source.arch,
                precision=precision,
                device=device,
                force_preprocess_cfg=source.preprocess,
                # a Hugging Face text tower's own weights only where the checkpoint leaves them out
                pretrained_text=bool(source.frozen_from_package),
            )
    except OSError as exc:  # transformers: a text tower's config or tokenizer neither local nor cached
        raise ModelNotFoundError(
            f"model {source.name!r} needs its Hugging Face text tower, which is not here "
            f"({str(exc).splitlines()[0]}); download it where the Hub can be reached, or pass a folder whose "
            f"{FOLDER_CONFIG} names a local copy"
        ) from exc
    load_weights(
        model,
        state_dict,
        source.weights,
        allowed_missing=source.frozen_from_package,
        extra_keys_ok=source.extra_keys_ok,
    )
    if TRUNK_PREFIX in source.frozen_from_package:
        load_package_trunk(model)
    model.eval()
    model = model.to(memory_format=torch.channels_last)  # faster convolutions on CPU and GPU alike
    model_config = open_clip.get_model_config(source.arch)
    return _Built(
        model=model,
        preprocess=PreprocessCfg(**open_clip.get_model_preprocess_cfg(model)),
        tokenizer=open_clip.get_tokenizer(source.arch),
        config=model_config,
        embed_dim=int(model_config["embed_dim"]),
    )


def _build_siglip(
    source: _Source, state_dict: dict[str, torch.Tensor], device: torch.device, precision: str
) -> _Built:
    """A ``transformers`` SigLIP model of ``source.folder`` with the state dict loaded strictly."""
    assert source.folder is not None  # set for every siglip source by _siglip_source
    config = read_siglip_config(source.folder)
    model = SiglipTowers(config)
    load_weights(model.siglip, state_dict, source.weights)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    model = model.to(device=device, dtype=dtype).eval()
    text_config = config.text_config
    preprocess = siglip_preprocess(source.folder)
    return _Built(
        model=model,
        preprocess=preprocess,
        transform=siglip_transform(preprocess),
        tokenizer=siglip_tokenizer(source.folder, int(text_config.max_position_embeddings)),
        config=config.to_dict(),
        embed_dim=int(getattr(text_config, "projection_size", None) or text_config.hidden_size),
    )


#: texts the text tower is exported and checked with
_SAMPLE_TEXTS = ("a satellite image of many cars in a parking lot", "a harbour", "forest")


def _export_samples(
    model: torch.nn.Module, tokenizer: Callable[..., torch.Tensor], size: int | tuple[int, int]
) -> dict[str, Callable[[int], torch.Tensor]]:
    """Sample inputs of ``n`` rows for exporting and checking each tower (seeded images, fixed texts)."""
    height, width = (size, size) if isinstance(size, int) else size

    def images(n: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(n)
        return torch.randn(n, 3, height, width, generator=generator)

    def texts(n: int) -> torch.Tensor:
        return tokenizer([_SAMPLE_TEXTS[i % len(_SAMPLE_TEXTS)] for i in range(n)])

    return {"image": images, "text": texts}


@contextlib.contextmanager
def quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's root-logger warnings (it logs through ``logging`` directly) for one call."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _check_device(device: str) -> torch.device:
    try:
        torch_device = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"device {device!r} is not a torch device; use cpu or cuda") from exc
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but no CUDA GPU is available here; use --device cpu")
    return torch_device


def _resolve_source(name_or_path: str, weights: Path | None) -> _Source:
    """Decide architecture, weights file and preprocessing for what the user named."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _siglip_source(path.name, path) if is_siglip_folder(path) else _folder_source(path, weights)
    if path.is_file():
        if weights is not None:
            raise InputError(
                f"both a weights file as the model ({name_or_path!r}) and --weights {weights} were "
                f"given; pass the architecture or registry name as --model instead"
            )
        entry = entry_for_filename(path)
        if entry is None:
            raise InputError(
                f"cannot tell which architecture {path.name!r} is; pass --model NAME --weights "
                f"{path} (NAME: a registry name such as ViT-B-32, or an open_clip architecture), or "
                f"a folder holding {FOLDER_CONFIG} and the weights"
            )
        return _entry_source(entry, path, official_file=True)
    if path.suffix in WEIGHTS_SUFFIXES or len(path.parts) > 1:
        raise ModelNotFoundError(f"model file or folder {name_or_path!r} does not exist; check the path")
    if (
        name_or_path in open_clip.list_models()
        and name_or_path not in REGISTRY
        and name_or_path not in ALIASES
    ):
        if weights is None:
            raise ModelNotFoundError(
                f"{name_or_path!r} is an architecture without registered weights; pass a "
                f"weights file with --weights PATH"
            )
        return _Source(name=name_or_path, arch=name_or_path, weights=weights, preprocess={})
    entry = get_entry(name_or_path)
    if weights is not None:  # the user's own file (a fine-tune, say): no published checksum applies
        return _entry_source(entry, weights.expanduser(), official_file=False)
    return _entry_source(entry, find_weights(entry), official_file=True)


def _entry_source(entry: WeightsEntry, weights: Path, official_file: bool) -> _Source:
    """What to build for a registry entry whose weights are ``weights`` (a folder layout: the file or its folder)."""
    expected = entry if official_file else None
    if entry.layout != "open_clip":
        if weights.is_dir():
            folder, file = weights, None
        else:
            folder, file = weights.parent, weights
        if entry.layout == "siglip":
            return _siglip_source(entry.name, folder, file, expected)
        return _folder_source(folder, file, entry.name, companion_folders(entry), expected)
    preprocess = {key: value for key, value in asdict(entry.preprocess).items() if key != "size"}
    return _Source(
        name=entry.name,
        arch=entry.arch,
        weights=weights,
        preprocess=preprocess,
        expected=expected,
        frozen_from_package=entry.frozen_from_package,
        extra_keys_ok=entry.extra_keys_ok,
    )


def _siglip_source(
    name: str, folder: Path, weights: Path | None = None, expected: WeightsEntry | None = None
) -> _Source:
    """A ``transformers`` SigLIP folder (config, weights, preprocessing, tokenizer)."""
    if not is_siglip_folder(folder):
        raise ModelNotFoundError(
            f"{str(folder)!r} is not a SigLIP folder (no config.json with model_type 'siglip'); pass the "
            f"folder of the Hub repo with --weights FOLDER"
        )
    return _Source(
        name=name,
        arch=f"siglip:{name}",
        weights=weights or siglip_weights(folder),
        preprocess={},
        expected=expected,
        layout="siglip",
        folder=folder,
    )


def _folder_source(
    folder: Path,
    weights: Path | None,
    name: str | None = None,
    local_towers: Mapping[str, Path] | None = None,
    expected: WeightsEntry | None = None,
) -> _Source:
    """A folder in open_clip's Hub layout: ``open_clip_config.json`` (with ``model_cfg``) + weights.

    ``local_towers`` maps Hugging Face names in the config's ``text_cfg`` (``xlm-roberta-base``) to local
    copies, so the text tower and tokenizer load from there.
    """
    config_file = folder / FOLDER_CONFIG
    try:
        config = json.loads(config_file.read_text())
        model_cfg = config["model_cfg"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(
            f"model folder {str(folder)!r} needs a readable {FOLDER_CONFIG} with a "
            f"'model_cfg' entry ({exc!r}); write one as open_clip's push_to_hf_hub does"
        ) from exc
    if weights is None:
        weights = next((folder / name for name in FOLDER_WEIGHTS if (folder / name).is_file()), None)
        if weights is None:
            raise ModelNotFoundError(
                f"model folder {str(folder)!r} holds no weights file (looked for "
                f"{', '.join(FOLDER_WEIGHTS)}); add one or pass --weights PATH"
            )
    text_cfg = model_cfg.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if text_cfg.get(key) in (local_towers or {}):
            text_cfg[key] = str((local_towers or {})[text_cfg[key]])
    # one architecture name per folder, so two folders with equal names never share a config
    arch = f"{folder.name}-{hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:8]}"
    register_config(arch, model_cfg)
    return _Source(
        name=name or folder.name,
        arch=arch,
        weights=weights,
        preprocess=config.get("preprocess_cfg", {}),
        expected=expected,
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely from ``.safetensors`` or a ``torch.save`` file (``weights_only``).

    Accepts open_clip_train checkpoints (``{"state_dict": ...}`` with ``module.`` prefixes).
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            checkpoint: Any = load_file(path)
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path} is not a plain weights file: unpickling it would run code or build objects "
            f"other than tensors, so it was refused ({str(exc).splitlines()[0]}); use a "
            f"safetensors file or a state dict saved with torch.save"
        ) from exc
    except Exception as exc:  # torch and safetensors raise RuntimeError, EOFError, OSError, SafetensorError
        raise WeightsError(
            f"{path} cannot be read as a weights file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); it is truncated or "
            f"corrupt: download or export it again"
        ) from exc
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        raise WeightsError(
            f"{path} does not hold a state dict (a mapping of names to tensors); export one with "
            f"torch.save(model.state_dict(), path)"
        )
    return {key.removeprefix("module."): value for key, value in checkpoint.items()}


def load_weights(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    path: Path,
    allowed_missing: tuple[str, ...] = (),
    extra_keys_ok: bool = False,
) -> None:
    """Load ``state_dict`` strictly; only keys starting with ``allowed_missing`` prefixes may be absent.

    ``extra_keys_ok``: keys the model does not have are dropped first (checkpoints published with extra keys).
    """
    if extra_keys_ok:
        known = model.state_dict().keys()
        state_dict = {key: value for key, value in state_dict.items() if key in known}
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:
        mismatches = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise WeightsError(
            f"{path} does not fit this architecture: {'; '.join(mismatches[:3]) or exc}; "
            f"choose the --model the weights were trained with"
        ) from exc
    missing = [key for key in result.missing_keys if not key.startswith(allowed_missing)]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"{path} does not fit this architecture: {len(missing)} missing keys "
            f"{missing[:3]}, {len(result.unexpected_keys)} unexpected keys "
            f"{result.unexpected_keys[:3]}; choose the --model the weights were trained with"
        )


def save_weights(
    state_dict: Mapping[str, torch.Tensor], path: Path, drop_prefixes: tuple[str, ...] = ()
) -> Path:
    """Write a state dict as safetensors without keys under ``drop_prefixes`` (towers a package ships)."""
    from safetensors.torch import save_file

    tensors = {
        key: value.detach().cpu().contiguous()
        for key, value in state_dict.items()
        if not key.startswith(drop_prefixes)
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path
