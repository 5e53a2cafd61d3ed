"""Finding and running implementations: anything that turns a Spec into a Result.

An implementation is a callable ``train(spec) -> Result | Mapping`` (see
:mod:`toymodel.result` for the fields). It is selected by a registered name (``torch``, the
reference, and ``numpy``, an independent one) or by ``module:attr``. Its output is always
validated, and anything it raises, ``SystemExit`` and other ``BaseException``\\ s included (all but
``KeyboardInterrupt``, which stays the user's), is re-raised as :class:`ImplementationError` with
a one-line message naming it, so a broken implementation reads as that implementation's failure,
not as a suite crash.

Time limit (``run(..., timeout=seconds)``): a ``SIGALRM`` timer in the main thread raises
:class:`TrainingTimeout` inside the training, which stops it where it hangs (its traceback shows
where). It works on Linux and macOS for anything that returns to Python code or waits in an
interruptible call (``sleep``, locks, I/O); its limits: a single call into C code that never
returns to Python is only stopped when it returns; without ``SIGALRM`` (Windows), off the main
thread, or when another handler owns ``SIGALRM`` (pytest-timeout's signal method) there is no
limit; an implementation that catches ``BaseException`` and goes on cannot be stopped, though the
run still reports the timeout if it ever returns. The training stays in the calling thread, so
its numbers, thread settings and signal handling are exactly those of an unlimited run.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..result import Result, validate
from ..spec import Spec

__all__ = [
    "DEFAULT",
    "ENV_VAR",
    "REGISTRY",
    "Implementation",
    "ImplementationError",
    "TrainingTimeout",
    "resolve",
    "run",
    "selected_name",
    "selection_source",
]

Implementation = Callable[[Spec], Any]

REGISTRY: dict[str, str] = {
    "torch": "toymodel.reference.training:train",
    "numpy": "toymodel.numpy_impl.training:train",
    "torch-plain": "toymodel.plain:train",
}
DEFAULT = "torch"
ENV_VAR = "TOYMODEL_IMPL"
#: the longest message of an implementation's exception quoted in an ImplementationError
MESSAGE_CHARS = 300


class ImplementationError(RuntimeError):
    """An implementation could not be loaded, or raised while training."""


class TrainingTimeout(ImplementationError):
    """An implementation did not finish training one spec within the time limit."""


class _Alarm(BaseException):
    """Raised inside the training by the time limit's timer (a BaseException, so that an
    implementation's ``except Exception`` does not swallow it)."""


def selected_name(option: str | None = None) -> str:
    """The implementation to use: the explicit option, then $TOYMODEL_IMPL, then the default."""
    return option or os.environ.get(ENV_VAR) or DEFAULT


def selection_source(option: str | None = None) -> str:
    """What chose :func:`selected_name`, as the user wrote it: ``--impl NAME``,
    ``TOYMODEL_IMPL=NAME`` or ``the default implementation 'torch'``."""
    if option:
        return f"--impl {option}"
    if os.environ.get(ENV_VAR):
        return f"{ENV_VAR}={os.environ[ENV_VAR]}"
    return f"the default implementation {DEFAULT!r}"


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _describe(exc: BaseException) -> tuple[str, str]:
    """(``raised ValueError`` or ``called sys.exit(3)``, ``: message`` or ``""``), on one line."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})", ""
    text = one_line(str(exc))
    return f"raised {type(exc).__name__}", f": {text}" if text else ""


def _import(module_name: str, search_path: str | None) -> Any:
    """Import ``module_name``; when its top-level package is not found and ``search_path`` (the
    folder pytest was started in) is not on ``sys.path``, look there too, as ``python -m`` would."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.partition(".")[0]
        if search_path is None or exc.name != top or search_path in sys.path:
            raise
    sys.path.append(search_path)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except BaseException:
        sys.path.remove(search_path)
        raise


def resolve(name: str, *, search_path: str | None = None) -> Implementation:
    """Load an implementation by registered name or ``module:attr``; one that needs torch
    without torch installed (the ``torch`` extra) is an error saying what to install.
    ``search_path``: a folder to import ``module`` from when it is not found on ``sys.path``."""
    target = REGISTRY.get(name, name)
    module_name, colon, attr = target.partition(":")
    if not colon:
        close = difflib.get_close_matches(name, sorted(REGISTRY), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ImplementationError(
            f"unknown implementation {name!r}{hint}: use one of {sorted(REGISTRY)} or 'module:attr'"
        )
    if not module_name or not attr:
        raise ImplementationError(f"implementation {name!r}: expected 'module:attr', e.g. 'my_adapter:train'")
    try:
        module = _import(module_name, search_path)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the import itself is the implementation's code
        if isinstance(exc, ModuleNotFoundError) and (exc.name or "").partition(".")[0] == "torch":
            raise ImplementationError(
                f"implementation {name!r} needs torch, which is not installed: pip install 'toymodel[torch]'"
            ) from None  # the line says it all
        what, text = _describe(exc)
        raise ImplementationError(
            f"implementation {name!r}: cannot import {module_name!r}: {what.removeprefix('raised ')}{text}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ImplementationError(f"implementation {name!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ImplementationError(
            f"implementation {name!r}: {target!r} is not callable (type {type(obj).__name__})"
        )
    return obj


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[list[bool]]:
    """Raise :class:`_Alarm` in this (main) thread after ``seconds``; yields a flag list that
    holds True once the timer fired. No limit where the module docstring says so."""
    fired: list[bool] = []
    usable = (
        bool(seconds)
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    )
    if not usable:
        yield fired
        return
    previous = signal.getsignal(signal.SIGALRM)

    def alarm(signum: int, frame: object) -> None:
        fired.append(True)
        raise _Alarm

    signal.signal(signal.SIGALRM, alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, float(seconds or 0))
        try:
            yield fired
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def run(name: str, spec: Spec, impl: Implementation | None = None, *, timeout: float | None = None) -> Result:
    """Train ``spec`` with the named implementation and validate what it returns; ``timeout``:
    seconds the training may take (None or 0: no limit), else :class:`TrainingTimeout`."""
    fn = impl if impl is not None else resolve(name)
    where = f"spec {spec.hash()} ({spec.name or spec.model})"
    fired: list[bool] = []
    try:
        with _time_limit(timeout) as fired:
            raw = fn(spec)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if fired:  # our alarm, or what the implementation made of it
            raise TrainingTimeout(
                f"implementation {name!r} did not finish training {where} within "
                f"{timeout:g} s (--train-timeout); stopped it"
            ) from exc
        what, text = _describe(exc)
        raise ImplementationError(f"implementation {name!r} {what} on {where}{text}") from exc
    if fired:  # it swallowed the alarm and returned late
        raise TrainingTimeout(
            f"implementation {name!r} did not finish training {where} within {timeout:g} s (--train-timeout)"
        )
    return validate(raw, spec, name)
