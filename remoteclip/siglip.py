"""SigLIP models in ``transformers``' folder layout (Git-RSCLIP), behind open_clip's tower interface.

A folder holds ``config.json`` (``"model_type": "siglip"``), ``model.safetensors``, ``preprocessor_config.json``
and the tokenizer files, as the Hub repos ``lcybuaa/Git-RSCLIP`` and ``lcybuaa/Git-RSCLIP-base`` ship them.
:class:`SiglipTowers` wraps ``transformers.SiglipModel`` with ``encode_image``, ``encode_text``, ``logit_scale``
and ``logit_bias``, so encoding, the ONNX backend and scoring treat it as an open_clip model. Its own sigmoid
score of a pair, ``sigmoid(exp(logit_scale) * cos + logit_bias)``, grows with the cosine, so ranking by cosine
(search, calibration bands) ranks as SigLIP does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from open_clip.transform import PreprocessCfg
from PIL import Image

from remoteclip.errors import ModelNotFoundError, WeightsError

SIGLIP_CONFIG = "config.json"
PREPROCESSOR_CONFIG = "preprocessor_config.json"
#: weights file names looked for in a SigLIP folder, best first
SIGLIP_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
#: PIL resample codes of ``preprocessor_config.json`` -> open_clip interpolation names
_RESAMPLE = {2: "bilinear", 3: "bicubic"}


def is_siglip_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a ``transformers`` SigLIP config."""
    try:
        return json.loads((folder / SIGLIP_CONFIG).read_text()).get("model_type") == "siglip"
    except (OSError, ValueError, AttributeError):
        return False


def siglip_weights(folder: Path) -> Path:
    """The weights file of a SigLIP folder."""
    found = next((folder / name for name in SIGLIP_WEIGHTS if (folder / name).is_file()), None)
    if found is None:
        raise ModelNotFoundError(
            f"SigLIP folder {str(folder)!r} holds no weights file (looked for {', '.join(SIGLIP_WEIGHTS)}); "
            "download the whole Hub repo"
        )
    return found


class SiglipTowers(torch.nn.Module):
    """A ``transformers`` SigLIP model with open_clip's ``encode_image`` / ``encode_text`` (raw embeddings)."""

    def __init__(self, config: Any) -> None:
        from transformers import SiglipModel

        super().__init__()
        self.siglip = SiglipModel(config)

    @property
    def logit_scale(self) -> torch.Tensor:
        """The learned log temperature (as open_clip's ``logit_scale``)."""
        return self.siglip.logit_scale

    @property
    def logit_bias(self) -> torch.Tensor:
        """The learned bias of the sigmoid score."""
        return self.siglip.logit_bias

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image embeddings (the vision head's pooled output) of normalised ``(N, 3, H, W)`` images."""
        return self.siglip.get_image_features(pixel_values=pixel_values).pooler_output

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Text embeddings of token ids padded to the context length, as SigLIP was trained."""
        return self.siglip.get_text_features(input_ids=input_ids).pooler_output


def read_siglip_config(folder: Path) -> Any:
    """The folder's ``SiglipConfig``."""
    from transformers import SiglipConfig

    try:
        return SiglipConfig.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"SigLIP folder {str(folder)!r} needs a readable {SIGLIP_CONFIG} ({str(exc).splitlines()[0]})"
        ) from exc


def siglip_preprocess(folder: Path) -> PreprocessCfg:
    """The folder's ``preprocessor_config.json`` as open_clip preprocessing: squash to size, rescale, normalise."""
    path = folder / PREPROCESSOR_CONFIG
    try:
        cfg = json.loads(path.read_text())
        size = (int(cfg["size"]["height"]), int(cfg["size"]["width"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(
            f"SigLIP folder {str(folder)!r} needs a {PREPROCESSOR_CONFIG} with size.height and size.width ({exc!r})"
        ) from exc
    interpolation = _RESAMPLE.get(int(cfg.get("resample", 3)))
    steps = (cfg.get("do_resize", True), cfg.get("do_rescale", True), cfg.get("do_normalize", True))
    if interpolation is None or not all(steps) or float(cfg.get("rescale_factor", 1 / 255)) != 1 / 255:
        raise WeightsError(
            f"{path} asks for preprocessing this loader does not reproduce (resample {cfg.get('resample')}, "
            f"do_resize/do_rescale/do_normalize {steps}); expected SigLIP's: resize, 1/255, normalise"
        )
    return PreprocessCfg(
        size=size,
        mean=tuple(cfg.get("image_mean", (0.5, 0.5, 0.5))),
        std=tuple(cfg.get("image_std", (0.5, 0.5, 0.5))),
        interpolation=interpolation,
        resize_mode="squash",
    )


def siglip_transform(cfg: PreprocessCfg) -> Callable[[Image.Image], torch.Tensor]:
    """The image preprocessing of ``transformers``' SiglipImageProcessor (its torchvision backend): the uint8
    image resized as a tensor (antialiased), then scaled to 0..1 and normalised."""
    from torchvision.transforms import InterpolationMode, v2

    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(cfg.size, interpolation=InterpolationMode(cfg.interpolation), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(cfg.mean), list(cfg.std)),
        ]
    )


def siglip_tokenizer(folder: Path, context_length: int) -> Callable[[Sequence[str]], torch.Tensor]:
    """The folder's tokenizer as open_clip's: texts -> ids padded (``max_length``) to ``context_length``."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"SigLIP folder {str(folder)!r} holds no readable tokenizer ({str(exc).splitlines()[0]})"
        ) from exc

    def tokenize(texts: Sequence[str]) -> torch.Tensor:
        ids: torch.Tensor = tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=context_length, return_tensors="pt"
        )["input_ids"]
        return ids

    return tokenize
