"""Random-weight checkpoints in each remote-sensing peer's published format, and an offline Hub cache to hold them.

- GeoRSCLIP: an open_clip state dict (``torch.save``) with keys open_clip has no use for;
- SkyCLIP: an open_clip_train checkpoint (``{"epoch", "name", "state_dict": {"module.…"}}``) zipped as
  ``<name>/epoch_20.pt``;
- RS-M-CLIP: an open_clip Hub folder (``open_clip_config.json`` + ``open_clip_pytorch_model.bin``) whose text tower
  is a Hugging Face XLM-RoBERTa named ``xlm-roberta-base``, here a tiny one with a tiny sentencepiece vocabulary;
- Git-RSCLIP: a ``transformers`` SigLIP folder (config, ``model.safetensors``, preprocessor and tokenizer files)
  from a tiny ``SiglipConfig``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import sentencepiece
import torch

#: what the tiny tokenizers learn their vocabularies from
SENTENCES = (
    "a satellite photo of airplanes",
    "a harbour with many ships",
    "forest and river",
    "dense residential area",
    "um porto com navios",
    "une forêt et une rivière",
)
#: the commit the fake Hub cache's ``refs/main`` points at
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_repo(hf_home: Path, repo: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The main-branch snapshot folder of ``repo`` in an offline Hub cache under ``hf_home`` (created)."""
    folder = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(FAKE_COMMIT)
    snapshot = folder / "snapshots" / FAKE_COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return snapshot


def sentencepiece_model(ids: dict[str, int], vocab_size: int = 48) -> bytes:
    """A tiny unigram sentencepiece model (``ids``: the ids of ``bos``, ``pad``, ``eos``, ``unk``)."""
    model = io.BytesIO()
    special: dict[str, Any] = {f"{name}_id": value for name, value in ids.items()}
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 20),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        hard_vocab_limit=False,
        minloglevel=2,
        **special,
    )
    return model.getvalue()


def write_xlm_roberta(folder: Path) -> int:
    """A tiny XLM-RoBERTa text tower as the Hub repo ``xlm-roberta-base`` holds it (config, tokenizer files);
    returns its context length."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

    spm = sentencepiece_model({"bos": 0, "pad": 1, "eos": 2, "unk": 3})
    (folder / "sentencepiece.bpe.model").write_bytes(spm)
    processor = sentencepiece.SentencePieceProcessor(model_proto=spm)
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=3))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    ).save_pretrained(folder)
    XLMRobertaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=24,
    ).save_pretrained(folder)
    return 16


def rsmclip_model_cfg(text_tower: str, context_length: int) -> dict:
    """A tiny ``xlm-roberta-base-ViT-B-32``: the same tower types, a few layers."""
    return {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {
            "hf_model_name": text_tower,
            "hf_tokenizer_name": text_tower,
            "hf_pooler_type": "mean_pooler",
            "context_length": context_length,
        },
    }


def write_rsmclip(folder: Path, model: torch.nn.Module, model_cfg: dict) -> None:
    """An open_clip Hub folder as ``push_to_hf_hub`` writes it (config with ``model_cfg`` + pickle-free weights)."""
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    preprocess_cfg = {"mean": OPENAI_DATASET_MEAN, "std": OPENAI_DATASET_STD, "interpolation": "bicubic",
                      "resize_mode": "shortest"}
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg})
    )
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")


def write_siglip(folder: Path) -> None:
    """A tiny random ``transformers`` SigLIP folder with everything the Git-RSCLIP repos ship."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    spm = folder / "spiece.model"
    spm.write_bytes(sentencepiece_model({"pad": 0, "eos": 1, "unk": 2, "bos": -1}))
    tokenizer = SiglipTokenizer(vocab_file=str(spm))
    tokenizer.save_pretrained(folder)
    config = SiglipConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 12,
                     "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 1},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
                       "num_hidden_layers": 1, "num_attention_heads": 2},
    )
    torch.manual_seed(0)
    model = SiglipModel(config)
    with torch.no_grad():  # SigLIP's initial scale and bias (log 10, -10), so the scores are not trivially 0
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-10.0)
    model.save_pretrained(folder, safe_serialization=True)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
