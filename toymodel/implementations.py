"""Finding and running implementations: anything that turns a Spec into a Result.

An implementation is a callable ``train(spec) -> Result | Mapping`` (see
:mod:`toymodel.result` for the fields). It is selected by a registered name (``torch``, the
reference, and ``numpy``, an independent one) or by ``module:attr``. Its output is always
validated, and an exception inside it is re-raised as :class:`ImplementationError` naming it,
so a broken implementation reads as that implementation's failure, not as a suite crash.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from .result import Result, validate
from .spec import Spec

__all__ = ["DEFAULT", "REGISTRY", "Implementation", "ImplementationError", "resolve", "run"]

Implementation = Callable[[Spec], Any]

REGISTRY: dict[str, str] = {
    "torch": "toymodel.impl_torch:train",
    "numpy": "toymodel.impl_numpy:train",
    "torch-plain": "toymodel.impl_torch_plain:train",
}
DEFAULT = "torch"
ENV_VAR = "TOYMODEL_IMPL"


class ImplementationError(RuntimeError):
    """An implementation could not be loaded, or raised while training."""


def selected_name(option: str | None = None) -> str:
    """The implementation to use: the explicit option, then $TOYMODEL_IMPL, then the default."""
    return option or os.environ.get(ENV_VAR) or DEFAULT


def resolve(name: str) -> Implementation:
    """Load an implementation by registered name or ``module:attr``; one that needs torch
    without torch installed (the ``torch`` extra) is an error saying what to install."""
    target = REGISTRY.get(name, name)
    if ":" not in target:
        raise ImplementationError(
            f"unknown implementation {name!r}: use one of {sorted(REGISTRY)} or 'module:attr'")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the import itself is the implementation's code
        if isinstance(exc, ModuleNotFoundError) and (exc.name or "").partition(".")[0] == "torch":
            raise ImplementationError(f"implementation {name!r} needs torch, which is not installed: "
                                      "pip install 'toymodel[torch]'") from None  # the line says it all
        raise ImplementationError(f"implementation {name!r}: cannot import {module_name!r}: "
                                  f"{type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ImplementationError(f"implementation {name!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ImplementationError(f"implementation {name!r}: {target!r} is not callable")
    return obj


def run(name: str, spec: Spec, impl: Implementation | None = None) -> Result:
    """Train ``spec`` with the named implementation and validate what it returns."""
    fn = impl if impl is not None else resolve(name)
    try:
        raw = fn(spec)
    except Exception as exc:
        raise ImplementationError(
            f"implementation {name!r} raised {type(exc).__name__} on spec {spec.hash()} "
            f"({spec.name or spec.model}): {exc}") from exc
    return validate(raw, spec, name)
