"""Witnesses: for every check of every claim, a broken result (or a broken theory function) that
the check rejects, so no check that cannot fail can land.

A :class:`Witness` names a claim test, the key of one of its checks and how to break it: either a
``trained`` function that serves, for each spec the claim asks for, the reference implementation's
own result (trained once and cached, as the claims tier does) changed in one way, or a ``patch``
that breaks a suite function for a theory-tier check. :func:`run_claim` runs the claim test with a
:class:`toymodel.suite.claim.Claim` that records every failed check instead of stopping at the first, so
a witness shows not only that its check fails but which other checks fail with it: a witness is
expected to fail its check alone (``also`` lists, with the reason in ``why``, the checks that
cannot be separated from it), which is how a check that merely restates another is found.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from toymodel.analysis import select
from toymodel.result import Result
from toymodel.spec import Spec
from toymodel.suite import implementations
from toymodel.suite.cache import ResultCache, default_cache_dir, fingerprint
from toymodel.suite.claim import Claim

Loader = Callable[[Spec], Result]
#: serves the result a claim sees for ``spec``, given the reference's own result loader
Serve = Callable[[Spec, Loader], Result]


@dataclass(frozen=True)
class Witness:
    """One broken input that a claim's check ``key`` must reject.

    test: ``<module>::<function>`` of the claim test under ``toymodel.claims``; params: its
    parametrised arguments; serve: the results it sees (None: the reference's, unchanged);
    patch: breaks suite functions for theory checks; also: other checks it fails by necessity.
    """

    test: str
    key: str
    why: str
    serve: Serve | None = None
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    also: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        args = ",".join(f"{v}" for v in self.params.values())
        return f"{self.test.split('::')[1].removeprefix('test_')}{f'[{args}]' if args else ''}-{self.key}"


def reference(spec: Spec) -> Result:
    """The reference implementation's result for ``spec`` (seed 0), from the shared result cache
    (trained on first use; the claims tier then reuses it)."""
    impl = implementations.resolve(implementations.DEFAULT)
    cache = ResultCache(default_cache_dir())
    return cache.get_or_train(
        spec,
        implementations.DEFAULT,
        fingerprint(impl),
        lambda s: implementations.run(implementations.DEFAULT, s, impl),
    )


def claim_function(test: str) -> Callable[..., None]:
    module, _, name = test.partition("::")
    fn: Callable[..., None] = getattr(importlib.import_module(f"toymodel.claims.{module}"), name)
    return fn


def claim_id(test: str) -> str:
    fn = claim_function(test)
    for mark in getattr(fn, "pytestmark", []):
        if mark.name == "claim":
            return str(mark.args[0])
    return fn.__name__.removeprefix("test_")


def is_theory(test: str) -> bool:
    return any(m.name == "theory" for m in getattr(claim_function(test), "pytestmark", []))


def run_claim(test: str, params: Mapping[str, Any], trained: Loader | None) -> Claim:
    """Run a claim test with every check recorded (none raises); return its Claim."""
    fn = claim_function(test)
    claim = Claim(
        id=claim_id(test),
        implementation="witness",
        seed=0,
        collect=True,
        tier="theory" if is_theory(test) else "implementation",
    )
    kwargs: dict[str, Any] = {"claim": claim, **params}
    if "trained" in inspect.signature(fn).parameters:
        kwargs["trained"] = trained if trained is not None else reference
    try:
        fn(**kwargs)
    except (Exception, pytest.fail.Exception, pytest.xfail.Exception, pytest.skip.Exception) as exc:
        claim.record("witness_stopped_by", f"{type(exc).__name__}: {exc}")
    return claim


# ----- ways to break a result ------------------------------------------------------------------


def only(name: str, change: Callable[[Result], Result]) -> Serve:
    """Apply ``change`` to the result of the spec whose ``name`` contains ``name``; serve every
    other spec the reference's result unchanged."""

    def serve(spec: Spec, load: Loader) -> Result:
        result = load(spec)
        return change(result) if name in spec.name else result

    return serve


def replace(mp: pytest.MonkeyPatch, package: ModuleType, name: str, value: object) -> None:
    """Break ``package.name`` for every caller: set it on the package and on each of its modules
    that holds the same object, so that the package's own code calls the broken one too (as when
    one module held all of it)."""
    old = getattr(package, name)
    mp.setattr(package, name, value)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(f"{package.__name__}.") and getattr(module, name, None) is old:
            mp.setattr(module, name, value)


def edit(result: Result, **arrays: np.ndarray) -> Result:
    """A copy of ``result`` with whole fields replaced (float64, read-only like validate's)."""
    clean = {}
    for k, v in arrays.items():
        arr = np.array(v, dtype=np.float64)
        arr.setflags(write=False)
        clean[k] = arr
    return dataclasses.replace(result, **clean)  # type: ignore[arg-type]


def best_instance(result: Result, setting: int) -> int:
    """The instance the claims select for ``setting`` (lowest suite held-out loss)."""
    return int(select.best_of(result).instance[setting])


def edit_best(
    result: Result,
    setting: int,
    *,
    W: np.ndarray | None = None,
    b: np.ndarray | None = None,
    W2: np.ndarray | None = None,
) -> Result:
    """Replace the weights of the selected restart of ``setting``, keeping it selected."""
    k = best_instance(result, setting)
    out = {}
    for name, new in (("W", W), ("b", b), ("W2", W2)):
        if new is not None:
            arr = np.array(getattr(result, name), dtype=np.float64)
            arr[k] = new
            out[name] = arr
    return edit(result, **out)


def best_weights(result: Result, setting: int) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of the selected restart of ``setting``, as writable copies."""
    k = best_instance(result, setting)
    return result.W[k].copy(), result.b[k].copy()


def keep_only_selected(result: Result, setting: int, instance: int) -> Result:
    """Make ``instance`` (of ``setting``) the selected restart by giving it the lowest loss."""
    loss = np.array(result.eval_loss)
    r = result.spec.restarts
    block = slice(setting * r, (setting + 1) * r)
    loss[instance] = loss[block].min() * 0.5
    return edit(result, eval_loss=loss)


def edit_setting(
    result: Result,
    setting: int,
    *,
    W: np.ndarray | None = None,
    b: np.ndarray | None = None,
    W2: np.ndarray | None = None,
) -> Result:
    """Give every restart of ``setting`` the same weights, so that whichever restart a claim
    selects (by held-out, expected or exact loss) has them."""
    block = slice(setting * result.spec.restarts, (setting + 1) * result.spec.restarts)
    out = {}
    for name, new in (("W", W), ("b", b), ("W2", W2)):
        if new is not None:
            arr = np.array(getattr(result, name), dtype=np.float64)
            arr[block] = new
            out[name] = arr
    return edit(result, **out)


def settings_from(result: Result, mapping: Mapping[int, int]) -> Result:
    """Give each setting ``dst`` every restart of setting ``mapping[dst]`` (weights and held-out
    losses, restart by restart), as if the levels' results had been stored in the wrong order."""
    r = result.spec.restarts
    src = np.arange(result.spec.instances)
    for dst, s in mapping.items():
        src[dst * r : (dst + 1) * r] = np.arange(s * r, (s + 1) * r)
    fields = {"W": result.W[src], "b": result.b[src], "eval_loss": result.eval_loss[src]}
    for name in ("W2", "eval_loss_se"):
        if getattr(result, name) is not None:
            fields[name] = getattr(result, name)[src]
    return edit(result, **fields)


def exactly(name: str, change: Callable[[Result], Result]) -> Serve:
    """Apply ``change`` to the result of the spec named exactly ``name``."""

    def serve(spec: Spec, load: Loader) -> Result:
        result = load(spec)
        return change(result) if spec.name == name else result

    return serve


def control_is(base: Spec, then: Serve | None = None) -> Serve:
    """Serve, for the independent control of ``base`` (``experiments.correlated.independent``),
    the result of ``base`` itself: a control run that shows the correlated geometry, i.e. an
    implementation that samples the control's independent features as if correlated (with the
    control's restarts). Every other spec goes through ``then`` (default: unchanged)."""

    def serve(spec: Spec, load: Loader) -> Result:
        if spec.name == f"{base.name}-independent":
            return dataclasses.replace(load(base.replace(restarts=spec.restarts)), spec=spec)
        return then(spec, load) if then is not None else load(spec)

    return serve


def rescored(result: Result, W: np.ndarray, b: np.ndarray) -> Result:
    """``result`` with new weights for every instance and the suite's held-out losses of them, as a
    real implementation returning those weights would get."""
    from toymodel.result import validate

    raw = {"W": W, "b": b, "loss_steps": result.loss_steps, "loss_curve": result.loss_curve}
    if result.W2 is not None:
        raw["W2"] = result.W2
    return validate(raw, result.spec, "witness")
