"""The package's layers (docs/architecture.md), checked on the import graph: data flows one way,
torch stays inside the implementations that need it, and the engine is never imported from below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "toymodel"

#: layer of every module, lowest first; a module may import only from its own layer or below
LAYERS: dict[str, tuple[str, ...]] = {
    "contract": ("__init__", "spec", "data", "models", "result"),
    "implementations": ("reference", "numpy_impl", "plain"),
    "analysis": ("analysis", "theory", "experiments"),
    "report": ("report",),
    "engine": ("suite",),
    "command line": ("cli", "__main__"),
}
#: the only modules that may import torch at module level (the reference and the notebook loop)
TORCH_MODULES = {"plain", *(f"reference.{name}" for name in (
    "dense", "gradients", "optimiser", "pipeline", "sampling", "sparse", "training"))}


def _layer_of(module: str) -> int | None:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS.values()):
        if top in names:
            return i
    return None


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        out[".".join(rel.parts)] = path
    return out


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported toymodel module, line) for every import of the package in ``path``, wherever it is."""
    package_parts = module.split(".")[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                parts = node.module.split(".") if node.module else []
            elif (node.module or "").split(".")[0] == "toymodel":
                base, parts = [], (node.module or "").split(".")[1:]
            else:
                continue
            targets = (
                [".".join([*base, *parts])] if parts else [".".join([*base, a.name]) for a in node.names]
            )
        elif isinstance(node, ast.Import):
            targets = [a.name.removeprefix("toymodel.") for a in node.names if a.name.startswith("toymodel.")]
        else:
            continue
        found.extend((t, node.lineno) for t in targets if t)
    return found


def _torch_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    lines = []
    for node in tree.body:
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            lines.append(node.lineno)
    return lines


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if _layer_of(m) is None]
    assert not unplaced, (
        f"modules without a layer in tests/test_architecture.py and docs/architecture.md: {unplaced}"
    )


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_point_down(module: str) -> None:
    mine = _layer_of(module)
    assert mine is not None
    upward = [
        f"{target} (line {line})"
        for target, line in _imports(module, _modules()[module])
        if (theirs := _layer_of(target)) is not None and theirs > mine
    ]
    layer = list(LAYERS)[mine]
    assert not upward, f"{module} ({layer}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_torch_only_in_the_torch_implementations(module: str) -> None:
    lines = _torch_imports(_modules()[module])
    if module not in TORCH_MODULES:
        assert not lines, (
            f"{module} imports torch at module level (lines {lines}): import it where it is used"
        )
