"""Theory: closed-form and numerically integrated expected losses of candidate configurations.

Pure numpy/scipy (no torch). Four parts:

1. The paper's phase-change candidates (section "phase"): per-sample expected losses of the
   n=2, m=1 and n=3, m=2 candidates in closed form, their concrete weights, the optimal-label
   maps and the exact phase boundaries.
2. :func:`mc_loss`: a Monte-Carlo estimate (mean and standard error) of the expected loss of
   given weights, through the canonical sampler and loss (``toymodel.data``, ``toymodel.models``).
3. :func:`expected_loss`: a deterministic expected loss, with its exact gradient, of the linear
   and ReLU-output models with independent features (small n): every active subset is
   enumerated with its probability, the values of its last active feature are integrated
   exactly (the integrand is piecewise quadratic in it, with one kink per output), and the
   remaining active values by a fixed composite Gauss-Legendre rule. :func:`minimise_expected_loss`
   minimises it with L-BFGS-B, free of SGD noise, so transitions can be located exactly.
4. Starting geometries (regular polygons, digon squares) and optimised candidates: each
   candidate's direction pattern with free norms and biases, minimised on the expected loss,
   giving the optimised phase map beside the closed-form one.

Conventions follow CLAIMS.md: ``density`` is the probability a feature is non-zero, values are
U[0, 1], loss is sum_i I_i (x_i - x'_i)^2 per sample, W is (m, n) with column i feature i's
direction (a leading instance axis where stated).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import optimize

from .data import sample
from .models import loss as model_loss
from .spec import FeatureGroup

__all__ = [
    "N2_CANDIDATES",
    "N3_CANDIDATES",
    "TRIPLE_POINT",
    "CandidateFit",
    "OptimisedPhaseMap",
    "boundary_n2",
    "boundary_n3",
    "candidate_params_n2",
    "candidate_params_n3",
    "closed_form_losses_n2",
    "closed_form_losses_n3",
    "digon_square",
    "expected_loss",
    "mc_loss",
    "minimise_expected_loss",
    "optimise_candidate",
    "optimised_boundary",
    "optimised_phase_map",
    "phase_map_n2",
    "phase_map_n3",
    "regular_polygon",
]

ArrayLike = np.ndarray | float | Sequence[float]

# ----------------------------------------------------------------------------------------------
# 1. Closed forms of the phase-change candidates
# ----------------------------------------------------------------------------------------------

N2_CANDIDATES: tuple[str, ...] = ("not_represented", "dedicated", "antipodal")
"""n=2, m=1 candidates: W=[1,0] (extra feature ignored), W=[0,1] (extra feature gets the
dimension), W=[1,-1] (antipodal pair, b=0). Label i of :func:`phase_map_n2` is this index."""

N3_CANDIDATES: tuple[str, ...] = ("perp_001", "perp_100", "perp_110", "perp_011")
"""n=3, m=2 candidates, named by the direction W is orthogonal to (the extra feature is index 2):
perp_001 features 0, 1 orthogonal, extra ignored; perp_100 feature 0 ignored, 1 and extra
orthogonal; perp_110 features 0, 1 antipodal, extra dedicated; perp_011 feature 1 and the extra
antipodal, feature 0 dedicated. The all-three triangle (W⊥[1,1,1]) is excluded, as in the paper."""

TRIPLE_POINT: tuple[float, float] = (1.0, 4.0 / 7.0)
"""(r, s) where the three n=2 candidates (and the n=3 boundaries) meet."""


def _variance_term(s: np.ndarray) -> np.ndarray:
    """Loss of ignoring a unit-importance feature of density s with its bias at the mean s/2:
    Var(x) = E[x^2] - E[x]^2 = s/3 - s^2/4."""
    return s / 3.0 - s**2 / 4.0


def _antipodal_term(s: np.ndarray) -> np.ndarray:
    """Loss per unit of importance of an antipodal pair (W=[1,-1], b=0): only when both fire
    (probability s^2) do both outputs err, each by min(x0, x1), and E[min^2] = 1/6."""
    return s**2 / 6.0


def closed_form_losses_n2(r: ArrayLike, s: ArrayLike) -> np.ndarray:
    """Per-sample expected losses of the n=2, m=1 candidates (order :data:`N2_CANDIDATES`), for
    broadcastable extra-feature importance ``r`` and density ``s``: shape (3, *broadcast)."""
    r_arr, s_arr = np.broadcast_arrays(np.asarray(r, dtype=np.float64), np.asarray(s, dtype=np.float64))
    var = _variance_term(s_arr)
    return np.stack([r_arr * var, var, (1.0 + r_arr) * _antipodal_term(s_arr)])


def closed_form_losses_n3(r: ArrayLike, s: ArrayLike) -> np.ndarray:
    """Per-sample expected losses of the n=3, m=2 candidates (order :data:`N3_CANDIDATES`):
    r(s/3 - s^2/4), s/3 - s^2/4, s^2/3, (1+r)s^2/6; shape (4, *broadcast)."""
    r_arr, s_arr = np.broadcast_arrays(np.asarray(r, dtype=np.float64), np.asarray(s, dtype=np.float64))
    var = _variance_term(s_arr)
    anti = _antipodal_term(s_arr)
    return np.stack([r_arr * var, var, 2.0 * anti, (1.0 + r_arr) * anti])


def phase_map_n2(r: ArrayLike, s: ArrayLike) -> np.ndarray:
    """Index into :data:`N2_CANDIDATES` of the lowest closed-form loss (ties: lowest index)."""
    return np.argmin(closed_form_losses_n2(r, s), axis=0)


def phase_map_n3(r: ArrayLike, s: ArrayLike) -> np.ndarray:
    """Index into :data:`N3_CANDIDATES` of the lowest closed-form loss (ties: lowest index)."""
    return np.argmin(closed_form_losses_n3(r, s), axis=0)


def boundary_n2(r: ArrayLike) -> np.ndarray:
    """Density below which the antipodal pair wins (n=2, m=1): 4r/(2+5r) for r<1, where it
    competes with ignoring the extra feature, and 4/(5+2r) for r>=1, where it competes with
    dedicating the dimension to it. Both give 4/7 at r=1 (:data:`TRIPLE_POINT`)."""
    r_arr = np.asarray(r, dtype=np.float64)
    return np.where(r_arr < 1.0, 4.0 * r_arr / (2.0 + 5.0 * r_arr), 4.0 / (5.0 + 2.0 * r_arr))


def boundary_n3(r: ArrayLike) -> np.ndarray:
    """Density below which an antipodal pair wins (n=3, m=2): for r<1 the extra feature pairs
    with a unit one, at the n=2 boundary 4r/(2+5r); for r>=1 the extra feature keeps its own
    dimension and the two unit features pair up below 4/7 (s^2/3 = s/3 - s^2/4)."""
    r_arr = np.asarray(r, dtype=np.float64)
    return np.where(r_arr < 1.0, 4.0 * r_arr / (2.0 + 5.0 * r_arr), 4.0 / 7.0)


def candidate_params_n2(s: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Concrete (W (1, 2), b (2,)) of each n=2 candidate at density ``s``. An ignored feature's
    bias is its mean s/2 (its ReLU output is then relu(b) = s/2, the least-squares constant)."""
    half = 0.5 * float(s)
    return {
        "not_represented": (np.array([[1.0, 0.0]]), np.array([0.0, half])),
        "dedicated": (np.array([[0.0, 1.0]]), np.array([half, 0.0])),
        "antipodal": (np.array([[1.0, -1.0]]), np.array([0.0, 0.0])),
    }


def candidate_params_n3(s: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Concrete (W (2, 3), b (3,)) of each n=3 candidate at density ``s`` (extra feature = 2)."""
    half = 0.5 * float(s)
    return {
        "perp_001": (np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.array([0.0, 0.0, half])),
        "perp_100": (np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), np.array([half, 0.0, 0.0])),
        "perp_110": (np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]), np.zeros(3)),
        "perp_011": (np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]]), np.zeros(3)),
    }


# ----------------------------------------------------------------------------------------------
# 2. Monte Carlo
# ----------------------------------------------------------------------------------------------

_MC_CHUNK = 1 << 16


def mc_loss(
    model: str,
    params: Mapping[str, np.ndarray],
    importance: ArrayLike,
    density: ArrayLike,
    samples: int,
    rng: np.random.Generator,
    groups: Sequence[FeatureGroup] = (),
    values: str = "uniform01",
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo expected loss of weights with a leading instance axis (as in
    :mod:`toymodel.models`): per-instance (mean, standard error of the mean) over ``samples``
    draws of :func:`toymodel.data.sample`, in chunks so memory stays bounded.

    Per-sample losses come from :func:`toymodel.models.loss` applied to batches of one: every
    sample becomes its own batch (an extra broadcast axis), so the standard error is exact.
    """
    inst, n = params["W"].shape[0], params["W"].shape[-1]
    imp_arr = np.broadcast_to(np.asarray(importance, dtype=np.float64), (inst, n))
    den_arr = np.broadcast_to(np.asarray(density, dtype=np.float64), (inst, n))
    if samples < 2:
        raise ValueError("mc_loss needs at least 2 samples for a standard error")
    # A sample axis between instance and batch: (I, 1, ...) weights broadcast over it.
    wide = {k: v[:, None] for k, v in params.items()}
    imp_wide = imp_arr[:, None, :]
    total = np.zeros(inst)
    total_sq = np.zeros(inst)
    done = 0
    while done < samples:
        rows = min(_MC_CHUNK, samples - done)
        x = sample(den_arr, rows, rng, groups=groups, values=values)  # (I, rows, n)
        per = model_loss(model, wide, x[:, :, None, :], imp_wide)  # (I, rows)
        total += per.sum(axis=1)
        total_sq += (per**2).sum(axis=1)
        done += rows
    mean = total / samples
    var = np.maximum(total_sq / samples - mean**2, 0.0) * samples / (samples - 1)
    return mean, np.sqrt(var / samples)


# ----------------------------------------------------------------------------------------------
# 3. Deterministic expected loss
# ----------------------------------------------------------------------------------------------

# Panels per outer dimension of the composite 2-point Gauss-Legendre rule, by active-subset
# size k (k-1 outer dimensions; one active value per output is integrated exactly).
_DEFAULT_PANELS: dict[int, int] = {2: 16, 3: 8, 4: 4, 5: 3, 6: 2, 7: 1, 8: 1}
_GL_POINTS = 2
_G_EPS = 1e-150  # |G_ij| below this counts as 0 when locating a kink (avoids overflow)


@dataclass(frozen=True)
class _Block:
    """All active subsets of one size k, with the outer quadrature rule."""

    subsets: np.ndarray  # (S, k) int, sorted features of each subset
    members: np.ndarray  # (S, n) bool
    outer: np.ndarray  # (S, k, k-1): the subset without its q-th member (q = the inner one)
    nodes: np.ndarray  # (N, k-1) in [0, 1], the outer values
    weights: np.ndarray  # (N,), sum 1


def _gauss_panels(panels: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite 2-point Gauss-Legendre on [0, 1] (exact for cubics per panel)."""
    x, w = np.polynomial.legendre.leggauss(_GL_POINTS)
    edges = np.arange(panels)[:, None] / panels
    h = 1.0 / panels
    return (edges + h * (x[None, :] + 1.0) / 2.0).ravel(), np.tile(w * h / 2.0, panels)


@functools.lru_cache(maxsize=64)
def _blocks(n: int, panels: tuple[tuple[int, int], ...]) -> tuple[_Block, ...]:
    table = dict(panels)
    out = []
    for k in range(1, n + 1):
        subsets = np.array(list(itertools.combinations(range(n), k)), dtype=np.int64)  # (S, k)
        S = subsets.shape[0]
        outer = np.stack([np.delete(subsets, q, axis=1) for q in range(k)], axis=1)
        if k == 1:
            nodes, weights = np.zeros((1, 0)), np.ones(1)
        else:
            x1, w1 = _gauss_panels(table.get(k, 1))
            nodes = np.array(list(itertools.product(x1, repeat=k - 1)))
            weights = np.prod(np.array(list(itertools.product(w1, repeat=k - 1))), axis=1)
        members = np.zeros((S, n), dtype=bool)
        members[np.arange(S)[:, None], subsets] = True
        for arr in (subsets, members, outer, nodes, weights):
            arr.setflags(write=False)
        out.append(_Block(subsets, members, outer, nodes, weights))
    return tuple(out)


def _panel_key(n: int, panels: Mapping[int, int] | None) -> tuple[tuple[int, int], ...]:
    table = dict(_DEFAULT_PANELS)
    if panels is not None:
        table.update({int(k): int(v) for k, v in panels.items()})
    return tuple(sorted((k, v) for k, v in table.items() if 2 <= k <= n))


def expected_loss(
    W: np.ndarray,
    b: np.ndarray,
    importance: ArrayLike,
    density: ArrayLike,
    model: str = "relu_output",
    panels: Mapping[int, int] | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Deterministic expected per-sample loss of one model (W (m, n), b (n,)) with independent
    features (per-feature ``importance`` and ``density``, values U[0, 1]); returns
    ``(loss, dloss/dW, dloss/db)``, the gradient exact for this approximation.

    Method: sum over the 2^n active subsets A with probability prod_A p prod_notA (1-p). Given A,
    output i errs by (x_i - relu(z_i))^2 = x_i^2 + [z_i > 0](z_i^2 - 2 x_i z_i), z = Gx + b,
    G = WᵀW. In any one active value t, z_i = c + g t is linear, so the integral over t in [0, 1]
    is a quadratic polynomial integrated in closed form between the kink -c/g and the interval
    end; the other k-1 active values use a composite 2-point Gauss-Legendre rule with
    ``panels[k]`` panels per axis (defaults: k=2: 16, 3: 8, 4: 4, 5: 3, 6: 2, 7+: 1). The
    exact direction is chosen per (subset, output) as the active feature j with the largest
    |G_ij|, so the kink is never parallel to it. Subsets of size <= 1 and the linear model are
    exact (as are the phase candidates, whose kinks the exact direction resolves). Because the
    bracket vanishes at the kink, the approximation is C^1 in (W, b) (up to jumps of the size
    of the rule's error where the chosen direction switches) and its gradient is the integral of the
    bracket's gradient.

    Measured accuracy (ReLU output, n=5, m=2), relative error against 256/48/16/8 panels for
    k=2/3/4/5: regular and optimised pentagon at density 0.05: 3e-8 and 4e-8; 10 random (W, b)
    per density, worst: 4e-9 (0.05), 1.2e-7 (0.2), 2.4e-6 (0.5), 1.6e-5 (1.0). Conditional
    losses of one- and two-feature subsets equal 10^6-point midpoint grids to 1e-12 and 2e-8;
    10^7-sample Monte Carlo (relative SE 1-2e-3 at density 0.05, too noisy to resolve the
    rule's error) agrees within 2.2 SE. Cost: 2-4 ms per call at n=5, ~10 ms at n=6, ~30 ms
    at n=7 (one core).
    """
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W must be (m, n), got shape {W.shape}")
    n = W.shape[1]
    if b.shape != (n,):
        raise ValueError(f"b must be ({n},), got shape {b.shape}")
    imp = np.broadcast_to(np.asarray(importance, dtype=np.float64), (n,))
    p = np.broadcast_to(np.asarray(density, dtype=np.float64), (n,))
    if np.any((p < 0) | (p > 1)):
        raise ValueError("density must lie in [0, 1]")
    if model not in ("relu_output", "linear"):
        raise ValueError(f"expected_loss supports 'relu_output' and 'linear', not {model!r}")
    if n > 10:
        raise ValueError(f"expected_loss enumerates 2^n subsets; n={n} is too large")
    relu = model == "relu_output"
    G = W.T @ W
    dG = np.zeros((n, n))

    # Nothing active: every output is relu(b) (linear: b).
    p_none = float(np.prod(1.0 - p))
    bb = np.maximum(b, 0.0) if relu else b
    total = p_none * float(imp @ bb**2)
    db = 2.0 * p_none * imp * bb

    rows = np.arange(n)
    for blk in _blocks(n, _panel_key(n, panels)):
        prob = np.prod(np.where(blk.members, p, 1.0 - p), axis=1)  # (S,)
        if not np.any(prob > 0):
            continue
        # Constant part: integral of x_i^2 over the active values (1/3 each; the rule is exact).
        total += float(prob @ (blk.members @ imp)) / 3.0
        S = len(prob)
        srow = np.arange(S)[:, None]
        # Per (subset, output): integrate exactly along the active feature j with the largest
        # |G_ij|, so the kink of output i is as transverse to the outer axes as possible.
        gsub = np.swapaxes(G[:, blk.subsets], 0, 1)  # (S, n, k): G[i, subset member]
        q = np.argmax(np.abs(gsub), axis=2)  # (S, n)
        g = np.take_along_axis(gsub, q[:, :, None], axis=2)  # (S, n, 1)
        inner = blk.subsets[srow, q]  # (S, n)
        outer = blk.outer[srow, q]  # (S, n, k-1)
        c = b[None, :, None] + G[rows[None, :, None], outer] @ blk.nodes.T  # (S, n, N): z at t=0
        alpha = (outer == rows[None, :, None]).astype(np.float64) @ blk.nodes.T  # x_i if outer
        beta = (inner == rows[None, :]).astype(np.float64)[:, :, None]  # 1 if i is the inner
        if relu:
            live = np.abs(g) > _G_EPS
            tstar = np.clip(np.divide(-c, g, out=np.zeros_like(c), where=live), 0.0, 1.0)
            lo = np.where(live & (g > 0), tstar, 0.0)
            hi = np.where(live, np.where(g > 0, 1.0, tstar), np.where(c > 0, 1.0, 0.0))
            m0 = hi - lo
            m1 = (hi**2 - lo**2) / 2.0
            m2 = (hi**3 - lo**3) / 3.0
        else:
            m0, m1, m2 = np.ones(1), np.full(1, 0.5), np.full(1, 1.0 / 3.0)
        ca = c - alpha
        gb = g - beta
        # Bracket z^2 - 2xz = (z - x)^2 - x^2, with z - x = ca + gb t and x = alpha + beta t.
        val = (ca**2 - alpha**2) * m0 + 2.0 * (ca * gb - alpha * beta) * m1 + (gb**2 - beta**2) * m2
        omega = prob[:, None, None] * imp[None, :, None] * blk.weights[None, None, :]
        total += float(np.sum(omega * val))
        dc = omega * 2.0 * (ca * m0 + gb * m1)  # (S, n, N)
        dg = omega * 2.0 * (ca * m1 + gb * m2)
        db += dc.sum(axis=(0, 2))
        # c_i = b_i + sum_l G[i, outer_l] u_l; g_i = G[i, inner].
        flat_outer = (rows[None, :, None] * n + outer).ravel()
        flat_inner = (rows[None, :] * n + inner).ravel()
        dG += np.bincount(flat_outer, weights=(dc @ blk.nodes).ravel(), minlength=n * n).reshape(n, n)
        dG += np.bincount(flat_inner, weights=dg.sum(axis=2).ravel(), minlength=n * n).reshape(n, n)
    dW = W @ (dG + dG.T)
    return total, dW, db


def minimise_expected_loss(
    W0: np.ndarray,
    b0: np.ndarray,
    importance: ArrayLike,
    density: ArrayLike,
    model: str = "relu_output",
    *,
    panels: Mapping[int, int] | None = None,
    maxiter: int = 2000,
    gtol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Minimise :func:`expected_loss` over (W, b) from (W0, b0) with L-BFGS-B; returns the
    optimised ``(W, b, loss)``. A local minimiser: start it from each candidate geometry and
    compare the minima, as the paper's "fit several times, keep the lowest loss" does."""
    W0 = np.asarray(W0, dtype=np.float64)
    b0 = np.asarray(b0, dtype=np.float64)
    m, n = W0.shape

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        val, dW, db = expected_loss(theta[: m * n].reshape(m, n), theta[m * n :], importance, density,
                                    model, panels)
        return val, np.concatenate([dW.ravel(), db])

    res = optimize.minimize(fun, np.concatenate([W0.ravel(), b0]), jac=True, method="L-BFGS-B",
                            options={"maxiter": maxiter, "gtol": gtol, "ftol": 1e-15})
    theta = res.x
    return theta[: m * n].reshape(m, n).copy(), theta[m * n :].copy(), float(res.fun)


# ----------------------------------------------------------------------------------------------
# 4. Starting geometries and optimised candidates
# ----------------------------------------------------------------------------------------------


def regular_polygon(k: int, n: int, radius: float = 1.0, features: Sequence[int] | None = None,
                    phase: float = 0.0) -> np.ndarray:
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


def digon_square(n: int, pairs: Sequence[tuple[int, int]], radius: float = 1.0,
                 phase: float = 0.0) -> np.ndarray:
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
    res = optimize.minimize(fun, np.concatenate([np.ones(n), b]), jac=True, method="L-BFGS-B",
                            bounds=bounds, options={"maxiter": 1000, "gtol": 1e-12, "ftol": 1e-15})
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


def _candidates(n: int) -> tuple[tuple[str, ...], Callable[[float], dict[str, tuple[np.ndarray, np.ndarray]]],
                                 Callable[[ArrayLike, ArrayLike], np.ndarray]]:
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
