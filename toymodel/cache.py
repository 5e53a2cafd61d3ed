"""On-disk cache of trained results, keyed by (spec hash, implementation, code fingerprint).

Several claims share one training run, and re-running the claims is instant. The key includes
the package version and a hash of the implementation's source file, so editing an
implementation invalidates its entries. Safe when several processes (pytest-xdist workers)
share the folder: a per-key lock file serialises training of the same key, and results are
written to a temporary file and renamed into place.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from . import __version__
from .result import Result, load, save
from .spec import Spec

__all__ = ["CACHE_ENV", "ResultCache", "default_cache_dir", "fingerprint"]

#: the environment variable that chooses the result cache's folder
CACHE_ENV = "TOYMODEL_CACHE_DIR"


def default_cache_dir() -> Path:
    """Where trained results are cached: ``$TOYMODEL_CACHE_DIR``, else the user's cache folder
    (``$XDG_CACHE_HOME/toymodel/results``, default ``~/.cache/toymodel/results``). One folder for
    pytest, tox and the command line, so a result trained by one is reused by the others."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toymodel" / "results"


def _package_imports(path: Path, package: Path) -> set[Path]:
    """Files of this package that ``path`` imports (relative or ``toymodel.`` imports)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0 and not base.startswith(package.name):
                continue
            base = base.removeprefix(package.name).lstrip(".")
            names.add(base)
            names.update(f"{base}.{a.name}".strip(".") for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.removeprefix(package.name).lstrip(".") for a in node.names
                         if a.name.startswith(package.name + "."))
    found = set()
    for name in names:
        candidate = package.joinpath(*name.split(".")) if name else package / "__init__"
        for f in (candidate.with_suffix(".py"), candidate / "__init__.py"):
            if f.is_file():
                found.add(f.resolve())
    return found


def fingerprint(impl: Callable[..., object]) -> str:
    """A short hash of the code behind ``impl``: its source file and, for implementations in this
    package, every package module it imports, transitively (a change to a sampler or the model
    code must invalidate cached results as surely as a change to the training loop), and for
    code that uses the fused kernel, its training path and build (:func:`toymodel.fused.build_info`)."""
    try:
        source = inspect.getsourcefile(impl) or ""
    except TypeError:
        source = ""
    if not source:
        return hashlib.sha256(b"").hexdigest()[:10]
    package = Path(__file__).resolve().parent
    todo, seen = [Path(source).resolve()], set()
    while todo:
        f = todo.pop()
        if f in seen or not f.is_file():
            continue
        seen.add(f)
        if package in f.parents:
            todo.extend(_package_imports(f, package))
    if any(package in f.parents for f in seen):
        seen.update(package.glob("*.c"))  # C kernels loaded at run time (toymodel.fused)
    digest = hashlib.sha256()
    for f in sorted(seen):
        digest.update(f.read_bytes())
    if package / "fused.py" in seen:  # the compiled kernel: its last bits depend on compiler and flags
        from . import fused

        digest.update(json.dumps(fused.build_info(), sort_keys=True).encode())
    return digest.hexdigest()[:10]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no cross-process lock
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class ResultCache:
    """Results under ``root``; :meth:`get_or_train` trains at most once per key."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def key(self, spec: Spec, implementation: str, code: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", implementation)[:60]
        return f"{spec.hash()}-{safe}-{code}-v{__version__}"

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def get_or_train(self, spec: Spec, implementation: str, code: str,
                     train: Callable[[Spec], Result]) -> Result:
        key = self.key(spec, implementation, code)
        path = self.path(key)
        with _locked(self.root / f"{key}.lock"):
            if path.exists():
                try:
                    return load(path)
                except Exception:  # a truncated or foreign file: retrain and overwrite
                    path.unlink(missing_ok=True)
            result = train(spec)
            save(result, path)
            return result
