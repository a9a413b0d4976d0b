"""Classify an uploaded image: check and store the upload, label the scene and each chip by zero-shot.

Pixel-space images (plain JPEG/PNG) get chip footprints in (col, -row) coordinates, the convention of
:class:`pipelines.services.overview.Overview`, so a map in a flat CRS shows them upright.

Uploads are untrusted: the size is capped, the type is decided by the file's content (magic bytes, then a
real open with rasterio), never by its name, and the stored name is derived from the content hash.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from shapely.affinity import scale
from shapely.geometry.base import BaseGeometry

from pipelines.services.export import feature, feature_collection
from remoteclip.encode import encode_images
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel
from remoteclip.zeroshot import build_classifier, class_probabilities
from tiles.chips import iter_chips
from tiles.errors import RasterReadError
from tiles.grid import ChipSpec
from tiles.reader import open_scene

#: largest upload accepted, in bytes
MAX_UPLOAD_BYTES = 200 * 1024 * 1024

#: detected type -> (file suffix, leading byte signatures)
IMAGE_SIGNATURES: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "geotiff": (".tif", (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")),
    "jpeg": (".jpg", (b"\xff\xd8\xff",)),
    "png": (".png", (b"\x89PNG\r\n\x1a\n",)),
}

DEFAULT_LABELS: tuple[str, ...] = (
    "airport",
    "harbor",
    "residential area",
    "industrial area",
    "forest",
    "farmland",
    "river",
    "parking lot",
    "grassland",
    "bare land",
)

#: chips of the per-chip label layer
CLASSIFY_SPEC = ChipSpec(chip_px=256, overlap_px=0, levels=(1,))

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def detect_image_type(data: bytes) -> str:
    """``"geotiff"``, ``"jpeg"`` or ``"png"`` from the leading bytes; anything else is an InputError."""
    for kind, (_, signatures) in IMAGE_SIGNATURES.items():
        if data.startswith(signatures):
            return kind
    raise InputError(
        f"uploaded file starts with {data[:8]!r}, which is not a GeoTIFF, JPEG or PNG; upload one of those"
    )


def safe_stem(filename: str) -> str:
    """A file-system-safe, short version of an uploaded file's stem (for display in the stored name)."""
    stem = _UNSAFE.sub("-", Path(filename).stem).strip("-")[:40]
    return stem or "upload"


def store_upload(data: bytes, filename: str, upload_dir: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Check an upload (size, type by content, opens as a raster) and store it under a content-hash name.

    The same content always lands at the same path, so uploading a file twice stores it once.
    """
    if len(data) > max_bytes:
        raise InputError(f"{filename!r} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if not data:
        raise InputError(f"{filename!r} is empty; upload a GeoTIFF, JPEG or PNG")
    suffix = IMAGE_SIGNATURES[detect_image_type(data)][0]
    digest = hashlib.sha256(data).hexdigest()[:16]
    target = upload_dir / f"{digest}-{safe_stem(filename)}{suffix}"
    if target.is_file():
        return target
    upload_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=upload_dir, suffix=suffix, prefix=".upload-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        with open_scene(tmp):
            pass
        tmp.replace(target)
    except RasterReadError as exc:
        raise InputError(
            f"{filename!r} looks like an image but cannot be read ({exc}); "
            "upload an intact GeoTIFF, JPEG or PNG"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def parse_labels(text: str) -> list[str]:
    """Labels from comma- or newline-separated text, trimmed and de-duplicated (at least two needed)."""
    labels = list(dict.fromkeys(part.strip() for part in re.split(r"[,\n]", text) if part.strip()))
    if len(labels) < 2:
        raise InputError(
            f"{text.strip()!r} names fewer than two labels; give at least two different ones to choose "
            "between, separated by commas, e.g. 'forest, river, airport'"
        )
    return labels


@dataclass(frozen=True)
class LabelScore:
    """One label and its probability."""

    label: str
    probability: float


def mean_probabilities(labels: list[str], chip_probs: np.ndarray) -> list[LabelScore]:
    """Scene-level probabilities: the per-chip distributions averaged, most likely first."""
    mean = chip_probs.mean(axis=0)
    order = np.argsort(-mean, kind="stable")
    return [LabelScore(labels[i], float(mean[i])) for i in order]


@dataclass(frozen=True)
class SceneClassification:
    """Zero-shot labels of a whole image and of each of its chips."""

    path: Path
    labels: list[str]
    #: scene-level probabilities, most likely first
    scene: list[LabelScore]
    #: one Feature per chip: footprint (EPSG:4326 or pixel (col, -row) space), ``label`` and ``probability``
    chips: dict[str, Any]
    pixel_space: bool

    @property
    def best(self) -> LabelScore:
        """The scene's most likely label."""
        return self.scene[0]


def classify_scene(
    path: Path,
    model: LoadedModel,
    labels: Sequence[str],
    spec: ChipSpec = CLASSIFY_SPEC,
    batch_size: int = 32,
) -> SceneClassification:
    """Label each chip of ``path`` by zero-shot over ``labels``; the scene by the chips' mean distribution."""
    labels = list(labels)
    weights = build_classifier(model, labels)
    footprints: list[BaseGeometry] = []
    probabilities: list[np.ndarray] = []
    with open_scene(path) as scene:
        pixel_space = not scene.georeferenced
        chips = iter_chips(scene, spec)
        while batch := list(islice(chips, batch_size)):
            footprints += [
                scale(c.georef.footprint, 1.0, -1.0, origin=(0, 0)) if pixel_space else c.georef.footprint
                for c in batch
            ]
            vectors = encode_images(model, [c.pixels for c in batch], batch_size)
            probabilities.append(class_probabilities(vectors, weights, model.logit_scale))
    if not footprints:
        raise InputError(f"{path.name} has no chip with enough valid pixels to classify")
    chip_probs = np.concatenate(probabilities)
    best = chip_probs.argmax(axis=1)
    features = [
        feature(footprint, label=labels[j], probability=round(float(row[j]), 3))
        for footprint, row, j in zip(footprints, chip_probs, best)
    ]
    return SceneClassification(
        path=path,
        labels=labels,
        scene=mean_probabilities(labels, chip_probs),
        chips=feature_collection(features),
        pixel_space=pixel_space,
    )
