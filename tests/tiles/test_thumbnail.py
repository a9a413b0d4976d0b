"""tiles.thumbnail: every thumbnail is its chip's whole square frame, edge chips padded, at one scale."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tiles.thumbnail import PAD_RGB, thumbnail_jpeg


def decoded(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(int)


@pytest.mark.parametrize("shape", [(256, 256), (256, 40), (40, 256), (100, 256), (256, 1)])
def test_thumbnails_are_square_and_an_edge_chip_keeps_its_scale(shape: tuple[int, int]) -> None:
    chip = np.zeros((256, 256, 3), np.uint8)
    chip[: shape[0], : shape[1]] = (200, 60, 20)  # the imagery an edge chip holds, top left
    thumb = decoded(thumbnail_jpeg(chip, shape))
    assert thumb.shape == (128, 128, 3)  # the frame of the chip, not a strip of its imagery
    rows, cols = shape[0] // 2, shape[1] // 2  # imagery at half scale, as the full chips beside it
    if rows > 2 and cols > 2:
        np.testing.assert_allclose(thumb[1 : rows - 1, 1 : cols - 1].mean(axis=(0, 1)), (200, 60, 20), atol=6)
    if cols < 126:
        np.testing.assert_allclose(thumb[:, cols + 2 :].mean(axis=(0, 1)), PAD_RGB, atol=3)
    if rows < 126:
        np.testing.assert_allclose(thumb[rows + 2 :].mean(axis=(0, 1)), PAD_RGB, atol=3)


def test_the_chip_itself_is_left_as_read() -> None:
    chip = np.zeros((64, 64, 3), np.uint8)
    thumbnail_jpeg(chip, (64, 10))
    assert not chip.any()
