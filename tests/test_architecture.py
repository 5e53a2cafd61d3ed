"""The package's layers (docs/architecture.md), checked on the import graph: each folder is one
layer and imports only the layers below it that the table allows, there are no import cycles, no
module imports another's private names, and torch stays inside the torch implementations."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "toymodel"

#: the layers, lowest first, each with its folders and top-level modules (a longer name wins:
#: ``reference.kernel`` is a layer of its own inside ``reference``)
LAYERS: dict[str, tuple[str, ...]] = {
    "contract": ("__init__", "spec", "data", "models", "result"),
    "experiments": ("experiments",),
    "theory": ("theory",),
    "kernel": ("reference.kernel",),
    "reference": ("reference",),
    "numpy_impl": ("numpy_impl",),
    "plain": ("plain",),
    "analysis": ("analysis",),
    "report": ("report",),
    "suite": ("suite",),
    "command line": ("cli", "__main__"),
}
#: the layers each layer may import besides its own (the table of docs/architecture.md)
MAY_IMPORT: dict[str, set[str]] = {
    "contract": set(),
    "experiments": {"contract"},
    "theory": {"contract", "experiments"},
    "kernel": set(),
    "reference": {"contract", "kernel"},
    "numpy_impl": {"contract"},
    "plain": {"contract", "reference"},
    "analysis": {"contract", "experiments", "theory"},
    "report": {"analysis"},
    "suite": {"contract", "kernel", "report"},
    "command line": {"contract", "report", "suite"},
}
#: the only layers whose modules may import torch at module level (the reference's kernel may not)
TORCH_LAYERS = {"reference", "plain"}


def _layer_of(module: str) -> str | None:
    best, length = None, -1
    for layer, names in LAYERS.items():
        for name in names:
            if (module == name or module.startswith(f"{name}.")) and len(name) > length:
                best, length = layer, len(name)
    return best


@cache
def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name relative to it (``reference.kernel.fused``; a
    package's ``__init__`` as ``reference.__init__``)."""
    paths = sorted(PACKAGE.rglob("*.py"))
    return {".".join(path.relative_to(PACKAGE).with_suffix("").parts): path for path in paths}


def _imports(module: str) -> list[tuple[str, int, list[tuple[str, str]]]]:
    """(imported toymodel name, line, [(name, local name)] taken from it) for every import of the
    package in the module, wherever it is (function-level imports too)."""
    package_parts = module.split(".")[:-1]
    found: list[tuple[str, int, list[tuple[str, str]]]] = []
    for node in ast.walk(ast.parse(_modules()[module].read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                parts = node.module.split(".") if node.module else []
            elif (node.module or "").split(".")[0] == "toymodel":
                base, parts = [], (node.module or "").split(".")[1:]
            else:
                continue
            names = [(a.name, a.asname or a.name) for a in node.names]
            if parts:
                found.append((".".join([*base, *parts]), node.lineno, names))
            else:  # ``from . import x``: x is a module (or a name of the package's __init__)
                found.extend((".".join([*base, name]), node.lineno, [(name, local)]) for name, local in names)
        elif isinstance(node, ast.Import):
            found.extend(
                (a.name.removeprefix("toymodel."), node.lineno, [])
                for a in node.names
                if a.name.startswith("toymodel.")
            )
    return found


def _module_named(target: str) -> str | None:
    """The module an imported name lives in: itself, its package's ``__init__``, or the module
    that defines it (``reference.gradients`` for ``reference.gradients.Params``)."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        for candidate in (name, f"{name}.__init__"):
            if candidate in _modules():
                return candidate
        parts.pop()
    return "__init__" if target == "__version__" else None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if _layer_of(m) is None]
    assert not unplaced, (
        f"modules without a layer in tests/test_architecture.py and docs/architecture.md: {unplaced}"
    )


def test_the_layers_point_down() -> None:
    order = list(LAYERS)
    upward = {
        layer: sorted(t for t in MAY_IMPORT[layer] if order.index(t) >= order.index(layer)) for layer in order
    }
    assert not any(upward.values()), f"MAY_IMPORT names a layer that is not below: {upward}"


def test_the_docs_draw_the_same_layers() -> None:
    """docs/architecture.md's table has a row per layer, with the layers it may import."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| \*\*(.+?)\*\* \|.*\| (.*) \|$", text, re.M)}
    assert list(rows) == list(LAYERS)
    for layer, cell in rows.items():
        named = set() if cell.strip() in ("", "—") else {n.strip(" *`") for n in cell.split(",")}
        assert named == MAY_IMPORT[layer], (
            f"docs/architecture.md: {layer} may import {named}, the test says {MAY_IMPORT[layer]}"
        )


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_go_where_the_layers_allow(module: str) -> None:
    mine = _layer_of(module)
    assert mine is not None
    wrong = [
        f"{target} ({theirs}, line {line})"
        for target, line, _ in _imports(module)
        if (theirs := _layer_of(target)) not in (None, mine) and theirs not in MAY_IMPORT[mine]
    ]
    assert not wrong, (
        f"{module} ({mine}) may import only {sorted(MAY_IMPORT[mine])} besides its own layer: {wrong}"
    )


def test_no_import_cycles() -> None:
    graph = {
        m: {t for target, _, _ in _imports(m) if (t := _module_named(target)) not in (None, m)}
        for m in _modules()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:  # Tarjan's strongly connected components
        index[m] = low[m] = len(index)
        stack.append(m)
        for t in graph[m]:
            if t not in index:
                visit(t)
                low[m] = min(low[m], low[t])
            elif t in stack:
                low[m] = min(low[m], index[t])
        if low[m] == index[m]:
            component = []
            while True:
                t = stack.pop()
                component.append(t)
                if t == m:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for m in graph:
        if m not in index:
            visit(m)
    assert not cycles, f"modules that import each other in a circle: {cycles}"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_private_names_of_other_modules(module: str) -> None:
    """A module uses only the public names of another (a helper two modules need is public)."""
    taken, modules = [], {}
    for target, line, names in _imports(module):
        for name, local in names:
            full = f"{target}.{name}" if not target.endswith(f".{name}") and target != name else target
            if _is_private(name):
                taken.append(f"{full} (line {line})")
            elif (m := _module_named(full)) is not None and m.removesuffix(".__init__") == full:
                modules[local] = full  # a module of the package, by the name this one calls it
    taken += [
        f"{modules[node.value.id]}.{node.attr} (line {node.lineno})"
        for node in ast.walk(ast.parse(_modules()[module].read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in modules
        and _is_private(node.attr)
    ]
    assert not taken, f"{module} uses private names of other modules: {taken}"


def _torch_imports(path: Path) -> list[int]:
    lines = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("module", sorted(_modules()))
def test_torch_only_in_the_torch_implementations(module: str) -> None:
    lines = _torch_imports(_modules()[module])
    if _layer_of(module) not in TORCH_LAYERS:
        assert not lines, (
            f"{module} imports torch at module level (lines {lines}): import it where it is used"
        )
