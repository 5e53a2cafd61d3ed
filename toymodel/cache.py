"""On-disk cache of trained results, keyed by (spec hash, implementation, code fingerprint).

Several claims share one training run, and re-running the claims is instant. The key includes
the package version and a hash of the implementation's source file, so editing an
implementation invalidates its entries. Safe when several processes (pytest-xdist workers)
share the folder: a per-key lock file serialises training of the same key, and results are
written to a temporary file and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from . import __version__
from .result import Result, load, save
from .spec import Spec

__all__ = ["ResultCache", "fingerprint"]


def fingerprint(impl: Callable[..., object]) -> str:
    """A short hash of the source file that defines ``impl`` (empty if it has none)."""
    try:
        source = inspect.getsourcefile(impl) or ""
        data = Path(source).read_bytes() if source else b""
    except (TypeError, OSError):
        data = b""
    return hashlib.sha256(data).hexdigest()[:10]


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
