"""Text-prompted object locator: a centre-point heatmap head on the image tower's feature maps.

The head reads the frozen trunk's feature maps at strides 8, 16 and 32 (:func:`trunk_features`), is
conditioned on the text embedding of the object words by FiLM (so "airplanes", "aircraft" and "jets" all work,
and one head serves every class it was trained on), and outputs one logit per stride-8 cell: high where an
object's centre lies. Objects are the peaks above a threshold (:func:`find_peaks`), so a count is the number
of objects found and each has a position. Training lives in :mod:`pipelines.training.locator`; its weights and
card (threshold, trained classes, the trunk's model id) ship beside the model's weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from remoteclip.errors import InputError, ModelNotFoundError, WeightsError
from remoteclip.factory import LoadedModel
from remoteclip.model_configs import package_path
from remoteclip.zeroshot import build_classifier

#: the head's output cell, in input pixels
STRIDE = 8
#: trunk stages the head reads (timm ``forward_intermediates`` indices: strides 8, 16, 32)
TRUNK_STAGES: tuple[int, ...] = (2, 3, 4)
#: side of the chips the locator sees, in pixels
CHIP_PX = 256
#: a query whose text is less similar than this to every trained class gets a warning
KNOWN_CLASS_MIN_COSINE = 0.6
#: where the shipped locators live (``<model name>-locator.safetensors`` + ``.json``)
WEIGHTS_DIR = "pkg://remoteclip/weights"


class LocatorHead(nn.Module):
    """Feature pyramid (strides 8/16/32) → FiLM by the text → a centre logit per stride-8 cell."""

    def __init__(self, in_channels: Sequence[int], text_dim: int, width: int = 64) -> None:
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.text_dim = text_dim
        self.width = width
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.in_channels)
        self.film = nn.Linear(text_dim, 2 * width)
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.GroupNorm(8, width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GroupNorm(8, width),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(width, 1, 1)
        assert self.out.bias is not None  # Conv2d has a bias unless told otherwise
        nn.init.constant_(self.out.bias, -4.0)  # start near "nothing here" (CenterNet's prior)

    def forward(self, features: Sequence[torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        """``features`` at strides 8/16/32, ``text`` (B, D) → logits (B, H/8, W/8)."""
        size = features[0].shape[-2:]
        fused = sum(
            F.interpolate(lateral(f), size=size, mode="bilinear", align_corners=False) if i else lateral(f)
            for i, (lateral, f) in enumerate(zip(self.lateral, features, strict=True))
        )
        gamma, beta = self.film(text).chunk(2, dim=-1)
        fused = F.relu(fused * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])
        return self.out(self.body(fused))[:, 0]


@dataclass(frozen=True)
class LocatedObject:
    """One object found: its centre in the pixels of the chip it was found in, and its score (0..1)."""

    x: float
    y: float
    score: float


@dataclass
class ObjectLocator:
    """A trained head with what it was trained for: the trunk's model id, classes and the score threshold."""

    head: LocatorHead
    model_id: str
    threshold: float
    #: the words it was trained with, as their class per row and their text embeddings (W, D), for the
    #: unknown-class warning
    classes: tuple[str, ...]
    class_embeddings: np.ndarray
    #: object-level figures of its held-out validation (written by training, shown by the model card)
    validation: dict[str, float]

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes it was trained on, each once."""
        return tuple(dict.fromkeys(self.classes))

    def known_class(self, text_embedding: np.ndarray) -> tuple[str, float]:
        """The trained class nearest to a query embedding, and its cosine similarity."""
        sims = self.class_embeddings @ np.asarray(text_embedding, dtype=np.float32)
        best = int(np.argmax(sims))
        return self.classes[best], float(sims[best])

    def save(self, path: Path) -> None:
        """Write ``path`` (safetensors) and its card ``path.with_suffix('.json')``."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        tensors["class_embeddings"] = torch.from_numpy(np.ascontiguousarray(self.class_embeddings))
        save_file(tensors, str(path))
        card = {
            "model_id": self.model_id,
            "threshold": self.threshold,
            "classes": list(self.classes),
            "in_channels": list(self.head.in_channels),
            "text_dim": self.head.text_dim,
            "width": self.head.width,
            "validation": self.validation,
        }
        path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def read_locator(path: Path) -> ObjectLocator:
    """An :class:`ObjectLocator` from its safetensors file and the card beside it."""
    card_path = path.with_suffix(".json")
    if not path.is_file() or not card_path.is_file():
        raise ModelNotFoundError(f"no object locator at {path} (needs {path.name} and {card_path.name})")
    try:
        card = json.loads(card_path.read_text())
        tensors = load_file(str(path))
        head = LocatorHead(card["in_channels"], card["text_dim"], card["width"])
        embeddings = tensors.pop("class_embeddings").float().numpy()
        head.load_state_dict({k: v.float() for k, v in tensors.items()})
    except (KeyError, ValueError, RuntimeError, OSError, SafetensorError) as exc:
        raise WeightsError(f"{path} is not an object locator this version can load: {exc}") from exc
    head.eval()
    return ObjectLocator(
        head=head,
        model_id=card["model_id"],
        threshold=float(card["threshold"]),
        classes=tuple(card["classes"]),
        class_embeddings=embeddings,
        validation=card.get("validation", {}),
    )


def locator_path(model: LoadedModel) -> Path:
    """Where the shipped locator of ``model`` lives (named after the model, without its weights hash)."""
    name = model.model_id.split("@", 1)[0]
    return package_path(f"{WEIGHTS_DIR}/{name}-locator.safetensors")


def load_locator(model: LoadedModel, path: Path | None = None) -> ObjectLocator:
    """The locator trained on ``model``'s image tower (the shipped one unless ``path``); refuses others."""
    if path is None:
        try:
            path = locator_path(model)
        except ModelNotFoundError:
            name = model.model_id.split("@", 1)[0]
            raise ModelNotFoundError(
                f"no object locator ships for {name}; count with --method remotecount, or train one with "
                "`remoteclip-explorer train-locator --model ...` and pass it with --locator"
            ) from None
    locator = read_locator(path)
    if locator.model_id != model.model_id:
        raise WeightsError(
            f"the object locator was trained on {locator.model_id}, not {model.model_id}; "
            "train one for this model with `remoteclip-explorer train-locator` "
            "or count with --method remotecount"
        )
    return locator


def trunk_features(model: LoadedModel, chips: torch.Tensor) -> list[torch.Tensor]:
    """The image tower's feature maps at strides 8, 16 and 32 for normalised chips (B, 3, H, W)."""
    trunk = getattr(getattr(model.model, "visual", None), "trunk", None)
    if trunk is None or not hasattr(trunk, "forward_intermediates"):
        raise InputError(
            f"{model.arch} has no convolutional trunk with feature maps; the object locator needs a timm "
            "image tower such as explorer-small's (count with --method remotecount instead)"
        )
    return list(trunk.forward_intermediates(chips, indices=list(TRUNK_STAGES), intermediates_only=True))


def chips_tensor(chips: Sequence[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (H, W, 3) chips of one size → a normalised float batch (B, 3, H, W) (no resize, no crop)."""
    if not chips:
        raise InputError("no chips to locate objects in")
    batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return ((batch - mean) / std).to(device)


def object_embedding(model: LoadedModel, noun: str) -> np.ndarray:
    """The query embedding of an object noun: its zero-shot prompt ensemble, L2-normalised (D,)."""
    if not noun.strip():
        raise InputError("the object to locate is empty; type e.g. 'airplanes'")
    return build_classifier(model, [noun.strip()])[0]


def find_peaks(heatmap: np.ndarray, threshold: float) -> list[LocatedObject]:
    """Local maxima (3×3) of a score map (H, W) at or above ``threshold``, as cell-centre pixel positions."""
    scores = torch.from_numpy(np.ascontiguousarray(heatmap, dtype=np.float32))[None, None]
    is_peak = (F.max_pool2d(scores, 3, stride=1, padding=1) == scores) & (scores >= threshold)
    rows, cols = np.nonzero(is_peak[0, 0].numpy())
    return [
        LocatedObject(x=(c + 0.5) * STRIDE, y=(r + 0.5) * STRIDE, score=float(heatmap[r, c]))
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
    ]


def score_maps(
    model: LoadedModel, locator: ObjectLocator, chips: Sequence[np.ndarray], text_embedding: np.ndarray
) -> np.ndarray:
    """Object-centre scores (N, H/8, W/8) in 0..1 for uint8 chips of one size, for one query embedding."""
    text = torch.from_numpy(np.asarray(text_embedding, dtype=np.float32))[None].to(model.device)
    with torch.inference_mode():
        features = trunk_features(model, chips_tensor(chips, model.device))
        logits = locator.head.to(model.device)(features, text.expand(len(chips), -1))
    return torch.sigmoid(logits).float().cpu().numpy()
