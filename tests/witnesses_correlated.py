"""Witnesses of the correlated section's checks (see ``witness_kit``).

Each claim of this section trains the correlated features and, beside them, the same features
sampled independently (its control). A witness breaks the correlated run in one way, or serves
the correlated run's result for the control (an implementation that samples the control as if
correlated), which only the contrast check can see.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from witness_kit import (
    Serve,
    Witness,
    best_instance,
    control_is,
    edit,
    exactly,
    rescored,
)

from toymodel.analysis import metrics
from toymodel.experiments import correlated as ex
from toymodel.result import Result

M = "test_correlated"
T = {
    name: f"{M}::test_{name}"
    for name in (
        "correlated_orthogonal",
        "anticorrelated_antipodal",
        "correlated_side_by_side",
        "local_orthogonal_bases",
        "pca_collapse",
    )
}
PAIRS = np.array([[0, 1], [2, 3], [4, 5]])
CORRELATED, ANTI = ex.pair_sets("correlated"), ex.pair_sets("anticorrelated")
HEXAGON, BASES, COLLAPSE = ex.hexagon(), ex.local_bases(), ex.collapse_sweep()
FAST = {"tier": "fast"}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _tilt(w: np.ndarray, i: int, toward: int, cos: float) -> np.ndarray:
    """Feature i of one restart rotated towards feature ``toward`` to cosine ``cos`` (norm kept)."""
    w = w.copy()
    u = _unit(w[:, toward])
    v = _unit(w[:, i] - (w[:, i] @ u) * u)
    w[:, i] = np.linalg.norm(w[:, i]) * (cos * u + np.sqrt(1 - cos**2) * v)
    return w


def _restarts(
    name: str,
    which: Callable[[Result], np.ndarray],
    change: Callable[[np.ndarray], np.ndarray],
    setting: int = 0,
) -> Serve:
    """Change the weights of the restarts ``which(result)`` (instance indices) of one setting."""

    def apply(result: Result) -> Result:
        W = np.array(result.W)
        for k in which(result):
            W[setting * result.spec.restarts + k] = change(W[setting * result.spec.restarts + k])
        return edit(result, W=W)

    return exactly(name, apply)


def _best(setting: int = 0) -> Callable[[Result], np.ndarray]:
    return lambda r: np.array([best_instance(r, setting) - setting * r.spec.restarts])


def _others(setting: int = 0, count: int | None = None) -> Callable[[Result], np.ndarray]:
    """Restarts other than the selected one (the first ``count`` of them)."""

    def pick(r: Result) -> np.ndarray:
        best = best_instance(r, setting) - setting * r.spec.restarts
        rest = np.array([k for k in range(r.spec.restarts) if k != best])
        return rest if count is None else rest[:count]

    return pick


def _alone_and_collapsed(result: Result) -> Result:
    """The selected restart alone within one standard error of the lowest loss, with a collapsed pair."""
    k = best_instance(result, 0)
    assert result.eval_loss_se is not None
    loss = np.array(result.eval_loss)
    loss[k] = loss.min() - 10 * result.eval_loss_se[k]
    W = np.array(result.W)
    W[k] = _collapse(W[k])
    return edit(result, W=W, eval_loss=loss)


def _scaled(i: int, factor: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(w: np.ndarray) -> np.ndarray:
        w = w.copy()
        w[:, i] *= factor
        return w

    return change


def _partners_antipodal(w: np.ndarray) -> np.ndarray:
    w = w.copy()
    w[:, 1] = -w[:, 0]
    return w


def _anticorrelated_as_independent(result: Result) -> Result:
    """The weights a model trained on independent features (right marginals) ends with, scored on
    the anticorrelated sample: the reference's own control run."""
    from witness_kit import reference

    control = reference(ex.independent(ANTI))
    return rescored(result, np.array(control.W), np.array(control.b))


def _collapse(w: np.ndarray) -> np.ndarray:
    """Pair (4, 5) collapsed onto its principal component (both at norm 1/sqrt 2)."""
    w = w.copy()
    u = _unit(w[:, 4] + w[:, 5])
    w[:, 4] = w[:, 5] = u / np.sqrt(2)
    return w


def _swap_partners(w: np.ndarray) -> np.ndarray:
    """Features 1 and 2 trade directions: the pairs (0, 1) and (2, 3) no longer sit side by side."""
    w = w.copy()
    w[:, [1, 2]] = w[:, [2, 1]]
    return w


def _uncollapse(keep: int) -> Callable[[np.ndarray], np.ndarray]:
    """Keep at most ``keep`` collapsed pairs: the others' second member turned by 40°."""

    def change(w: np.ndarray) -> np.ndarray:
        w = w.copy()
        collapsed = np.flatnonzero(metrics.collapsed_pairs(w, PAIRS))
        t = np.radians(40.0)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        for p in collapsed[keep:]:
            w[:, PAIRS[p, 1]] = rot @ w[:, PAIRS[p, 1]]
        return w

    return change


def _dip_at_017(result: Result) -> Result:
    """At density 0.17 the selected restart has no collapsed pair, its held-out loss a hair below the
    former best's (which stays within one standard error, with its 2 collapsed pairs)."""
    level = 2
    r = result.spec.restarts
    best = best_instance(result, level)
    other = next(k for k in range(level * r, (level + 1) * r) if k != best)
    W = np.array(result.W)
    W[other] = _uncollapse(0)(W[other])
    assert result.eval_loss_se is not None
    loss = np.array(result.eval_loss)
    loss[other] = loss[best] - 0.25 * result.eval_loss_se[best]
    return edit(result, W=W, eval_loss=loss)


WITNESSES: list[Witness] = [
    Witness(
        T["correlated_orthogonal"],
        "all_represented",
        "a feature of the best restart at norm 0.8",
        serve=_restarts(CORRELATED.name, _best(), _scaled(0, 0.8)),
    ),
    Witness(
        T["correlated_orthogonal"],
        "orthogonal_within_sets",
        "correlated partners 78° apart in the best restart",
        serve=_restarts(CORRELATED.name, _best(), lambda w: _tilt(w, 1, 0, 0.2)),
    ),
    Witness(
        T["correlated_orthogonal"],
        "partners_never_antipodal",
        "two restarts pair correlated partners antipodally",
        serve=_restarts(CORRELATED.name, _others(count=2), _partners_antipodal),
    ),
    Witness(
        T["correlated_orthogonal"],
        "independent_control_pairs_partners",
        "the independent control never pairs partners (it was sampled as correlated)",
        serve=control_is(CORRELATED),
    ),
    Witness(
        T["anticorrelated_antipodal"],
        "no_interference",
        "a model trained on independent features with the right marginals, scored on anticorrelated data",
        serve=exactly(ANTI.name, _anticorrelated_as_independent),
    ),
    Witness(
        T["correlated_side_by_side"],
        "hexagon",
        "the lowest-loss restart, clear of the others, has a collapsed pair",
        serve=exactly(HEXAGON.name, _alone_and_collapsed),
    ),
    Witness(
        T["correlated_side_by_side"],
        "side_by_side_contrast",
        "but for the selected restart the partners do not sit side by side",
        serve=_restarts(HEXAGON.name, _others(), _swap_partners),
    ),
    Witness(
        T["local_orthogonal_bases"],
        "all_represented",
        "a feature of the best restart at norm 0.8",
        serve=_restarts(BASES.name, _best(), _scaled(0, 0.8)),
    ),
    Witness(
        T["local_orthogonal_bases"],
        "orthogonal_within_sets",
        "a restart other than the best with two members of a set 78° apart",
        serve=_restarts(BASES.name, _others(count=1), lambda w: _tilt(w, 1, 0, 0.2)),
    ),
    Witness(
        T["local_orthogonal_bases"],
        "independent_control_interferes",
        "the independent control forms local bases too (it was sampled as correlated)",
        serve=control_is(BASES),
    ),
    Witness(
        T["pca_collapse"],
        "collapsed_counts",
        "no pair collapses at density 0.1",
        serve=_restarts(COLLAPSE.name, lambda r: np.arange(r.spec.restarts), _uncollapse(0), setting=1),
        params=FAST,
    ),
    Witness(
        T["pca_collapse"],
        "modal_at_035",
        "at density 0.35 restarts keep one pair uncollapsed",
        serve=_restarts(COLLAPSE.name, lambda r: np.arange(r.spec.restarts), _uncollapse(2), setting=3),
        params=FAST,
    ),
    Witness(
        T["pca_collapse"],
        "non_decreasing",
        "at density 0.17 the lowest-loss restart (by a hair) collapses nothing",
        serve=exactly(COLLAPSE.name, _dip_at_017),
        params=FAST,
    ),
    Witness(
        T["pca_collapse"],
        "independent_control_never_collapses",
        "the independent control collapses pairs (it was sampled as correlated)",
        serve=control_is(COLLAPSE),
        params=FAST,
    ),
]
