"""The towers of an open_clip model as the ONNX exporter traces them: one module per tower, with a single input.

The text tower of OpenAI's CLIP layout is traced for any sequence length (:func:`clip_text_of_any_length`), so
a query runs on its few tokens, not 77.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

Tower = Literal["image", "text"]


class ExportedTower(torch.nn.Module):
    """One embedding tower of an open_clip model as a module with a single input (what the exporter traces)."""

    def __init__(self, model: torch.nn.Module, tower: Tower) -> None:
        super().__init__()
        self.model = model
        self.tower = tower

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tower == "image":
            return self.model.encode_image(x)  # type: ignore[operator]
        if traceable_clip_text(self.model):
            return clip_text_of_any_length(self.model, x)
        return self.model.encode_text(x)  # type: ignore[operator]


def traceable_clip_text(model: torch.nn.Module) -> bool:
    """Whether ``model`` is an open_clip ``CLIP`` with the causal text transformer of OpenAI's CLIP."""
    from open_clip.model import CLIP
    from open_clip.transformer import ResidualAttentionBlock

    if not isinstance(model, CLIP) or model.attn_mask is None or not model.transformer.batch_first:
        return False
    return all(
        type(block) is ResidualAttentionBlock
        and not hasattr(block, "ln_1_kv")
        and block.attn.batch_first
        and block.attn._qkv_same_embed_dim
        for block in model.transformer.resblocks
    )


def clip_text_of_any_length(model: Any, text: torch.Tensor) -> torch.Tensor:
    """open_clip ``CLIP.encode_text`` for a sequence of any length (what the export traces).

    ``CLIP.encode_text`` adds all 77 positions and masks 77 x 77, and ``nn.MultiheadAttention`` traces its
    sequence length as a constant, so that export takes only 77 tokens. Here the positional embedding and causal
    mask are cut to the input's length and attention is ``scaled_dot_product_attention`` on the same weights, so
    the graph takes a query's few tokens: the causal mask keeps each token blind to the padding after it, and
    the end token's output is the same either way (``OnnxTowers`` checks it on export).
    """
    from open_clip.transformer import text_global_pool

    length = text.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    mask = model.attn_mask[:length, :length].to(cast_dtype)
    x = model.token_embedding(text).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    for block in model.transformer.resblocks:
        x = x + block.ls_1(attention_of_any_length(block.attn, block.ln_1(x), mask))
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
    x = model.ln_final(x)
    x = text_global_pool(x, text, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def attention_of_any_length(attention: torch.nn.MultiheadAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Batch-first self-attention of ``x`` with ``attention``'s weights, with shapes taken from ``x``."""
    batch, length, width = x.shape
    heads = attention.num_heads
    qkv = F.linear(x, attention.in_proj_weight, attention.in_proj_bias)
    q, k, v = qkv.reshape(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return attention.out_proj(out.transpose(1, 2).reshape(batch, length, width))
