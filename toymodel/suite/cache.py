"""On-disk cache of trained results, keyed by (spec hash, implementation, code fingerprint).

Several claims share one training run, and re-running the claims is instant. The key includes
the package version and a hash of the implementation's source file, so editing an
implementation invalidates its entries. Safe when several processes (pytest-xdist workers)
share the folder: a per-key lock file serialises training of the same key, and results are
written to a temporary file and renamed into place.

The cache never fails a run: a file that cannot be read (truncated, garbage, another spec's or
implementation's) is retrained and replaced, a result that cannot be written (disk full, a folder
turned read-only) is returned all the same, each said in one line through ``warn`` (stderr by
default; the pytest plugin prints them in its summary, not as Python warnings, which
``filterwarnings = error`` would turn into failures). Locks are ``flock`` locks, which the kernel
drops when their process dies, so a killed run leaves a lock file but never a held lock; a lock
that another live process holds longer than ``lock_timeout`` is given up on (said once), and the
result trained without it (the rename keeps the file whole either way).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import inspect
import io
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .. import __version__
from ..result import Result, load, save
from ..spec import Spec

__all__ = [
    "CACHE_ENV",
    "DERIVED_ENV",
    "CacheDirError",
    "ResultCache",
    "cache_dir_source",
    "check_cache_dir",
    "default_cache_dir",
    "derived",
    "file_lock",
    "fingerprint",
    "source_hash",
]

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


def cache_dir_source() -> str:
    """What chose :func:`default_cache_dir`, as the user would change it."""
    for var in (CACHE_ENV, "XDG_CACHE_HOME"):
        if os.environ.get(var):
            return f"{var}={os.environ[var]}"
    return "the default, ~/.cache/toymodel/results"


class CacheDirError(Exception):
    """The result cache folder cannot be created or written; the message says which and why."""


def check_cache_dir(root: Path, source: str) -> None:
    """Create ``root`` and write, then remove, a probe file in it; CacheDirError naming the folder,
    what chose it (``source``, see :func:`cache_dir_source`) and the way out, otherwise."""
    advice = f"set {CACHE_ENV} to a writable folder, or pass --no-cache"
    where = f"result cache folder {root} (from {source})"
    if root.exists() and not root.is_dir():
        raise CacheDirError(f"{where} is a file, not a folder; {advice}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheDirError(f"{where} cannot be created ({exc.strerror or exc}); {advice}") from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=root)
        try:
            os.write(fd, b"toymodel")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise CacheDirError(f"{where} is not writable ({exc.strerror or exc}); {advice}") from exc


#: set to 0 to compute derived quantities afresh instead of reading them from the cache folder
DERIVED_ENV = "TOYMODEL_DERIVED_CACHE"


def derived(kind: str, key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A deterministic quantity derived from the suite's own code (a theory phase map), computed
    once and kept in the cache folder as ``derived/<kind>-<key>.npz``: ``key`` must hash every input
    and the code that computes it. Any problem reading or writing the file means computing it
    afresh; ``$TOYMODEL_DERIVED_CACHE=0`` always does (tests that break theory functions set it)."""
    if os.environ.get(DERIVED_ENV, "1") == "0":
        return build()
    path = default_cache_dir() / "derived" / f"{kind}-{key}.npz"
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        pass
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
    except OSError:
        pass
    return arrays


def source_hash(*modules: object) -> str:
    """A short hash of the source files of ``modules``, every file of a package (for :func:`derived`
    keys)."""
    digest = hashlib.sha256()
    for module in modules:
        path = Path(inspect.getsourcefile(module) or "")  # type: ignore[arg-type]
        for f in sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]:
            digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def _say(line: str) -> None:
    print(f"toymodel WARNING: {line}", file=sys.stderr)


#: the package's root folder, and the module whose build stands behind the fused kernel's last bits
PACKAGE = Path(__file__).resolve().parents[1]
KERNEL = PACKAGE / "reference" / "kernel" / "fused.py"


def _package_imports(path: Path) -> set[Path]:
    """Files of this package that ``path``, one of its files, imports: relative imports (from the
    package ``path`` is in) and absolute ``toymodel.x.y`` ones, with the ``__init__.py`` of every
    package on the way (importing a module runs them)."""
    here = path.parent.relative_to(PACKAGE).parts
    names: set[tuple[str, ...]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = tuple(node.module.split(".")) if node.module else ()
            if node.level:
                if node.level - 1 > len(here):
                    continue
                base = here[: len(here) - (node.level - 1)] + module
            elif module[:1] == (PACKAGE.name,):
                base = module[1:]
            else:
                continue
            names.add(base)
            names.update((*base, a.name) for a in node.names)  # ``from . import x``: x may be a module
        elif isinstance(node, ast.Import):
            names.update(
                tuple(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == PACKAGE.name
            )
    return {f for parts in names for f in _module_files(parts)}


def _module_files(parts: tuple[str, ...]) -> set[Path]:
    """The files that importing ``toymodel.<parts>`` runs: the ``__init__.py`` of each package on
    the way and the module's own file (what of ``parts`` is no module, a function say, adds none)."""
    found: set[Path] = set()
    for k in range(len(parts) + 1):
        folder = PACKAGE.joinpath(*parts[:k])
        candidates = [folder / "__init__.py"] + ([folder.with_suffix(".py")] if k else [])
        found.update(f for f in candidates if f.is_file())
    return found


def fingerprint(impl: Callable[..., object]) -> str:
    """A short hash of the code behind ``impl``: its source file and, for implementations in this
    package, every package module it imports, transitively (a change to a sampler or the model
    code must invalidate cached results as surely as a change to the training loop), with the C
    sources beside those modules (compiled at run time: ``reference/kernel/_fused.c``), and for
    code that uses the fused kernel, its training path and build
    (:func:`toymodel.reference.kernel.fused.build_info`)."""
    try:
        source = inspect.getsourcefile(impl) or ""
    except TypeError:
        source = ""
    if not source:
        return hashlib.sha256(b"").hexdigest()[:10]
    start = Path(source).resolve()
    todo, seen = [start], set()
    if PACKAGE in start.parents:
        todo.extend(_module_files(start.with_suffix("").relative_to(PACKAGE).parts))
    while todo:
        f = todo.pop()
        if f in seen or not f.is_file():
            continue
        seen.add(f)
        if PACKAGE in f.parents:
            todo.extend(_package_imports(f))
    for f in [f for f in seen if PACKAGE in f.parents]:
        seen.update(f.parent.glob("*.c"))  # C sources compiled and loaded at run time
    digest = hashlib.sha256()
    for f in sorted(seen):
        digest.update(f.read_bytes())
    if KERNEL in seen:  # the compiled kernel: its last bits depend on compiler and flags
        from ..reference.kernel import fused

        digest.update(json.dumps(fused.build_info(), sort_keys=True).encode())
    return digest.hexdigest()[:10]


@contextlib.contextmanager
def file_lock(path: Path, timeout: float | None, gave_up: Callable[[], None]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` inside the block; after ``timeout`` seconds (None or
    0: wait for ever) of another process holding it, call ``gave_up`` and go on without it. A lock
    file that cannot be opened (read-only folder) means no lock: the write will say so."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no cross-process lock
        yield
        return
    try:
        fh = open(path, "a+b")  # noqa: SIM115 - closed by the with below
    except OSError:
        yield
        return
    with fh:
        held = True
        if not timeout:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        else:
            deadline, pause = time.monotonic() + timeout, 0.01
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        held = False
                        gave_up()
                        break
                    time.sleep(pause)
                    pause = min(pause * 2, 0.5)
        try:
            yield
        finally:
            if held:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class ResultCache:
    """Results under ``root``; :meth:`get_or_train` trains at most once per key.

    ``warn`` receives each one-line notice (unreadable file retrained, result not written, lock
    given up on; default: printed to stderr); ``lock_timeout``: seconds to wait for another process
    training the same key (None: for ever).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        warn: Callable[[str], None] | None = None,
        lock_timeout: float | None = None,
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.warn = warn or _say
        self.lock_timeout = lock_timeout
        self._write_failed = False

    def key(self, spec: Spec, implementation: str, code: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", implementation)[:60]
        return f"{spec.hash()}-{safe}-{code}-v{__version__}"

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def get_or_train(
        self, spec: Spec, implementation: str, code: str, train: Callable[[Spec], Result]
    ) -> Result:
        key = self.key(spec, implementation, code)
        path = self.path(key)
        lock = self.root / f"{key}.lock"

        def gave_up() -> None:
            self.warn(
                f"waited {self.lock_timeout:g} s for {lock}, which another process holds (training "
                f"the same spec, or hung); trained without it"
            )

        with file_lock(lock, self.lock_timeout, gave_up):
            if path.exists():
                try:
                    return self._read(path, spec, implementation)
                except Exception as exc:  # truncated, garbage or foreign: retrain and replace
                    self.warn(
                        f"cached result {path} could not be used ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]}); retrained it"
                    )
            result = train(spec)
            self._save(result, path)
            return result

    def has(self, spec: Spec, implementation: str, code: str) -> bool:
        """Whether a result of this key is on disk (not read: one that cannot be is retrained when
        it is asked for, as always)."""
        return self.path(self.key(spec, implementation, code)).exists()

    def store(self, spec: Spec, implementation: str, code: str, result: Result) -> bool:
        """Write a result trained elsewhere (an executor's worker) under its key, with the same lock
        and atomic rename as :meth:`get_or_train`; False (said once) when it cannot be written."""
        key = self.key(spec, implementation, code)
        lock = self.root / f"{key}.lock"

        def gave_up() -> None:
            self.warn(
                f"waited {self.lock_timeout:g} s for {lock}, which another process holds; wrote the "
                "result without it"
            )

        with file_lock(lock, self.lock_timeout, gave_up):
            return self._save(result, self.path(key))

    def _save(self, result: Result, path: Path) -> bool:
        try:
            save(result, path)
        except Exception as exc:  # disk full, read-only: the caller keeps the result in memory
            if not self._write_failed:
                self._write_failed = True
                self.warn(
                    f"could not write trained results to the cache {self.root} "
                    f"({type(exc).__name__}: {exc}); they are kept for this run only"
                )
            return False
        return True

    @staticmethod
    def _read(path: Path, spec: Spec, implementation: str) -> Result:
        result = load(path)
        if result.spec.hash() != spec.hash() or result.implementation != implementation:
            raise ValueError(
                f"it holds spec {result.spec.hash()} of implementation "
                f"{result.implementation!r}, not spec {spec.hash()} of {implementation!r}"
            )
        return result
