"""The model library's declared public API (``remoteclip.__all__``)."""

from __future__ import annotations

import subprocess
import sys

import remoteclip


def test_every_public_name_resolves_to_its_module() -> None:
    assert sorted(remoteclip.__all__) == sorted(remoteclip._EXPORTS)
    listed = [name for names in remoteclip._MODULES.values() for name in names]
    assert sorted(listed) == sorted(remoteclip.__all__), "a public name is listed under two modules"
    for name in remoteclip.__all__:
        value = getattr(remoteclip, name)
        assert value is getattr(__import__(remoteclip._EXPORTS[name], fromlist=[name]), name)
    assert set(remoteclip.__all__) <= set(dir(remoteclip))


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        remoteclip.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("remoteclip.no_such_thing resolved")


def test_the_error_root_and_prompts_import_without_torch() -> None:
    code = "import remoteclip.errors, remoteclip.prompts, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
