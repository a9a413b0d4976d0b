"""The remote-sensing peers (GeoRSCLIP, SkyCLIP, RS-M-CLIP, Git-RSCLIP): random weights written in each one's
published format, loaded through the registry as users do, compared with open_clip's / transformers' own
forward pass; the offline message of every entry."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from remoteclip.encode import encode_images, encode_texts
from remoteclip.errors import ModelNotFoundError, WeightsError
from remoteclip.factory import LoadedModel, load_model
from remoteclip.pretrained import REGISTRY, ArchiveFile, HubFile, cached_weights
from tests.remoteclip.zoo_checkpoints import (
    hub_repo,
    rsmclip_model_cfg,
    write_rsmclip,
    write_siglip,
    write_xlm_roberta,
)
from tiles.index.chip_index import ChipIndex
from tiles.index.errors import ChipIndexError

IMAGES = [
    np.random.default_rng(2).integers(0, 256, (300, 260, 3), dtype=np.uint8),
    np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8),
]
TEXTS = ["a satellite photo of a harbour with many ships.", "forest and river", "um porto com navios"]


@pytest.fixture(scope="module")
def vit_b_32() -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """A random ViT-B-32's state dict and open_clip's own normalised embeddings of IMAGES and TEXTS."""
    torch.manual_seed(0)
    reference, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32")
    reference.eval()
    with torch.inference_mode():
        images = torch.stack([preprocess(Image.fromarray(image)) for image in IMAGES])
        image_x = reference.encode_image(images, normalize=True).numpy()
        text_x = reference.encode_text(open_clip.get_tokenizer("ViT-B-32")(TEXTS), normalize=True).numpy()
    return reference.state_dict(), image_x, text_x


def assert_embeds(model: LoadedModel, image_x: np.ndarray, text_x: np.ndarray) -> None:
    np.testing.assert_allclose(encode_images(model, IMAGES), image_x, atol=1e-5)
    np.testing.assert_allclose(encode_texts(model, TEXTS), text_x, atol=1e-5)


def test_georsclip_checkpoint_with_extra_keys_matches_open_clip(
    vit_b_32: tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    state_dict, image_x, text_x = vit_b_32
    # keys beside the model's (OpenAI CLIP's metadata tensors, a training head): GeoRSCLIP's own loader uses
    # strict=False, so such keys are dropped; which ones the published files carry is not known here
    extra = {"input_resolution": torch.tensor(224), "context_length": torch.tensor(77),
             "vocab_size": torch.tensor(49408), "image_backbone.head.weight": torch.zeros(2, 2)}
    torch.save({**state_dict, **extra}, tmp_path / "RS5M_ViT-B-32.pt")

    model = load_model("GeoRSCLIP-ViT-B-32", weights=tmp_path / "RS5M_ViT-B-32.pt", backend="torch")
    assert model.model_id.startswith("GeoRSCLIP-ViT-B-32@") and model.logit_bias is None
    assert_embeds(model, image_x, text_x)
    by_file_name = load_model(tmp_path / "RS5M_ViT-B-32.pt", backend="torch")  # named as the Hub file
    assert by_file_name.model_id == model.model_id

    torch.save({k: v for k, v in state_dict.items() if k != "ln_final.bias"}, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match=r"1 missing keys \['ln_final.bias'\]"):
        load_model("GeoRSCLIP-ViT-B-32", weights=tmp_path / "missing.pt", backend="torch")
    with pytest.raises(WeightsError, match="4 unexpected keys"):  # RemoteCLIP's files stay strict
        load_model("RemoteCLIP-ViT-B-32", weights=tmp_path / "RS5M_ViT-B-32.pt", backend="torch")


@pytest.fixture
def archive_server(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on localhost serving ``tmp_path / "www"``: its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_skyclip_archive_downloads_once_and_matches_open_clip(
    vit_b_32: tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray],
    archive_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state_dict, image_x, text_x = vit_b_32
    checkpoint = {"epoch": 20, "name": "SkyCLIP_ViT_B32_top50pct",
                  "state_dict": {f"module.{k}": v for k, v in state_dict.items()}}
    torch.save(checkpoint, tmp_path / "epoch_20.pt")
    with zipfile.ZipFile(tmp_path / "www" / "SkyCLIP_ViT_B32_top50pct.zip", "w") as bundle:
        bundle.write(tmp_path / "epoch_20.pt", "SkyCLIP_ViT_B32_top50pct/epoch_20.pt")
    entry = REGISTRY["SkyCLIP-ViT-B-32"]
    assert isinstance(entry.source, ArchiveFile)
    local = replace(entry, source=replace(entry.source, url=f"{archive_server}/SkyCLIP_ViT_B32_top50pct.zip"))
    monkeypatch.setitem(REGISTRY, entry.name, local)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cached_weights(local) is None

    model = load_model("SkyCLIP-ViT-B-32", backend="torch")
    assert model.model_id.startswith("SkyCLIP-ViT-B-32@")
    assert_embeds(model, image_x, text_x)
    (tmp_path / "www" / "SkyCLIP_ViT_B32_top50pct.zip").unlink()  # the extracted file is reused
    assert cached_weights(local) is not None
    assert load_model("SkyCLIP-ViT-B-32", backend="torch").model_id == model.model_id
    by_weights = load_model("SkyCLIP-ViT-B-32", weights=tmp_path / "epoch_20.pt", backend="torch")
    assert by_weights.model_id == model.model_id


def test_rs_m_clip_hub_folder_matches_open_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from open_clip.tokenizer import HFTokenizer

    xlmr = hub_repo(tmp_path / "hf", "xlm-roberta-base", monkeypatch)
    context_length = write_xlm_roberta(xlmr)
    torch.manual_seed(0)
    reference_cfg = rsmclip_model_cfg(str(xlmr), context_length)
    reference_cfg["text_cfg"]["hf_model_pretrained"] = False  # random weights, built from the config alone
    reference = open_clip.CustomTextCLIP(**reference_cfg).eval()
    snapshot = hub_repo(tmp_path / "hf", "joaodaniel/RS-M-CLIP", monkeypatch)
    # as published: the text tower named by its Hub name, found in the cache when loaded
    write_rsmclip(snapshot, reference, rsmclip_model_cfg("xlm-roberta-base", context_length))
    preprocess = open_clip.image_transform(32, is_train=False)
    with torch.inference_mode():
        image_x = reference.encode_image(
            torch.stack([preprocess(Image.fromarray(image)) for image in IMAGES]), normalize=True
        ).numpy()
        tokens = HFTokenizer(str(xlmr), context_length=context_length)(TEXTS)
        text_x = reference.encode_text(tokens, normalize=True).numpy()

    model = load_model("RS-M-CLIP", backend="torch")
    assert model.model_id.startswith("RS-M-CLIP@")
    assert_embeds(model, image_x, text_x)
    cloned = load_model("RS-M-CLIP", weights=snapshot, backend="torch")  # a `git clone` of the repo
    assert cloned.model_id == model.model_id
    on_onnx = load_model("RS-M-CLIP", backend="onnx")  # the XLM-RoBERTa tower exports too
    assert_embeds(on_onnx, image_x, text_x)
    assert on_onnx.onnx is not None and not on_onnx.onnx.on_torch


def test_git_rsclip_siglip_folder_matches_transformers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer, SiglipImageProcessor, SiglipModel

    snapshot = hub_repo(tmp_path / "hf", "lcybuaa/Git-RSCLIP", monkeypatch)
    write_siglip(snapshot)
    reference = SiglipModel.from_pretrained(str(snapshot)).eval()
    pixels = SiglipImageProcessor.from_pretrained(str(snapshot))(
        [Image.fromarray(image) for image in IMAGES], return_tensors="pt"
    )["pixel_values"]
    ids = AutoTokenizer.from_pretrained(str(snapshot))(
        TEXTS, padding="max_length", max_length=12, truncation=True, return_tensors="pt"
    )["input_ids"]
    with torch.inference_mode():
        output = reference(input_ids=ids, pixel_values=pixels)
    image_x = torch.nn.functional.normalize(output.image_embeds, dim=-1).numpy()
    text_x = torch.nn.functional.normalize(output.text_embeds, dim=-1).numpy()

    for model in (
        load_model("Git-RSCLIP", backend="torch"),
        load_model("Git-RSCLIP", weights=snapshot, backend="torch"),
        load_model("Git-RSCLIP", backend="onnx"),
    ):
        assert model.model_id.startswith("Git-RSCLIP@")
        assert_embeds(model, image_x, text_x)
        # its sigmoid scoring: scale * cosine + bias are SigLIP's own logits
        assert model.logit_bias == pytest.approx(-10.0)
        cosine = encode_images(model, IMAGES) @ encode_texts(model, TEXTS).T
        logits = model.logit_scale * cosine + model.logit_bias
        np.testing.assert_allclose(logits, output.logits_per_image.numpy(), atol=1e-4)
    assert load_model(snapshot, backend="torch").model_id.startswith(f"{snapshot.name}@")  # any SigLIP folder


@pytest.mark.parametrize("name", [name for name, entry in REGISTRY.items() if not isinstance(entry.source, str)])
def test_offline_message_names_the_file_and_the_way_out(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = REGISTRY[name]
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    if isinstance(entry.source, ArchiveFile):  # no name lookup of the real host: a closed local port
        closed = replace(entry.source, url="http://127.0.0.1:9/x.zip")
        monkeypatch.setitem(REGISTRY, name, replace(entry, source=closed))
    first = entry.companions[0] if entry.companions else entry.source
    assert isinstance(first, HubFile | ArchiveFile)
    with pytest.raises(ModelNotFoundError) as raised:
        load_model(name)
    message = str(raised.value)
    assert f"of model {name!r}" in message and "cannot be downloaded" in message
    assert f"--model {name} --weights" in message
    assert repr(first.filename if isinstance(first, HubFile) else first.member) in message


def test_every_model_has_its_own_id_and_a_library_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"{name}@0123456789ab" for name in REGISTRY]
    assert len({model_id.lower() for model_id in ids}) == len(ids)
    monkeypatch.setattr(ChipIndex, "model_id", property(lambda self: ids[0]))  # as an ingest wrote it
    with pytest.raises(ChipIndexError, match=f"{ids[0]!r}, not {ids[-1]!r}"):
        ChipIndex(tmp_path / "db").check_model(ids[-1])
