"""The object a claim test talks to: checks with measured values and bounds, reported values,
regression values and figures, all collected for the claims report.

A failed check raises :class:`ClaimFailure` whose message names the claim, what was measured,
the bound, the implementation and the seed, so a third party can act on it without reading the
suite.

Every check has a stable ``key`` (snake_case, a literal at the call site): the report and the
calibration data are indexed by it, and ``tests/test_witnesses.py`` holds, for every key of every
claim, a witness the check rejects (a broken result or a broken theory function), so a check that
cannot fail cannot land. ``collect=True`` records failed checks without raising, so a witness can
see which checks a result breaks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..report.figures import figures_unavailable
from ..report.records import jsonable
from ..result import Result
from ..spec import Spec
from .baselines import BaselineStore

#: the paper's sections, in its order: each is a pytest marker of the claims it holds (``-m phase``)
SECTIONS = (
    "superposition",
    "phase",
    "geometry",
    "nonuniform",
    "correlated",
    "dynamics",
    "privileged",
    "computation",
    "adversarial",
)

__all__ = ["SECTIONS", "Claim", "ClaimFailure", "Trained"]

#: what the ``trained`` fixture is: the implementation's validated, suite-scored result of a spec
Trained = Callable[[Spec], Result]

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
#: the tiers a claim test belongs to: checks on an implementation's results, or theory only
TIERS = ("implementation", "theory")


class ClaimFailure(AssertionError):
    """A claim's predicate did not hold."""

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


def _is_number(value: Any) -> bool:
    numeric = isinstance(value, (int, float, np.integer, np.floating))
    return numeric and not isinstance(value, (bool, np.bool_))


def _short(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            return np.array2string(arr, precision=4, separator=", ", max_line_width=200, threshold=40)
        return np.array2string(arr, separator=", ", max_line_width=200, threshold=40)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


@dataclass
class Claim:
    """One claim under test (created per test by the pytest plugin)."""

    id: str
    implementation: str
    seed: int
    reference: bool = False
    baselines: BaselineStore | None = None
    figure_dir: Path | None = None
    tier: str = "implementation"
    collect: bool = False
    checks: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    spec_hashes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    figure_errors: list[str] = field(default_factory=list)
    regression: list[str] = field(default_factory=list)
    #: per spec hash this claim read: its name, model, shape, seed and instances (for the report)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def check(
        self,
        key: str,
        ok: bool | np.bool_,
        *,
        what: str,
        measured: Any,
        bound: Any,
        value: float | None = None,
        lower: float | None = None,
        upper: float | None = None,
        trials: int | None = None,
    ) -> None:
        """Assert one predicate of the claim (``key``: its stable name); record it either way.

        ``measured`` and ``bound`` are what a reader sees; a numeric check also gives the one number
        it compares, ``value`` (default: ``measured`` when that is a number), and its numeric
        ``lower`` and/or ``upper`` bound, so that calibration can say how far correct
        implementations land from the bound and reports can draw it. ``trials``: ``value`` counts
        the successes among that many independent tries (restarts), and calibration bounds the
        check's failure probability from the per-try rate pooled over its runs (a binomial tail),
        which says more than a standard-deviation margin does for a small count.
        """
        if not _KEY.match(key):
            raise ValueError(f"check key {key!r} of claim {self.id!r} must be snake_case")
        passed = bool(ok)
        if value is None and _is_number(measured):
            value = float(measured)
        self.checks.append(
            {
                "key": key,
                "what": what,
                "passed": passed,
                "measured": jsonable(measured),
                "bound": jsonable(bound),
                "value": jsonable(value),
                "lower": jsonable(lower),
                "upper": jsonable(upper),
                "trials": trials,
            }
        )
        if not passed and not self.collect:
            who = (
                "theory, no implementation involved"
                if self.tier == "theory"
                else f"implementation {self.implementation!r}, claims seed {self.seed}"
            )
            raise ClaimFailure(
                f"[{self.id}] {what}: measured {_short(measured)}, expected {_short(bound)} ({who})", key
            )

    @property
    def failed_keys(self) -> set[str]:
        """Keys of the checks that failed (with ``collect=True``, all of them; else the first)."""
        return {c["key"] for c in self.checks if not c["passed"]}

    def record(self, name: str, value: Any) -> None:
        """Report a measured value without asserting on it."""
        self.values[name] = jsonable(value)

    def uses(self, *spec_hashes: str) -> None:
        """Note the specs whose results this claim read (for the report and baselines)."""
        self.spec_hashes.extend(h for h in spec_hashes if h not in self.spec_hashes)

    def uses_spec(self, spec: Spec) -> None:
        """Note a spec this claim read, with what a report shows of it."""
        key = spec.hash()
        self.uses(key)
        self.specs.setdefault(
            key,
            {
                "name": spec.name,
                "model": spec.model,
                "n": spec.n,
                "m": spec.m,
                "seed": spec.seed,
                "instances": spec.instances,
                "steps": spec.train.steps,
            },
        )

    def regress(self, name: str, value: Any, *, rtol: float, atol: float = 0.0) -> None:
        """Regression tier: compare with ``baselines/<id>.json`` for the reference implementation
        at claims seed 0; a no-op for any other implementation or seed."""
        self.values[f"regression:{name}"] = jsonable(value)
        if not self.reference or self.seed != 0 or self.baselines is None:
            return
        self.regression.append(
            self.baselines.check(
                self.id, name, value, rtol=rtol, atol=atol, spec_hashes=self.spec_hashes, seed=self.seed
            )
        )

    def figure(self, name: str, draw: Callable[[Any], None]) -> None:
        """Draw a figure with ``draw(figure)`` (see :mod:`toymodel.report.figures`) and save it as PNG, when
        a report is requested and matplotlib can be imported (else nothing: the plugin says once
        why). A figure that fails to draw never changes the verdict: the error is kept in
        ``figure_errors`` and shown in the report."""
        if self.figure_dir is None or figures_unavailable() is not None:
            return
        import matplotlib.pyplot as plt

        self.figure_dir.mkdir(parents=True, exist_ok=True)
        fig = plt.figure(figsize=(6, 4.5))
        try:
            draw(fig)
            path = self.figure_dir / f"{self.id}-{name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            self.figures.append(str(path))
        except Exception as exc:  # a presentation fault, not a verdict
            self.figure_errors.append(f"figure {name!r}: {type(exc).__name__}: {exc}")
        finally:
            plt.close(fig)

    def as_dict(self) -> dict[str, Any]:
        return {
            "claim": self.id,
            "tier": self.tier,
            "implementation": self.implementation,
            "seed": self.seed,
            "checks": self.checks,
            "values": self.values,
            "spec_hashes": self.spec_hashes,
            "figures": self.figures,
            "figure_errors": self.figure_errors,
            "regression": self.regression,
            "specs": self.specs,
        }
