"""Test-wide fixtures: no test may reach the network, and shared data is located once."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# property tests draw the same examples on every run and have no time limit per example: a busy CI machine
# took 244 ms over an example of tests/tiles/test_grid.py and failed it on Hypothesis's 200 ms deadline
settings.register_profile("repeatable", deadline=None, derandomize=True)
settings.load_profile("repeatable")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REMOTECLIP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _is_local(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:  # AF_UNIX paths and the like
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection that leaves this machine, as the offline world does."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> object:
        if not _is_local(address):
            raise ConnectionRefusedError(f"network access blocked in tests: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported ONNX towers go to a folder of this session (``REMOTECLIP_ONNX_CACHE``), not ~/.cache."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REMOTECLIP_ONNX_CACHE", str(folder))
        yield folder


@pytest.fixture
def own_onnx_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ONNX cache of this test's own, for tests that train weights of a shipped model's name and encode with
    them: their exports would otherwise supersede the session's export of the shipped model, which the cache
    then prunes (``KEPT_EXPORTS`` per model name), and a later test would find it exported again."""
    folder = tmp_path / "onnx-cache"
    monkeypatch.setenv("REMOTECLIP_ONNX_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real remote-sensing data in ../shared/data (tests that need it skip without it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


TINY_MODEL_CONFIG = REPO_ROOT / "tests" / "data" / "tiny-clip.json"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, _onnx_cache: Path) -> Path:
    """A model folder of a tiny random CLIP (64 px ViT, 2-layer text): ``open_clip_config.json`` + weights.

    The weights are ``torch.save(model.state_dict())`` as official OpenCLIP checkpoints are; pass the folder to
    ``remoteclip.factory.load_model``. Seeded, so every session writes the same weights.
    """
    import json

    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("checkpoints") / "tiny-clip"
    folder.mkdir()
    model_cfg = json.loads(TINY_MODEL_CONFIG.read_text())
    torch.manual_seed(0)
    torch.save(open_clip.CLIP(**model_cfg).state_dict(), folder / "open_clip_pytorch_model.bin")
    preprocess_cfg = {"mean": open_clip.OPENAI_DATASET_MEAN, "std": open_clip.OPENAI_DATASET_STD,
                      "interpolation": "bicubic", "resize_mode": "shortest"}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}))
    from remoteclip.factory import load_model

    _export_towers(load_model(folder, backend="onnx"))
    return folder


def _export_towers(model: object) -> object:
    """Export a model's ONNX towers into the session's cache now, so no command's output holds the notice."""
    import numpy as np

    from remoteclip.encode import encode_images, encode_texts

    encode_images(model, [np.zeros((8, 8, 3), np.uint8)])  # type: ignore[arg-type]
    encode_texts(model, ["a"])  # type: ignore[arg-type]
    return model


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path) -> object:
    """The tiny CLIP of ``tiny_checkpoint`` loaded through ``load_model`` (a ``LoadedModel`` on the CPU)."""
    from remoteclip.factory import load_model

    return load_model(tiny_checkpoint)


@pytest.fixture(scope="session")
def default_model(_onnx_cache: Path) -> object:
    """The project's shipped model (``explorer-small``), loaded once."""
    from remoteclip.factory import load_model

    return _export_towers(load_model(None))


@pytest.fixture(scope="session")
def disk_locator(default_model: object) -> object:
    """An object locator trained (seconds, CPU) to find the hand-placed disks of ``tests/synthetic_objects.py``."""
    from tests.synthetic_objects import train_disk_locator

    return train_disk_locator(default_model)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """A real S3 endpoint on localhost (moto's server) with an empty bucket ``chips``: Lance storage options.

    The tables go over HTTP through Lance's object-store client, exactly as to AWS or MinIO; only the server
    is local.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "aws_endpoint": f"http://{host}:{port}",
        "aws_access_key_id": "test-key",
        "aws_secret_access_key": "test-secret",
        "aws_region": "us-east-1",
        "allow_http": "true",
    }
    boto3.client(
        "s3",
        endpoint_url=options["aws_endpoint"],
        aws_access_key_id=options["aws_access_key_id"],
        aws_secret_access_key=options["aws_secret_access_key"],
        region_name=options["aws_region"],
    ).create_bucket(Bucket="chips")
    yield options
    server.stop()


@pytest.fixture
def bucket(s3_server: dict[str, str]) -> Any:
    """A boto3 client of moto's S3 server, whose bucket ``chips`` the tests upload to."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=s3_server["aws_endpoint"], aws_access_key_id=s3_server["aws_access_key_id"],
        aws_secret_access_key=s3_server["aws_secret_access_key"], region_name=s3_server["aws_region"],
    )


@pytest.fixture
def s3_env(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """GDAL's (and so boto3's) S3 variables for moto's server."""
    for name, value in {
        "AWS_S3_ENDPOINT": s3_server["aws_endpoint"].removeprefix("http://"),
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_ACCESS_KEY_ID": s3_server["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": s3_server["aws_secret_access_key"],
        "AWS_REGION": s3_server["aws_region"],
    }.items():
        monkeypatch.setenv(name, value)
