"""encode_images / encode_texts / encode_query: shapes, normalisation, determinism, the query cache and input
checks on the tiny model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from remoteclip import encode
from remoteclip.encode import as_pil, encode_images, encode_query, encode_texts
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel, load_model

RNG = np.random.default_rng(4)
IMAGES = [RNG.integers(0, 256, (70 + 10 * i, 90, 3), dtype=np.uint8) for i in range(5)]


def test_outputs_are_unit_float32_rows(tiny_model: LoadedModel) -> None:
    vectors = encode_images(tiny_model, IMAGES, batch_size=2)
    texts = encode_texts(tiny_model, ["a satellite photo of a river.", "airport", ""], batch_size=2)
    for array, rows in ((vectors, 5), (texts, 3)):
        assert array.shape == (rows, tiny_model.embed_dim) and array.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, rtol=1e-5)


def test_cpu_encoding_is_deterministic_and_batch_independent(tiny_model: LoadedModel) -> None:
    first = encode_images(tiny_model, IMAGES, batch_size=2)
    np.testing.assert_array_equal(first, encode_images(tiny_model, IMAGES, batch_size=2))
    np.testing.assert_allclose(first, encode_images(tiny_model, IMAGES, batch_size=5), atol=1e-5)
    assert not np.allclose(first[0], first[1])  # different images, different vectors


def test_pil_images_and_arrays_give_the_same_vectors(tiny_model: LoadedModel) -> None:
    pil = [Image.fromarray(image) for image in IMAGES[:2]]
    grey_pil = Image.fromarray(IMAGES[0][:, :, 0])  # converted to RGB like the array of three equal bands
    grey_rgb = np.repeat(IMAGES[0][:, :, :1], 3, axis=2)
    np.testing.assert_array_equal(encode_images(tiny_model, pil), encode_images(tiny_model, IMAGES[:2]))
    np.testing.assert_array_equal(
        encode_images(tiny_model, [grey_pil]), encode_images(tiny_model, [grey_rgb])
    )


def test_empty_inputs_give_empty_arrays(tiny_model: LoadedModel) -> None:
    assert encode_images(tiny_model, []).shape == (0, tiny_model.embed_dim)
    assert encode_texts(tiny_model, []).shape == (0, tiny_model.embed_dim)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8, 3), dtype=np.float32),
        np.zeros((8, 8), dtype=np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        "x.png",
    ],
)
def test_bad_images_are_input_errors(image: object) -> None:
    with pytest.raises(InputError, match="uint8 \\(H, W, 3\\) array"):
        as_pil(image)  # type: ignore[arg-type]


def test_a_bare_string_is_not_a_list_of_texts(tiny_model: LoadedModel) -> None:
    with pytest.raises(InputError, match="wrap it in a list"):
        encode_texts(tiny_model, "a river")


def test_a_query_is_encoded_once_per_model_and_kept_read_only(
    tiny_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encode, "_QUERY_VECTORS", type(encode._QUERY_VECTORS)())
    monkeypatch.setattr(encode, "QUERY_CACHE_SIZE", 2)
    first = encode_query(tiny_model, "a river")
    np.testing.assert_array_equal(first, encode_texts(tiny_model, ["a river"])[0])
    assert encode_query(tiny_model, "a river") is first  # kept, not encoded again
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 0.0
    other = dataclasses.replace(tiny_model, model_id="another@000000000000")
    assert encode_query(other, "a river") is not first  # kept per model
    encode_query(tiny_model, "a bridge")  # a third entry: the least recently used one goes
    assert list(encode._QUERY_VECTORS) == [("another@000000000000", "a river"), (tiny_model.model_id, "a bridge")]


def test_bf16_model_gives_close_float32_vectors(tiny_model: LoadedModel, tiny_checkpoint: Path) -> None:
    half = load_model(tiny_checkpoint, precision="bf16")
    assert half.model.visual.conv1.weight.dtype == torch.bfloat16
    vectors = encode_images(half, IMAGES[:2])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, encode_images(tiny_model, IMAGES[:2]), atol=0.05)
    np.testing.assert_allclose(
        encode_texts(half, ["a harbor"]), encode_texts(tiny_model, ["a harbor"]), atol=0.05
    )
