"""Geometry of feature embeddings: angles, antipodal pairs, polygon labels, ideal polytopes.

Pure numpy on ``W`` of shape ``(..., m, n)`` (column i = feature i's direction), as in
:mod:`toymodel.analysis.metrics`. Labels are invariant under rotations and reflections of the hidden space
and under permutations of the features, since trained models are only determined up to those.

A feature is *represented* when ||W_i|| > ``threshold`` (default 0.5, see
:func:`toymodel.analysis.metrics.represented`). Variable-length answers (pairs) are returned per instance as
a *partner* array of shape (..., n): ``partner[i] = j`` when i is paired with j, else -1;
:func:`pairs_of` turns one instance's partner row into a list of pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .metrics import ZERO_NORM, as_weights, cosines, feature_norms

__all__ = [
    "POLYTOPES",
    "Shape2D",
    "angles_2d",
    "angular_gaps",
    "antipodal_pairs",
    "antipodal_partners",
    "classify_2d",
    "describe_2d",
    "ideal_polytope",
    "is_octahedron",
    "neighbours_in_angular_order",
    "octahedron_pairs",
    "pairs_of",
    "regular_polygon_error",
]


def _weights_m(W: ArrayLike, m: int, what: str) -> np.ndarray:
    w = as_weights(W)
    if w.shape[-2] != m:
        raise ValueError(f"W must have m = {m} hidden dimensions for {what}; got shape {w.shape}")
    return w


def _mask(w: np.ndarray, represented_mask: ArrayLike | None, threshold: float) -> np.ndarray:
    """The represented mask (..., n): given, or ||W_i|| > threshold; never true for a zero column."""
    norms = feature_norms(w)
    if represented_mask is None:
        if not threshold >= 0:
            raise ValueError(f"threshold must be >= 0; got {threshold}")
        return norms > threshold
    mask = np.asarray(represented_mask)
    if mask.dtype != np.bool_ or mask.shape != w.shape[:-2] + w.shape[-1:]:
        raise ValueError(
            f"represented_mask must be a boolean array of shape {w.shape[:-2] + w.shape[-1:]}; "
            f"got {mask.dtype} {mask.shape}"
        )
    return mask & (norms >= ZERO_NORM)


# ----- angles in 2-D -----------------------------------------------------------------------------


def angles_2d(W: ArrayLike) -> np.ndarray:
    """Direction of each feature in degrees, [0, 360), shape (..., n); NaN for a zero column (m=2)."""
    w = _weights_m(W, 2, "angles_2d")
    ang = np.degrees(np.arctan2(w[..., 1, :], w[..., 0, :])) % 360.0
    return np.where(feature_norms(w) >= ZERO_NORM, ang, np.nan)


def _gaps_one(angles: np.ndarray) -> np.ndarray:
    """Circular gaps (deg) between consecutive sorted angles, in angular order."""
    a = np.sort(angles)
    if a.size == 0:
        return a
    return np.diff(np.append(a, a[0] + 360.0))


def angular_gaps(
    W: ArrayLike, represented_mask: ArrayLike | None = None, threshold: float = 0.5
) -> np.ndarray:
    """Gaps (deg) between angularly adjacent represented features, shape (..., n).

    With k represented features an instance has k gaps summing to 360, sorted ascending (so the
    answer does not depend on rotation or feature order) and padded with NaN to length n.
    k = 1 gives one gap of 360; k = 0 gives all NaN.
    """
    w = _weights_m(W, 2, "angular_gaps")
    mask = _mask(w, represented_mask, threshold)
    ang = angles_2d(w)
    n = w.shape[-1]
    flat_a, flat_m = ang.reshape(-1, n), mask.reshape(-1, n)
    out = np.full(flat_a.shape, np.nan)
    for k in range(flat_a.shape[0]):
        g = np.sort(_gaps_one(flat_a[k][flat_m[k]]))
        out[k, : g.size] = g
    return out.reshape(ang.shape)


def regular_polygon_error(
    W: ArrayLike, represented_mask: ArrayLike | None = None, threshold: float = 0.5
) -> np.ndarray:
    """max_k |gap_k - 360/k| (deg) over the k represented features, shape (...); NaN for k < 2.

    0 for a regular k-gon (the pentagon claim asks for 72 +- 5 deg, i.e. an error <= 5)."""
    gaps = angular_gaps(W, represented_mask, threshold)
    k = np.sum(~np.isnan(gaps), axis=-1)
    ideal = 360.0 / np.maximum(k, 1)
    dev = np.where(np.isnan(gaps), 0.0, np.abs(gaps - ideal[..., None]))
    return np.where(k >= 2, np.max(dev, axis=-1), np.nan)


def neighbours_in_angular_order(
    W: ArrayLike, a: int, b: int, represented_mask: ArrayLike | None = None, threshold: float = 0.5
) -> np.ndarray:
    """Boolean (...): are features a and b adjacent in the circular angular order of the represented
    features (no represented feature strictly between them on one side)? False if either is not
    represented. Used by "correlated features sit side by side"."""
    w = _weights_m(W, 2, "neighbours_in_angular_order")
    n = w.shape[-1]
    for name, idx in (("a", a), ("b", b)):
        if not 0 <= int(idx) < n:
            raise ValueError(f"{name} = {idx} is not a feature index in [0, {n})")
    if a == b:
        raise ValueError(f"a and b must be different features; got {a} twice")
    mask = _mask(w, represented_mask, threshold)
    ang = angles_2d(w)
    flat_a, flat_m = ang.reshape(-1, n), mask.reshape(-1, n)
    out = np.zeros(flat_a.shape[0], dtype=bool)
    for k in range(flat_a.shape[0]):
        if not (flat_m[k, a] and flat_m[k, b]):
            continue
        # Sweep counter-clockwise from a to b and from b to a; adjacent if either arc is empty.
        d_ab = (flat_a[k] - flat_a[k, a]) % 360.0
        arc = d_ab[b]
        others = flat_m[k].copy()
        others[[a, b]] = False
        d = d_ab[others]
        out[k] = not np.any((d > 0) & (d < arc)) or not np.any(d > arc)
    return out.reshape(ang.shape[:-1])


# ----- antipodal pairs ---------------------------------------------------------------------------


def antipodal_partners(W: ArrayLike, cos_max: float = -0.9, threshold: float = 0.5) -> np.ndarray:
    """Partner array (..., n): disjoint antipodal pairs among represented features.

    Candidate pairs are those with cos < ``cos_max`` (-0.9, about 154 deg); they are taken greedily
    from the most negative cosine, each feature at most once. Any m.
    """
    w = as_weights(W)
    if not -1.0 <= cos_max <= 1.0:
        raise ValueError(f"cos_max must lie in [-1, 1]; got {cos_max}")
    n = w.shape[-1]
    cos = cosines(w).reshape(-1, n, n)
    mask = _mask(w, None, threshold).reshape(-1, n)
    out = np.full((cos.shape[0], n), -1, dtype=np.int64)
    iu, ju = np.triu_indices(n, 1)
    for k in range(cos.shape[0]):
        c = cos[k, iu, ju]
        ok = (c < cos_max) & mask[k, iu] & mask[k, ju]
        for t in np.flatnonzero(ok)[np.argsort(c[ok], kind="stable")]:
            i, j = iu[t], ju[t]
            if out[k, i] < 0 and out[k, j] < 0:
                out[k, i], out[k, j] = j, i
    return out.reshape((*w.shape[:-2], n))


def pairs_of(partner: ArrayLike) -> list[tuple[int, int]]:
    """The pairs (i, j), i < j, of one instance's partner row (n,), in order of i."""
    p = np.asarray(partner)
    if p.ndim != 1:
        raise ValueError(f"partner must be one instance's row of shape (n,); got shape {p.shape}")
    return [(i, int(j)) for i, j in enumerate(p) if j > i]


def antipodal_pairs(W: ArrayLike, cos_max: float = -0.9, threshold: float = 0.5) -> list[tuple[int, int]]:
    """Antipodal pairs of one instance (W of shape (m, n)); see :func:`antipodal_partners`."""
    w = as_weights(W)
    if w.ndim != 2:
        raise ValueError(
            f"antipodal_pairs takes one instance, W of shape (m, n); got shape {w.shape} "
            f"(use antipodal_partners for batches)"
        )
    return pairs_of(antipodal_partners(w, cos_max, threshold))


# ----- 2-D labels ---------------------------------------------------------------------------------

_NAMES = {3: "triangle", 4: "square", 5: "pentagon", 6: "hexagon"}


@dataclass(frozen=True)
class Shape2D:
    """One 2-D instance's geometry.

    label: "empty" (nothing represented), "single", "digon" (2 antipodal), "orthogonal_pair",
        "triangle", "square" (two orthogonal digons), "pentagon", "hexagon", "{k}-gon" (regular,
        k >= 7), "two_digons" (4 features in two antipodal pairs, not orthogonal) or "other".
    represented / off: feature indices with ||W_i|| above / not above the threshold.
    pairs: antipodal pairs among the represented features (cos < cos(180 - 2 * gap_tol)).
    gap_error: :func:`regular_polygon_error` (deg; NaN for fewer than 2 represented).
    """

    label: str
    represented: tuple[int, ...]
    off: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]
    gap_error: float


def _check_tol(gap_tol_deg: float) -> None:
    if not 0 < gap_tol_deg < 30:
        raise ValueError(f"gap_tol_deg must lie in (0, 30) so that labels cannot overlap; got {gap_tol_deg}")


def describe_2d(W: ArrayLike, norm_threshold: float = 0.5, gap_tol_deg: float = 15.0) -> Shape2D:
    """Label one instance (W of shape (2, n)); see :func:`classify_2d` for the rules."""
    w = _weights_m(W, 2, "describe_2d")
    if w.ndim != 2:
        raise ValueError(
            f"describe_2d takes one instance, W of shape (2, n); got shape {w.shape} "
            f"(use classify_2d for batches)"
        )
    _check_tol(gap_tol_deg)
    mask = _mask(w, None, norm_threshold)
    rep = tuple(int(i) for i in np.flatnonzero(mask))
    off = tuple(int(i) for i in np.flatnonzero(~mask))
    err = float(regular_polygon_error(w, mask))
    pairs = tuple(
        pairs_of(antipodal_partners(w, math.cos(math.radians(180 - 2 * gap_tol_deg)), norm_threshold))
    )
    k = len(rep)
    regular = k >= 2 and err <= gap_tol_deg
    if k == 0:
        label = "empty"
    elif k == 1:
        label = "single"
    elif k == 2:
        gap = float(angular_gaps(w, mask)[0])  # the smaller of the two gaps
        label = "digon" if regular else "orthogonal_pair" if abs(gap - 90.0) <= gap_tol_deg else "other"
    elif regular:
        label = _NAMES.get(k, f"{k}-gon")
    elif k == 4 and len(pairs) == 2:
        label = "two_digons"
    else:
        label = "other"
    return Shape2D(label=label, represented=rep, off=off, pairs=pairs, gap_error=err)


def classify_2d(W: ArrayLike, norm_threshold: float = 0.5, gap_tol_deg: float = 15.0) -> np.ndarray:
    """Geometry label per instance, a str array of shape W.shape[:-2] (0-d for one instance).

    k features with ||W_i|| > ``norm_threshold`` count; the label is the regular polygon they
    form when every angular gap is within ``gap_tol_deg`` of 360/k (default 15 deg: labels name
    the nearest polytope, including the paper's "continuously deformed" pentagons; claims that
    need the paper's 72 +- 5 deg check :func:`regular_polygon_error` themselves). With k = 2:
    "digon" (gaps 180 +- tol) or "orthogonal_pair" (90 +- tol). A regular 4-gon is the paper's
    square = two orthogonal digons. Otherwise "two_digons", "other", "single" or "empty"; see
    :class:`Shape2D`, whose ``off`` says which features were dropped.
    """
    w = _weights_m(W, 2, "classify_2d")
    _check_tol(gap_tol_deg)
    flat = w.reshape(-1, 2, w.shape[-1])
    labels = [describe_2d(x, norm_threshold, gap_tol_deg).label for x in flat]
    return np.array(labels, dtype=str).reshape(w.shape[:-2])


# ----- 3-D: octahedron ---------------------------------------------------------------------------


def octahedron_pairs(
    W: ArrayLike, cos_max: float = -0.9, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Antipodal partners (..., n) and, per instance, the max |cos| between the pairs' axes (...).

    The axis of pair (i, j) is W_i - W_j. The second output is NaN unless there are exactly three
    pairs (an octahedron: three antipodal pairs with mutually orthogonal axes gives 0). m = 3.
    """
    w = _weights_m(W, 3, "octahedron_pairs")
    partners = antipodal_partners(w, cos_max, threshold)
    n = w.shape[-1]
    flat_w, flat_p = w.reshape(-1, 3, n), partners.reshape(-1, n)
    out = np.full(flat_w.shape[0], np.nan)
    for k in range(flat_w.shape[0]):
        pairs = pairs_of(flat_p[k])
        if len(pairs) != 3:
            continue
        axes = np.stack([flat_w[k][:, i] - flat_w[k][:, j] for i, j in pairs], axis=1)
        c = cosines(axes)
        out[k] = np.max(np.abs(c[np.triu_indices(3, 1)]))
    return partners, out.reshape(w.shape[:-2])


def is_octahedron(
    W: ArrayLike, cos_max: float = -0.95, axis_cos_max: float = 0.1, threshold: float = 0.5
) -> np.ndarray:
    """Boolean (...): three antipodal pairs (cos < -0.95) with axes |cos| < 0.1 (CLAIMS.md dynamics)."""
    _, axis_cos = octahedron_pairs(W, cos_max, threshold)
    return np.where(np.isnan(axis_cos), False, axis_cos < axis_cos_max)


# ----- ideal polytopes ---------------------------------------------------------------------------


def _polygon(k: int) -> np.ndarray:
    t = 2 * np.pi * np.arange(k) / k
    return np.stack([np.cos(t), np.sin(t)])


def _bipyramid(k: int) -> np.ndarray:
    ring = np.vstack([_polygon(k), np.zeros(k)])
    poles = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, -1.0]])
    return np.hstack([ring, poles])


def _square_antiprism() -> np.ndarray:
    # Two squares at heights +-h, rotated 45 deg against each other, radius r, r^2 + h^2 = 1. The
    # frame operator is diag(4r^2, 4r^2, 8h^2); it is tight (= 8/3 I, so every D = 3/8) iff
    # r^2 = 2 h^2, i.e. h = 1/sqrt(3), r = sqrt(2/3).
    h, r = 1.0 / np.sqrt(3.0), np.sqrt(2.0 / 3.0)
    t = 2 * np.pi * np.arange(4) / 4
    top = np.stack([r * np.cos(t), r * np.sin(t), np.full(4, h)])
    bottom = np.stack([r * np.cos(t + np.pi / 4), r * np.sin(t + np.pi / 4), np.full(4, -h)])
    return np.hstack([top, bottom])


POLYTOPES: tuple[str, ...] = (
    "digon",
    "triangle",
    "square",
    "pentagon",
    "hexagon",
    "tetrahedron",
    "octahedron",
    "square_antiprism",
    "triangular_bipyramid",
    "pentagonal_bipyramid",
)


def ideal_polytope(name: str) -> np.ndarray:
    """Unit-norm vertices (m, N) of a named polytope in its ambient dimension m.

    digon (m=1), triangle / square / pentagon / hexagon (m=2, regular, counter-clockwise from
    (1, 0)), tetrahedron, octahedron (pairs +-e_1, +-e_2, +-e_3 as columns 2k, 2k+1),
    square_antiprism (tight frame: D = 3/8 each), triangular_bipyramid (triangle in the xy plane,
    then the poles +-e_3: D = 2/3 x 3, 1/2 x 2), pentagonal_bipyramid (2/5 x 5, 1/2 x 2); all m=3.
    """
    if name == "digon":
        v = np.array([[1.0, -1.0]])
    elif name in ("triangle", "square", "pentagon", "hexagon"):
        v = _polygon({"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[name])
    elif name == "tetrahedron":
        v = np.array([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]) / np.sqrt(3.0)
    elif name == "octahedron":
        v = np.kron(np.eye(3), np.array([[1.0, -1.0]]))
    elif name == "square_antiprism":
        v = _square_antiprism()
    elif name == "triangular_bipyramid":
        v = _bipyramid(3)
    elif name == "pentagonal_bipyramid":
        v = _bipyramid(5)
    else:
        raise ValueError(f"name must be one of {POLYTOPES}; got {name!r}")
    return v
