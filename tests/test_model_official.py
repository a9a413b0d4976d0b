"""Official RemoteCLIP checkpoint format: random weights saved as the Hub files are, loaded as users do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from remoteclip.encode import encode_images, encode_texts
from remoteclip.factory import load_model
from remoteclip.pretrained import REMOTECLIP_REVISION, entry_for_filename, get_entry

IMAGE = np.random.default_rng(1).integers(0, 256, (300, 260, 3), dtype=np.uint8)
TEXTS = ["a satellite photo of 4 airplanes.", "a satellite photo of a river."]


def check_official_arch(arch: str, hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write ``RemoteCLIP-{arch}.pt`` into a Hub cache, load it by name offline, compare with open_clip."""
    torch.manual_seed(0)
    reference, _, preprocess = open_clip.create_model_and_transforms(arch)
    reference.eval()
    with torch.inference_mode():
        image_expected = reference.encode_image(
            preprocess(Image.fromarray(IMAGE)).unsqueeze(0), normalize=True
        )
        text_expected = reference.encode_text(open_clip.get_tokenizer(arch)(TEXTS), normalize=True)
    snapshot = hf_home / "hub/models--chendelong--RemoteCLIP/snapshots" / REMOTECLIP_REVISION
    snapshot.mkdir(parents=True)
    torch.save(reference.state_dict(), snapshot / f"RemoteCLIP-{arch}.pt")
    del reference  # keeps ViT-L-14's peak memory at one model plus one state dict
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    loaded = load_model(arch)

    assert loaded.model_id.startswith(f"RemoteCLIP-{arch}@")
    np.testing.assert_allclose(encode_images(loaded, [IMAGE]), image_expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(encode_texts(loaded, TEXTS), text_expected.numpy(), atol=1e-5)
    assert loaded.embed_dim == image_expected.shape[1]
    assert get_entry(arch).preprocess.mean == open_clip.OPENAI_DATASET_MEAN


@pytest.mark.parametrize("arch", ["RN50", "ViT-B-32"])
def test_official_checkpoint_matches_open_clip(
    arch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_official_arch(arch, tmp_path / "hf", monkeypatch)


@pytest.mark.slow
def test_official_vit_l_14_checkpoint_matches_open_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_official_arch("ViT-L-14", tmp_path / "hf", monkeypatch)


def test_official_file_name_tells_the_architecture() -> None:
    assert entry_for_filename(Path("/downloads/RemoteCLIP-ViT-L-14.pt")) == get_entry("ViT-L-14")
    assert entry_for_filename(Path("my-finetune.pt")) is None
