"""Candidates optimised on the expected loss: starting geometries (regular polygons, digon
squares), each candidate's direction pattern with free norms and biases minimised on
:func:`~toymodel.theory.expected.expected_loss`, and the optimised phase map and boundaries
beside the closed-form ones (:mod:`toymodel.theory.closed_forms`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import optimize

from .closed_forms import (
    N2_CANDIDATES,
    N3_CANDIDATES,
    ArrayLike,
    candidate_params_n2,
    candidate_params_n3,
    closed_form_losses_n2,
    closed_form_losses_n3,
)
from .expected import expected_loss

__all__ = [
    "CandidateFit",
    "OptimisedPhaseMap",
    "digon_square",
    "optimise_candidate",
    "optimised_boundary",
    "optimised_phase_map",
    "regular_polygon",
]


def regular_polygon(
    k: int, n: int, radius: float = 1.0, features: Sequence[int] | None = None, phase: float = 0.0
) -> np.ndarray:
    """W (2, n) with ``features`` (default 0..k-1) at the vertices of a regular k-gon of the
    given radius, at angles phase + 2πj/k in the given order; the other columns are 0."""
    feats = list(range(k)) if features is None else [int(f) for f in features]
    if len(feats) != k or len(set(feats)) != k or not all(0 <= f < n for f in feats):
        raise ValueError(f"need {k} distinct features in [0, {n}), got {feats}")
    W = np.zeros((2, n))
    ang = phase + 2.0 * math.pi * np.arange(k) / k
    W[0, feats] = radius * np.cos(ang)
    W[1, feats] = radius * np.sin(ang)
    return W


def digon_square(
    n: int, pairs: Sequence[tuple[int, int]], radius: float = 1.0, phase: float = 0.0
) -> np.ndarray:
    """W (2, n) with two antipodal pairs on orthogonal axes (a square of two digons): pair 0 at
    phase and phase+π, pair 1 at phase±π/2; unlisted features are 0 (not represented)."""
    if len(pairs) != 2:
        raise ValueError("a digon square needs exactly two pairs")
    W = np.zeros((2, n))
    for q, (i, j) in enumerate(pairs):
        a = phase + q * math.pi / 2.0
        W[:, i] = radius * np.array([math.cos(a), math.sin(a)])
        W[:, j] = -W[:, i]
    return W


class CandidateFit(NamedTuple):
    """A candidate optimised by :func:`optimise_candidate`."""

    W: np.ndarray
    b: np.ndarray
    loss: float
    collapsed: bool  # some represented feature shrank to <= collapse_tol of its starting norm


def optimise_candidate(
    W: np.ndarray,
    b: np.ndarray,
    importance: ArrayLike,
    density: ArrayLike,
    model: str = "relu_output",
    *,
    min_scale: float = 1e-3,
    max_scale: float = 10.0,
    collapse_tol: float = 0.05,
    panels: Mapping[int, int] | None = None,
) -> CandidateFit:
    """Minimise the expected loss over the column norms and the biases of a candidate, keeping
    its directions (zero columns stay zero). Scales (relative to the starting norms) are bounded
    to [min_scale, max_scale]; a represented feature whose scale ends <= ``collapse_tol`` marks
    the fit ``collapsed``: the pattern is then no local minimum there and has slid into another
    candidate (e.g. an antipodal pair into an ignored feature), so phase maps leave it out."""
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = W.shape[1]

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        val, dW, db = expected_loss(W * theta[:n], theta[n:], importance, density, model, panels)
        return val, np.concatenate([np.einsum("ki,ki->i", dW, W), db])

    bounds = [(min_scale, max_scale)] * n + [(None, None)] * n
    res = optimize.minimize(
        fun,
        np.concatenate([np.ones(n), b]),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 1000, "gtol": 1e-12, "ftol": 1e-15},
    )
    scale = res.x[:n]
    represented = np.any(W != 0, axis=0)
    collapsed = bool(np.any(represented & (scale <= collapse_tol)))
    return CandidateFit(W * scale, res.x[n:].copy(), float(res.fun), collapsed)


@dataclass(frozen=True)
class OptimisedPhaseMap:
    """Per-candidate optimised losses over an (r, s) grid and the resulting labels, beside the
    closed-form ones. ``losses``, ``collapsed``, ``closed_form``: (C, len(r), len(s));
    ``labels``: (len(r), len(s)) indices into ``names`` of the lowest non-collapsed loss."""

    n: int
    names: tuple[str, ...]
    r: np.ndarray
    s: np.ndarray
    losses: np.ndarray
    collapsed: np.ndarray
    labels: np.ndarray
    closed_form: np.ndarray
    closed_form_labels: np.ndarray


def _candidates(
    n: int,
) -> tuple[
    tuple[str, ...],
    Callable[[float], dict[str, tuple[np.ndarray, np.ndarray]]],
    Callable[[ArrayLike, ArrayLike], np.ndarray],
]:
    if n == 2:
        return N2_CANDIDATES, candidate_params_n2, closed_form_losses_n2
    if n == 3:
        return N3_CANDIDATES, candidate_params_n3, closed_form_losses_n3
    raise ValueError(f"candidates exist for n=2 and n=3, not n={n}")


def _importance(n: int, r: float) -> np.ndarray:
    imp = np.ones(n)
    imp[-1] = r
    return imp


def optimised_phase_map(n: int, r: ArrayLike, s: ArrayLike) -> OptimisedPhaseMap:
    """Optimise every candidate (:func:`optimise_candidate`) of the n=2 or n=3 problem at each
    (r, s) of the grid and label each point by the lowest non-collapsed optimised loss. The
    extra feature is the last one, importance r; all densities s."""
    names, params_of, closed = _candidates(n)
    r_arr = np.atleast_1d(np.asarray(r, dtype=np.float64))
    s_arr = np.atleast_1d(np.asarray(s, dtype=np.float64))
    losses = np.empty((len(names), len(r_arr), len(s_arr)))
    collapsed = np.zeros(losses.shape, dtype=bool)
    for a, rv in enumerate(r_arr):
        imp = _importance(n, float(rv))
        for c, sv in enumerate(s_arr):
            cands = params_of(float(sv))
            for q, name in enumerate(names):
                fit = optimise_candidate(*cands[name], imp, float(sv))
                losses[q, a, c] = fit.loss
                collapsed[q, a, c] = fit.collapsed
    cf = closed(r_arr[:, None], s_arr[None, :])
    labels = np.argmin(np.where(collapsed, np.inf, losses), axis=0)
    return OptimisedPhaseMap(n, names, r_arr, s_arr, losses, collapsed, labels, cf, np.argmin(cf, axis=0))


_SUPERPOSED = frozenset({"antipodal", "perp_110", "perp_011"})


def optimised_boundary(n: int, r: float, lo: float = 0.01, hi: float = 1.0, xtol: float = 1e-6) -> float:
    """Density where the best optimised superposition candidate (one with an antipodal pair)
    stops beating the best optimised other one, by Brent's method in log density: a loss
    crossing, or where the superposed candidates collapse (stop being local minima). NaN when
    the winner does not change in [lo, hi]. Compare with :func:`boundary_n2`/:func:`boundary_n3`."""
    names, params_of, _ = _candidates(n)
    imp = _importance(n, r)

    def gap(log_s: float) -> float:
        sv = math.exp(log_s)
        cands = params_of(sv)
        best = {True: math.inf, False: math.inf}
        for name in names:
            fit = optimise_candidate(*cands[name], imp, sv)
            if not fit.collapsed:
                key = name in _SUPERPOSED
                best[key] = min(best[key], fit.loss)
        if math.isinf(best[True]):
            return 1.0 + abs(best[False])  # no superposed candidate exists: it cannot win
        return best[True] - best[False]

    a, z = math.log(lo), math.log(hi)
    if not gap(a) * gap(z) < 0:
        return math.nan
    return math.exp(optimize.brentq(gap, a, z, xtol=xtol))
