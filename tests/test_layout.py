"""The house keeps its shape: layers point one way, no import cycle, no module past 600 lines.

Imports are read with ``ast`` from the source (every ``import``, at module level or inside a function), so a
lazy import cannot hide a wrong dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("app", "pipelines", "tiles", "remoteclip")
MAX_MODULE_LINES = 600

#: layer -> the layers it may import (besides itself). The longest layer prefix of a module is its layer.
ALLOWED: dict[str, set[str]] = {
    "remoteclip.errors": set(),
    "remoteclip": {"remoteclip.errors"},
    "tiles": {"remoteclip.errors"},
    "tiles.index": {"tiles", "remoteclip.errors"},
    "pipelines.datasets": {"tiles", "tiles.index", "remoteclip", "remoteclip.errors"},
    "pipelines.training": {"pipelines.datasets", "tiles", "tiles.index", "remoteclip", "remoteclip.errors"},
    # evaluation scores what the services answer (the counting service's locator counts)
    "pipelines.evaluation": {
        "pipelines.datasets",
        "pipelines.services",
        "pipelines.ingest",
        "tiles",
        "tiles.index",
        "remoteclip",
        "remoteclip.errors",
    },
    "pipelines.ingest": {"tiles", "tiles.index", "remoteclip", "remoteclip.errors"},
    "pipelines.services": {"pipelines.ingest", "tiles", "tiles.index", "remoteclip", "remoteclip.errors"},
    "pipelines.bench": {
        "pipelines.cli.options",
        "pipelines.services",
        "pipelines.ingest",
        "tiles",
        "tiles.index",
        "remoteclip",
        "remoteclip.errors",
    },
    "pipelines.cli": {
        "pipelines.cli.options",
        "pipelines.services",
        "pipelines.ingest",
        "pipelines.training",
        "pipelines.evaluation",
        "pipelines.datasets",
        "tiles",
        "tiles.index",
        "remoteclip",
        "remoteclip.errors",
    },
    "pipelines.cli.options": {"pipelines.services", "tiles", "tiles.index", "remoteclip", "remoteclip.errors"},
    "pipelines": {"pipelines.cli"},  # pipelines/__main__.py
    "app": {"pipelines.services", "pipelines.ingest", "tiles", "tiles.index", "remoteclip", "remoteclip.errors"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        if "demo_data" not in path.parts
    }


MODULES = project_modules()


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in ``path``; ``from pkg import submodule`` names the submodule."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield node.lineno, full if full in MODULES else node.module


def project_imports(path: Path) -> Iterator[tuple[int, str]]:
    for line, name in imported_modules(path):
        if name.split(".")[0] in PACKAGES:
            yield line, name


def layer_of(module: str) -> str:
    return max((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), key=len)


def test_every_module_has_a_layer() -> None:
    assert {"remoteclip.factory", "tiles.reader", "tiles.index.chip_index", "pipelines.cli.main"} <= set(MODULES)
    for module in MODULES:
        assert layer_of(module)


def test_layers_point_one_way() -> None:
    wrong = []
    for module, path in MODULES.items():
        layer = layer_of(module)
        for line, target in project_imports(path):
            target_layer = layer_of(target)
            if target_layer != layer and target_layer not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(REPO_ROOT)}:{line} ({layer}) imports {target} ({target_layer})")
    assert not wrong, "\n".join(wrong)


def test_the_model_library_never_imports_training() -> None:
    for module, path in MODULES.items():
        if module.startswith("remoteclip"):
            names = [name for _, name in imported_modules(path)]
            assert not [n for n in names if n.split(".")[0] == "open_clip_train"], module


def test_no_import_cycle() -> None:
    graph = {
        module: {target for _, target in project_imports(path) if target in MODULES and target != module}
        for module, path in MODULES.items()
    }
    cycles = [component for component in strongly_connected(graph) if len(component) > 1]
    assert not cycles, cycles


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_past_the_size_limit(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"], ["c"]]
