"""Batched image and text encoding: L2-normalised float32 arrays of shape ``(N, D)``.

Runs under ``torch.inference_mode``; on CUDA with autocast (fp16) and channels-last inputs. On the CPU the
same inputs give the same vectors on every call. A model loaded with the ``onnx`` backend (the default on the
CPU) runs its towers in ONNX Runtime (:mod:`remoteclip.onnx_backend`); the vectors equal PyTorch's to 1e-5.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.model import get_input_dtype
from PIL import Image
from torchvision.transforms import Normalize, ToTensor

from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel

ImageLike = np.ndarray | Image.Image

#: query embeddings kept by :func:`encode_query`, the most recently used ones
QUERY_CACHE_SIZE = 256
_QUERY_VECTORS: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()


def encode_images(model: LoadedModel, images: Sequence[ImageLike], batch_size: int = 64) -> np.ndarray:
    """Embed images (uint8 ``(H, W, 3)`` arrays or PIL images) through the model's own preprocessing."""
    batches = (
        preprocess_batch(model, images[start : start + batch_size]) for start in range(0, len(images), batch_size)
    )
    return _encode(model, _forward(model, "image"), batches)


def preprocess_batch(model: LoadedModel, images: Sequence[ImageLike]) -> torch.Tensor:
    """The model's preprocessing of ``images`` as one float32 ``(N, 3, H, W)`` batch.

    open_clip's pipeline ends in ``ToTensor`` and ``Normalize``: those two run here in numpy on the whole
    batch (the same float32 arithmetic, single-threaded) rather than as small torch ops per image, which cost
    ~10x more on a busy 2-core CPU (each spreads over the intra-op threads) and starved a 5x faster model.
    The PIL steps before them (resize, crop, mode) run per image as before.
    """
    steps = getattr(model.preprocess, "transforms", None)
    tail = steps[-2:] if isinstance(steps, list) else []
    if len(tail) < 2 or not isinstance(tail[0], ToTensor) or not isinstance(tail[1], Normalize):
        return torch.stack([model.preprocess(as_pil(image)) for image in images])
    assert steps is not None
    pil_steps = steps[:-2]
    arrays = []
    for image in images:
        pil = as_pil(image)
        for step in pil_steps:
            pil = step(pil)
        arrays.append(np.asarray(pil.convert("RGB") if pil.mode != "RGB" else pil))
    mean = np.asarray(tail[1].mean, dtype=np.float32)
    std = np.asarray(tail[1].std, dtype=np.float32)
    batch = np.stack(arrays).astype(np.float32) / np.float32(255)  # (N, H, W, 3)
    batch -= mean
    batch /= std
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))


def encode_texts(model: LoadedModel, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Embed texts with the model's own tokenizer."""
    if isinstance(texts, str):
        raise InputError(
            f"encode_texts takes a sequence of texts, not one string ({texts!r}); wrap it in a list"
        )
    texts = list(texts)
    batches = (
        model.tokenizer(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)
    )
    return _encode(model, _forward(model, "text"), batches)


def encode_query(model: LoadedModel, query: str) -> np.ndarray:
    """One query's embedding ``(D,)`` (read-only), kept per model id and text: a page that searches, rates
    and refines one query encodes it once, however often it reruns."""
    key = (model.model_id, query)
    if key in _QUERY_VECTORS:
        _QUERY_VECTORS.move_to_end(key)
    else:
        vector = encode_texts(model, [query])[0]
        vector.setflags(write=False)
        _QUERY_VECTORS[key] = vector
        if len(_QUERY_VECTORS) > QUERY_CACHE_SIZE:
            _QUERY_VECTORS.popitem(last=False)
    return _QUERY_VECTORS[key]


def _forward(model: LoadedModel, tower: Literal["image", "text"]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The tower's forward: ONNX Runtime for a model on the ``onnx`` backend (unless the tower stays on
    PyTorch), else the PyTorch model's ``encode_image`` / ``encode_text``."""
    torch_forward = model.model.encode_image if tower == "image" else model.model.encode_text
    towers = model.onnx
    if towers is None:
        return torch_forward

    def forward(batch: torch.Tensor) -> torch.Tensor:
        output = towers.run(tower, batch)
        return torch_forward(batch) if output is None else output

    return forward


def as_pil(image: ImageLike) -> Image.Image:
    """An RGB PIL image from a PIL image or a uint8 ``(H, W, 3)`` array."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return Image.fromarray(image, mode="RGB")
    described = (
        f"array {image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
    )
    raise InputError(
        f"an image must be a PIL image or a uint8 (H, W, 3) array, got {described}; "
        f"convert it with tiles.reader or PIL first"
    )


def _encode(
    model: LoadedModel, forward: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[torch.Tensor]
) -> np.ndarray:
    """Run ``forward`` over batches (made lazily, one at a time) and return L2-normalised float32 features."""
    on_cuda = model.device.type == "cuda"
    input_dtype = get_input_dtype(model.precision)
    outputs = []
    with torch.inference_mode(), _autocast(model):
        for batch in batches:
            if batch.is_floating_point():
                batch = batch.to(
                    model.device,
                    dtype=input_dtype,
                    non_blocking=on_cuda,
                    # ONNX Runtime takes contiguous NCHW arrays; PyTorch's convolutions are faster channels-last
                    memory_format=(
                        torch.channels_last
                        if batch.ndim == 4 and model.onnx is None
                        else torch.preserve_format
                    ),
                )
            else:
                batch = batch.to(model.device, non_blocking=on_cuda)
            outputs.append(F.normalize(forward(batch).float(), dim=-1).cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, model.embed_dim), dtype=np.float32)


def _autocast(model: LoadedModel) -> contextlib.AbstractContextManager[object]:
    """fp16 autocast for an fp32 model on CUDA; nothing elsewhere."""
    if model.device.type == "cuda" and model.precision == "fp32":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
