"""The Dockerfile installs exactly what the README's `make` targets install."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT


def _pip_installs(text: str) -> list[str]:
    """Every `pip install ...` argument list in a Makefile or Dockerfile, line continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [m.group(1).strip() for m in re.finditer(r"pip install ([^&;\n]+)", joined)]


def _requirement_files(installs: list[str]) -> set[str]:
    return {m for args in installs for m in re.findall(r"-r\s+(\S+)", args)}


def test_dockerfile_and_makefile_install_the_same_pins() -> None:
    docker = _pip_installs((REPO_ROOT / "Dockerfile").read_text())
    make = _pip_installs((REPO_ROOT / "Makefile").read_text())
    assert _requirement_files(docker) == _requirement_files(make) == {"requirements.txt"}
    # The project itself goes in without dependencies in both, so nothing unpinned sneaks in.
    assert any("--no-deps" in args and args.rstrip().endswith(".") for args in docker)
    assert any("--no-deps" in args and args.rstrip().endswith(".") for args in make)


def test_every_requirement_is_pinned() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    unpinned = [line for line in lines if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", line)]
    assert not unpinned, f"requirements.txt must pin every package with ==: {unpinned}"
    assert "torch==2.14.1" in lines and "torchvision==0.29.1" in lines


def test_dockerfile_has_healthcheck_and_gpu_build_argument() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in text and "/_stcore/health" in text
    assert re.search(r"^ARG BASE_IMAGE=", text, re.MULTILINE)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.MULTILINE)


def test_dockerfile_serves_and_publishes_the_map_tile_port() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    port = re.search(r"REMOTECLIP_TILE_PORT=(\d+)", text)
    assert port and "REMOTECLIP_TILE_HOST=0.0.0.0" in text
    assert re.search(rf"^EXPOSE .*\b{port[1]}\b", text, re.MULTILINE)
    assert all(f"-p {port[1]}:{port[1]}" in line for line in text.splitlines() if "docker run" in line)
