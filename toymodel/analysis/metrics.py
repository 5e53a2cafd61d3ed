"""Metrics of trained weights: pure numpy functions of W, no training, no I/O.

Every function takes ``W`` of shape ``(..., m, n)`` with optional leading batch axes (e.g. the
instances of a result): column ``W[..., :, i]`` is feature i's direction in the hidden space, row
``W[..., j, :]`` is hidden dimension (neuron) j's input weights. Definitions follow the paper
(CLAIMS.md, "Conventions"):

- superposition of i: ``sum_{j != i} (Ŵ_i · W_j)^2``;
- feature dimensionality: ``D_i = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2`` (the sum includes j = i);
- dimensions per feature: ``D* = m / ||W||_F^2``.

A feature whose norm is below :data:`ZERO_NORM` is treated as absent: its unit direction is the
zero vector, so its cosines, superposition and dimensionality are 0 (never NaN, never a warning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "ZERO_NORM",
    "Peaks",
    "collapsed_pairs",
    "cosines",
    "dead_neurons",
    "dims_per_feature",
    "dominant_feature",
    "feature_dimensionality",
    "feature_norms",
    "frobenius_sq",
    "gram",
    "histogram_peaks",
    "interference",
    "monosemantic_neurons",
    "neurons_per_feature",
    "represented",
    "superposition",
    "unit_columns",
]

#: Column norms below this count as exactly zero (a feature that is not represented at all).
ZERO_NORM = 1e-8


def as_weights(W: ArrayLike, name: str = "W") -> np.ndarray:
    """``W`` as a float64 array of shape (..., m, n); ValueError naming ``name`` otherwise."""
    try:
        arr = np.asarray(W, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array of shape (..., m, n): {exc}") from None
    if arr.ndim < 2 or arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise ValueError(f"{name} must have shape (..., m, n) with m, n >= 1; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds non-finite values")
    return arr


def _offdiag(a: np.ndarray) -> np.ndarray:
    """A copy of the (..., n, n) array with its diagonal set to 0."""
    out = a.copy()
    idx = np.arange(a.shape[-1])
    out[..., idx, idx] = 0.0
    return out


def gram(W: ArrayLike) -> np.ndarray:
    """WᵀW, shape (..., n, n): entry (i, j) is W_i · W_j, how strongly feature j reads into i."""
    w = as_weights(W)
    return np.swapaxes(w, -1, -2) @ w


def feature_norms(W: ArrayLike) -> np.ndarray:
    """||W_i||, shape (..., n): how strongly each feature is represented."""
    return np.linalg.norm(as_weights(W), axis=-2)


def frobenius_sq(W: ArrayLike) -> np.ndarray:
    """||W||_F^2, shape (...): roughly the number of features represented (sum of ||W_i||^2)."""
    w = as_weights(W)
    return np.sum(w * w, axis=(-2, -1))


def dims_per_feature(W: ArrayLike) -> np.ndarray:
    """D* = m / ||W||_F^2, shape (...): hidden dimensions per embedded feature (inf for W = 0)."""
    w = as_weights(W)
    f = np.sum(w * w, axis=(-2, -1))
    safe = np.where(f > 0, f, 1.0)
    return np.where(f > 0, w.shape[-2] / safe, np.inf)


def unit_columns(W: ArrayLike) -> np.ndarray:
    """Ŵ: each column scaled to unit norm; columns with norm < ZERO_NORM become 0."""
    w = as_weights(W)
    norms = np.linalg.norm(w, axis=-2, keepdims=True)
    ok = norms >= ZERO_NORM
    return np.where(ok, w / np.where(ok, norms, 1.0), 0.0)


def cosines(W: ArrayLike) -> np.ndarray:
    """Ŵ_i · Ŵ_j, shape (..., n, n), clipped to [-1, 1]; 0 in every row and column of an absent
    feature (including its diagonal), 1 on the diagonal otherwise."""
    u = unit_columns(W)
    return np.clip(np.swapaxes(u, -1, -2) @ u, -1.0, 1.0)


def _projections_sq(W: ArrayLike) -> np.ndarray:
    """(Ŵ_i · W_j)^2 as (..., i, j)."""
    w = as_weights(W)
    u = unit_columns(w)
    p = np.swapaxes(u, -1, -2) @ w
    return p * p


def superposition(W: ArrayLike) -> np.ndarray:
    """sum_{j != i} (Ŵ_i · W_j)^2, shape (..., n): 0 when feature i is orthogonal to all others
    (or absent); >= 1 when other features can drive i's direction as strongly as i itself."""
    return np.sum(_offdiag(_projections_sq(W)), axis=-1)


def feature_dimensionality(W: ArrayLike) -> np.ndarray:
    """D_i = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2, shape (..., n): the fraction of a dimension feature i
    owns (1 alone, 1/2 in an antipodal pair, m/N in a tight N-vertex frame, 0 when absent)."""
    w = as_weights(W)
    norms_sq = np.sum(w * w, axis=-2)
    denom = np.sum(_projections_sq(w), axis=-1)  # >= ||W_i||^2 (the j = i term)
    ok = norms_sq >= ZERO_NORM**2
    return np.where(ok, norms_sq / np.where(ok, denom, 1.0), 0.0)


def represented(W: ArrayLike, threshold: float = 0.5) -> np.ndarray:
    """Boolean (..., n): ||W_i|| > threshold. 0.5 separates learned features (norm near 1) from
    ignored ones (near 0) in every setting of CLAIMS.md."""
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0; got {threshold}")
    return feature_norms(W) > threshold


def interference(W: ArrayLike) -> np.ndarray:
    """WᵀW with its diagonal set to 0, shape (..., n, n): how much feature j leaks into i's output."""
    return _offdiag(gram(W))


# ----- neuron-basis metrics (privileged basis, absolute value) ---------------------------------


def _check_fraction(name: str, value: float, *, closed_low: bool = False) -> float:
    x = float(value)
    if not (0.0 <= x <= 1.0) or (not closed_low and x == 0.0):
        raise ValueError(f"{name} must lie in {'[0' if closed_low else '(0'}, 1]; got {value}")
    return x


def dead_neurons(W: ArrayLike, min_norm: float = 0.1) -> np.ndarray:
    """Boolean (..., m): neuron j (row j of W) is dead if its row norm is below ``min_norm`` times
    the largest row norm of its instance (or below ZERO_NORM).

    Relative, so it means the same for tied and untied models whatever their weight scale: a
    row at under 10 % of the strongest neuron carries no feature worth counting.
    """
    w = as_weights(W)
    _check_fraction("min_norm", min_norm, closed_low=True)
    rows = np.linalg.norm(w, axis=-1)
    top = np.max(rows, axis=-1, keepdims=True)
    return (rows < min_norm * top) | (rows < ZERO_NORM)


def dominant_feature(W: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron (row j): the feature with the largest |W_ji| and that signed weight, both (..., m).

    The sign tells a ReLU(x) neuron (positive) from a ReLU(-x) neuron (negative) in the
    absolute-value model."""
    w = as_weights(W)
    idx = np.argmax(np.abs(w), axis=-1)
    return idx, np.take_along_axis(w, idx[..., None], axis=-1)[..., 0]


def monosemantic_neurons(W: ArrayLike, frac: float = 0.9, min_norm: float = 0.1) -> np.ndarray:
    """Boolean (..., m): neuron j is monosemantic if its largest |W_ji| >= ``frac`` x its row norm
    (CLAIMS.md privileged basis: 90 %), i.e. it reads essentially one feature.

    Dead neurons (see :func:`dead_neurons`, same ``min_norm``) are excluded: they are never
    counted as monosemantic, so ``monosemantic_neurons(W).sum(-1)`` counts live, clean neurons.
    Use :func:`dead_neurons` to report the dead ones separately.
    """
    w = as_weights(W)
    _check_fraction("frac", frac)
    rows = np.linalg.norm(w, axis=-1)
    top = np.max(np.abs(w), axis=-1)
    return (top >= frac * rows) & ~dead_neurons(w, min_norm)


def neurons_per_feature(
    W: ArrayLike, rel: float = 0.5, min_norm: float = 0.5, sign: str = "abs"
) -> np.ndarray:
    """Integer (..., n): how many neurons carry feature i.

    Neuron j carries i if its weight W_ji is at least ``rel`` (default 1/2) times feature i's
    strongest neuron weight, so "a feature spread evenly over two neurons" counts 2 and a small
    leak counts 0. ``sign="abs"`` compares |W_ji|; ``sign="positive"`` counts only excitatory
    weights (a negative weight never turns a ReLU neuron on for non-negative inputs). Features
    with ||W_i|| < ``min_norm`` (not represented, as in :func:`represented`) count 0.
    """
    w = as_weights(W)
    _check_fraction("rel", rel)
    if sign not in ("abs", "positive"):
        raise ValueError(f"sign must be 'abs' or 'positive'; got {sign!r}")
    vals = np.abs(w) if sign == "abs" else np.maximum(w, 0.0)
    top = np.max(vals, axis=-2, keepdims=True)
    carried = (vals >= rel * top) & (top > ZERO_NORM)
    counts = np.sum(carried, axis=-2)
    return np.where(np.linalg.norm(w, axis=-2) >= min_norm, counts, 0)


# ----- correlated features ---------------------------------------------------------------------


def collapsed_pairs(
    W: ArrayLike, pairs: ArrayLike, cos_min: float = 0.9, norm_tol: float = 0.2
) -> np.ndarray:
    """Boolean (..., P): did correlated pair p = (a, b) collapse onto its principal component?

    Collapsed means both members point the same way (cos(W_a, W_b) >= ``cos_min``; 0.9 is about
    26 deg, far from the 60 deg of side-by-side hexagon neighbours) and both norms lie within
    ``norm_tol`` of 1/sqrt(2) (W_a = W_b = u/sqrt(2) reconstructs (x_a + x_b)/2 for both). A pair
    with either member absent has cos 0 and is not collapsed; two unit-norm copies are not either.
    """
    w = as_weights(W)
    p = np.asarray(pairs)
    if p.ndim != 2 or p.shape[-1] != 2 or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"pairs must be an integer array of shape (P, 2); got {p.dtype} {p.shape}")
    n = w.shape[-1]
    if p.size and (p.min() < 0 or p.max() >= n):
        raise ValueError(f"pairs index features outside [0, {n})")
    if not -1.0 <= cos_min <= 1.0:
        raise ValueError(f"cos_min must lie in [-1, 1]; got {cos_min}")
    if not norm_tol >= 0:
        raise ValueError(f"norm_tol must be >= 0; got {norm_tol}")
    cos = cosines(w)[..., p[:, 0], p[:, 1]]
    norms = feature_norms(w)
    target = 1.0 / np.sqrt(2.0)
    near = (np.abs(norms[..., p[:, 0]] - target) <= norm_tol) & (
        np.abs(norms[..., p[:, 1]] - target) <= norm_tol
    )
    return (cos >= cos_min) & near


# ----- histogram peaks (feature-dimensionality fractions) --------------------------------------


@dataclass(frozen=True)
class Peaks:
    """Counts of values near each centre c and near its flanks c -/+ flank_offset (all (C,)).

    ``is_peak[k]``: centre k holds at least ``min_count`` values and at least ``ratio`` times as
    many as the fuller of its two flanks.
    """

    centres: np.ndarray
    at_centre: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_peak: np.ndarray

    def table(self) -> str:
        """One line per centre, for failure messages and reports."""
        return "\n".join(
            f"c={c:.4f}: {a} at centre, {lo} left, {r} right{' PEAK' if p else ''}"
            for c, a, lo, r, p in zip(
                self.centres, self.at_centre, self.left, self.right, self.is_peak, strict=True
            )
        )


def histogram_peaks(
    values: ArrayLike,
    centres: ArrayLike,
    half_width: float = 0.005,
    flank_offset: float = 0.0125,
    ratio: float = 2.0,
    min_count: int = 3,
) -> Peaks:
    """Is each centre c a peak of the distribution of ``values`` (any shape, flattened)?

    Counts values with |v - c| <= half_width and the same for the flanks c -/+ flank_offset
    (CLAIMS.md: feature dimensionalities cluster at 3/4, 2/3, 1/2, 2/5, 3/8: "clearly more features
    within +-0.005 than the points 0.0125 to either side"). A peak needs ``ratio`` (2x) the fuller
    flank and at least ``min_count`` values, so a lone value is not a peak.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    c = np.asarray(centres, dtype=np.float64).reshape(-1)
    if not (half_width > 0 and flank_offset > 0):
        raise ValueError(f"half_width and flank_offset must be > 0; got {half_width}, {flank_offset}")
    if flank_offset < 2 * half_width:
        raise ValueError(
            f"flank_offset ({flank_offset}) must be >= 2 * half_width ({half_width}) so the "
            f"flank windows do not overlap the centre window"
        )
    if not ratio >= 1:
        raise ValueError(f"ratio must be >= 1; got {ratio}")
    v = v[np.isfinite(v)]

    def count(at: np.ndarray) -> np.ndarray:
        return np.sum(np.abs(v[None, :] - at[:, None]) <= half_width, axis=1)

    at_c, left, right = count(c), count(c - flank_offset), count(c + flank_offset)
    peak = (at_c >= min_count) & (at_c >= ratio * np.maximum(left, right))
    return Peaks(centres=c, at_centre=at_c, left=left, right=right, is_peak=peak)
