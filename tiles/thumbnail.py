"""Small JPEG previews of chips for result lists."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: longest side of a thumbnail, in pixels
THUMB_PX = 128


def thumbnail_jpeg(
    chip: np.ndarray, shape: tuple[int, int] | None = None, px: int = THUMB_PX, quality: int = 85
) -> bytes:
    """JPEG of the top-left ``shape`` = (rows, cols) of a uint8 (H, W, 3) chip, at most ``px`` on a side."""
    rows, cols = shape if shape is not None else chip.shape[:2]
    image = Image.fromarray(np.ascontiguousarray(chip[:rows, :cols]), mode="RGB")
    image.thumbnail((px, px), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
