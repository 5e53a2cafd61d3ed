"""Collecting the specs a run's claims need before any claim runs, so that an executor can train
them all at once (:mod:`toymodel.suite.executors`; the pytest plugin's ``--executor`` and
``--train-only``).

How the specs are found: a discovery pass. Every selected claim test that trains is called once,
before the run, with a ``trained`` that records each spec it is asked for and returns a
placeholder of the right shapes (:func:`placeholder`: zero weights, validated field by field as
the contract wants), and a ``claim`` that records checks without raising (``Claim(collect=True)``,
no baselines, no figures); whatever the test then raises on the placeholder (a check on zeros, a
division by zero, ``pytest.skip``) is swallowed, and so are its warnings. Claims do not declare
their specs: the pass finds them from the code that uses them, so a new claim needs nothing more.

What it cannot find, it leaves to the normal run: a spec built from an earlier result's numbers,
or asked for after the test gave up on a placeholder, is trained in process when the test asks
for it, as without an executor, and the run's summary names it (``missed``). The fast tier's
claims ask for every spec up front; ``tests/test_executors.py`` checks that the pass finds them
all. A claim test with a fixture the pass does not know (beyond ``trained``, ``claim``,
``impl_name``, ``claims_seed`` and its parameters) is not called: its specs are trained when it
runs.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..result import Result, expected_loss_steps
from ..spec import Spec
from .claim import Claim

__all__ = ["Discovery", "discover", "placeholder"]

#: fixtures the discovery pass can give a claim test (besides its parameters)
KNOWN_FIXTURES = ("trained", "claim", "impl_name", "claims_seed")


def placeholder(spec: Spec) -> Result:
    """A result of ``spec``'s shapes that trained nothing: zero weights, the contract's logged
    steps, a flat loss curve and held-out loss, read-only like a validated result."""
    i, m, n = spec.instances, spec.m, spec.n
    steps = expected_loss_steps(spec)
    arrays = {
        "W": np.zeros((i, m, n)),
        "b": np.zeros((i, n)),
        "loss_steps": steps,
        "loss_curve": np.ones((i, len(steps))),
        "eval_loss": np.ones(i),
        "eval_loss_se": np.zeros(i),
    }
    if spec.model == "abs":
        arrays["W2"] = np.zeros((i, n, m))
    for arr in arrays.values():
        arr.setflags(write=False)
    return Result(spec=spec, implementation="placeholder", meta={"placeholder": True}, **arrays)


@dataclass
class Discovery:
    """What the discovery pass found: every spec asked for (as the claims wrote them, before any
    reseeding; unique, in the order asked), per test the hashes it asked for, the tests it could
    not call, and how long the pass took."""

    specs: list[Spec] = field(default_factory=list)
    per_test: dict[str, list[str]] = field(default_factory=dict)
    not_called: list[str] = field(default_factory=list)
    seconds: float = 0.0


def discover(items: Iterable[Any], *, impl_name: str, seed: int) -> Discovery:
    """Call every claim test in ``items`` (pytest items whose function takes ``trained``) on
    placeholders and record the specs each asks for (see the module docstring)."""
    start = time.monotonic()
    found = Discovery()
    seen: dict[str, Spec] = {}
    for item in items:
        fn: Callable[..., Any] | None = getattr(item, "obj", None)
        if fn is None:
            continue
        names = list(inspect.signature(fn).parameters)
        if "trained" not in names:
            continue
        callspec = getattr(item, "callspec", None)
        params: dict[str, Any] = dict(callspec.params) if callspec is not None else {}
        asked: list[str] = []

        def trained(spec: Spec, asked: list[str] = asked) -> Result:
            key = spec.hash()
            seen.setdefault(key, spec)
            if key not in asked:
                asked.append(key)
            return placeholder(spec)

        claim = Claim(id=item.name, implementation=impl_name, seed=seed, collect=True)
        given = {"trained": trained, "claim": claim, "impl_name": impl_name, "claims_seed": seed}
        if any(n not in given and n not in params for n in names):
            found.not_called.append(item.nodeid)
            continue
        kwargs = {n: params[n] if n in params else given[n] for n in names}
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                fn(**kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException:  # a placeholder breaks claims: the specs asked for so far are what counts
            pass
        found.per_test[item.nodeid] = asked
    found.specs = list(seen.values())
    found.seconds = time.monotonic() - start
    return found
