"""The expected loss of given weights: a Monte-Carlo estimate through the canonical sampler and
loss, a deterministic integration with its exact gradient, and its minimiser.

- :func:`mc_loss`: a Monte-Carlo estimate (mean and standard error) of the expected loss of
  given weights, through the canonical sampler and loss (``toymodel.data``, ``toymodel.models``).
- :func:`expected_loss`: a deterministic expected loss, with its exact gradient, of the linear
  and ReLU-output models with independent features (small n): every active subset is
  enumerated with its probability, the values of its last active feature are integrated
  exactly (the integrand is piecewise quadratic in it, with one kink per output), and the
  remaining active values by a fixed composite Gauss-Legendre rule. :func:`minimise_expected_loss`
  minimises it with L-BFGS-B, free of SGD noise, so transitions can be located exactly.

Conventions follow CLAIMS.md: W is (m, n) with column i feature i's direction (a leading instance
axis where stated).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ..data import sample
from ..models import loss as model_loss
from ..spec import FeatureGroup
from .closed_forms import ArrayLike

__all__ = ["expected_loss", "mc_loss", "minimise_expected_loss"]

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
        val, dW, db = expected_loss(
            theta[: m * n].reshape(m, n), theta[m * n :], importance, density, model, panels
        )
        return val, np.concatenate([dW.ravel(), db])

    res = optimize.minimize(
        fun,
        np.concatenate([W0.ravel(), b0]),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": maxiter, "gtol": gtol, "ftol": 1e-15},
    )
    theta = res.x
    return theta[: m * n].reshape(m, n).copy(), theta[m * n :].copy(), float(res.fun)
