"""Official RemoteCLIP checkpoint format: random weights saved as the Hub files are, loaded as users do."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from remoteclip.encode import encode_images, encode_texts
from remoteclip.errors import WeightsError
from remoteclip.factory import load_model
from remoteclip.pretrained import REMOTECLIP_REVISION, check_weights, entry_for_filename, get_entry

IMAGE = np.random.default_rng(1).integers(0, 256, (300, 260, 3), dtype=np.uint8)
TEXTS = ["a satellite photo of 4 airplanes.", "a satellite photo of a river."]


def check_official_arch(
    arch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via_hub_cache: bool, backend: str = "auto"
) -> None:
    """Save ``RemoteCLIP-{arch}.pt`` (random weights), load it as a user would, compare with open_clip.

    ``via_hub_cache``: the file sits in an offline Hub cache and is loaded by name (only for an entry without
    a published checksum: random weights cannot match one); otherwise it is passed as ``--weights``.
    ``backend``: ``auto`` is ONNX Runtime here (both towers exported, then compared with open_clip's PyTorch).
    """
    torch.manual_seed(0)
    reference, _, preprocess = open_clip.create_model_and_transforms(arch)
    reference.eval()
    with torch.inference_mode():
        image_expected = reference.encode_image(
            preprocess(Image.fromarray(IMAGE)).unsqueeze(0), normalize=True
        )
        text_expected = reference.encode_text(open_clip.get_tokenizer(arch)(TEXTS), normalize=True)
    folder = hub_snapshot(tmp_path / "hf", monkeypatch) if via_hub_cache else tmp_path
    torch.save(reference.state_dict(), folder / f"RemoteCLIP-{arch}.pt")
    del reference  # keeps ViT-L-14's peak memory at one model plus one state dict

    loaded = (
        load_model(arch, backend=backend)
        if via_hub_cache
        else load_model(arch, weights=folder / f"RemoteCLIP-{arch}.pt", backend=backend)
    )

    assert loaded.model_id.startswith(f"RemoteCLIP-{arch}@")
    assert loaded.backend == ("onnx" if backend == "auto" else backend)
    np.testing.assert_allclose(encode_images(loaded, [IMAGE]), image_expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(encode_texts(loaded, TEXTS), text_expected.numpy(), atol=1e-5)
    assert loaded.onnx is None or not loaded.onnx.on_torch  # both towers ran in ONNX Runtime
    assert loaded.onnx is None or loaded.onnx.text_pad == 0  # queries run cut to their length, not 77 tokens
    assert loaded.embed_dim == image_expected.shape[1]
    assert get_entry(arch).preprocess.mean == open_clip.OPENAI_DATASET_MEAN


def hub_snapshot(hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The snapshot folder of the pinned RemoteCLIP revision in an offline Hub cache under ``hf_home``."""
    snapshot = hf_home / "hub/models--chendelong--RemoteCLIP/snapshots" / REMOTECLIP_REVISION
    snapshot.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return snapshot


def test_rn50_from_the_hub_cache_matches_open_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_entry("RN50").sha256 is None
    check_official_arch("RN50", tmp_path, monkeypatch, via_hub_cache=True)


def test_vit_b_32_weights_file_matches_open_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_official_arch("ViT-B-32", tmp_path, monkeypatch, via_hub_cache=False)


@pytest.mark.slow
def test_vit_l_14_weights_file_matches_open_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # PyTorch: exporting ViT-L-14's 1.7 GB to ONNX adds about a minute on two cores; its towers are the
    # VisionTransformer / TextTransformer that ViT-B-32 exports above (ViT-L-14 through ONNX passed by hand)
    check_official_arch("ViT-L-14", tmp_path, monkeypatch, via_hub_cache=False, backend="torch")


def test_published_checksum_refuses_a_different_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (hub_snapshot(tmp_path / "hf", monkeypatch) / "RemoteCLIP-ViT-B-32.pt").write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match="has 15 bytes but RemoteCLIP-ViT-B-32 weights have 605208421"):
        load_model("ViT-B-32")
    same_size = replace(get_entry("ViT-B-32"), size_bytes=15)
    with pytest.raises(WeightsError, match="SHA-256 .* but RemoteCLIP-ViT-B-32 weights have 60014e395d93"):
        check_weights(
            tmp_path
            / "hf/hub/models--chendelong--RemoteCLIP/snapshots"
            / REMOTECLIP_REVISION
            / "RemoteCLIP-ViT-B-32.pt",
            same_size,
        )


def test_official_file_name_tells_the_architecture() -> None:
    assert entry_for_filename(Path("/downloads/RemoteCLIP-ViT-L-14.pt")) == get_entry("ViT-L-14")
    assert entry_for_filename(Path("my-finetune.pt")) is None
