"""The any-length text graph equals open_clip's ``encode_text`` on the full-context input, for any cut of it."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from remoteclip.onnx_graphs import ExportedTower, clip_text_of_any_length, traceable_clip_text
from tests.conftest import TINY_MODEL_CONFIG


@pytest.fixture(scope="module")
def tiny_clip() -> open_clip.CLIP:
    torch.manual_seed(0)
    return open_clip.CLIP(**json.loads(TINY_MODEL_CONFIG.read_text())).eval()


def test_a_query_cut_to_its_tokens_embeds_as_the_padded_one(tiny_clip: open_clip.CLIP) -> None:
    tokens = open_clip.tokenize(["storage tanks beside a harbor", "a runway"], context_length=tiny_clip.context_length)
    assert traceable_clip_text(tiny_clip)
    with torch.no_grad():
        padded = tiny_clip.encode_text(tokens)
        for length in (8, 20, tokens.shape[1]):  # every cut that keeps each end token
            cut = clip_text_of_any_length(tiny_clip, tokens[:, :length])
            torch.testing.assert_close(cut, padded, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ExportedTower(tiny_clip, "text")(tokens[:, :8]), padded, atol=1e-5, rtol=1e-5)


def test_a_text_tower_of_another_layout_is_not_traced_as_clip() -> None:
    assert not traceable_clip_text(torch.nn.Linear(2, 2))
