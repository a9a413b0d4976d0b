"""RemoteCLIP model library: the registry and loading, encoding, prompts, zero-shot, counting, object locator.

The declared public API is ``__all__`` (as open_clip's): ``import remoteclip`` then ``remoteclip.load_model()``,
``remoteclip.encode_images(...)``. Names resolve on first use, so importing a light part of the library
(``remoteclip.errors``, the root of every error the project raises, or ``remoteclip.prompts``) does not load
torch. This package imports nothing else of the project; training (``open_clip_train``) lives in
:mod:`pipelines.training`, apart from the library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ALIASES",
    "BACKENDS",
    "DEFAULT_MODEL",
    "MAX_COUNT",
    "PAPER_TEMPLATE",
    "REGISTRY",
    "ZEROSHOT_TEMPLATES",
    "ArchiveFile",
    "CountEstimate",
    "ExplorerError",
    "HubFile",
    "InputError",
    "LoadedModel",
    "LocatedObject",
    "ModelNotFoundError",
    "ObjectLocator",
    "Prediction",
    "WeightsEntry",
    "WeightsError",
    "aggregate_counts",
    "build_classifier",
    "build_count_captions",
    "cached_weights",
    "class_probabilities",
    "class_prompts",
    "count_captions",
    "encode_images",
    "encode_query",
    "encode_texts",
    "estimate_counts",
    "find_peaks",
    "find_weights",
    "l2_normalize",
    "load_locator",
    "load_model",
    "load_weights",
    "object_embedding",
    "register_config",
    "save_weights",
    "score_maps",
    "top_k",
]

#: module -> the public names it defines (every name of ``__all__`` once)
_MODULES: dict[str, tuple[str, ...]] = {
    "remoteclip.errors": ("ExplorerError", "InputError", "ModelNotFoundError", "WeightsError"),
    "remoteclip.factory": ("LoadedModel", "load_model", "load_weights", "save_weights"),
    "remoteclip.pretrained": (
        "ALIASES",
        "DEFAULT_MODEL",
        "REGISTRY",
        "ArchiveFile",
        "HubFile",
        "WeightsEntry",
        "cached_weights",
        "find_weights",
    ),
    "remoteclip.model_configs": ("register_config",),
    "remoteclip.encode": ("encode_images", "encode_query", "encode_texts"),
    "remoteclip.onnx_backend": ("BACKENDS",),
    "remoteclip.vectors": ("l2_normalize",),
    "remoteclip.prompts": ("MAX_COUNT", "PAPER_TEMPLATE", "ZEROSHOT_TEMPLATES", "class_prompts", "count_captions"),
    "remoteclip.zeroshot": ("Prediction", "build_classifier", "class_probabilities", "top_k"),
    "remoteclip.counting": ("CountEstimate", "aggregate_counts", "build_count_captions", "estimate_counts"),
    "remoteclip.locator": (
        "LocatedObject",
        "ObjectLocator",
        "find_peaks",
        "load_locator",
        "object_embedding",
        "score_maps",
    ),
}
_EXPORTS: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}

if TYPE_CHECKING:
    from remoteclip.counting import CountEstimate, aggregate_counts, build_count_captions, estimate_counts
    from remoteclip.encode import encode_images, encode_query, encode_texts
    from remoteclip.errors import ExplorerError, InputError, ModelNotFoundError, WeightsError
    from remoteclip.factory import LoadedModel, load_model, load_weights, save_weights
    from remoteclip.locator import (
        LocatedObject,
        ObjectLocator,
        find_peaks,
        load_locator,
        object_embedding,
        score_maps,
    )
    from remoteclip.model_configs import register_config
    from remoteclip.onnx_backend import BACKENDS
    from remoteclip.pretrained import (
        ALIASES,
        DEFAULT_MODEL,
        REGISTRY,
        ArchiveFile,
        HubFile,
        WeightsEntry,
        cached_weights,
        find_weights,
    )
    from remoteclip.prompts import (
        MAX_COUNT,
        PAPER_TEMPLATE,
        ZEROSHOT_TEMPLATES,
        class_prompts,
        count_captions,
    )
    from remoteclip.vectors import l2_normalize
    from remoteclip.zeroshot import Prediction, build_classifier, class_probabilities, top_k


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'remoteclip' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
