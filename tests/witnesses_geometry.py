"""Witnesses of the geometry section's checks (see ``witness_kit``).

The trained claims read every level and restart of one uniform density sweep (no selection), so
the witnesses change chosen (level, restart) weights of the reference's sweep: other levels'
weights, or norm-preserving moves that leave D* = m/||W||_F^2 as it was.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from witness_kit import Serve, Witness, edit, only

from toymodel.analysis import geometry, metrics
from toymodel.result import Result

M = "test_geometry"
SWEEP = "uniform-superposition-fast"
FAST = {"tier": "fast"}
#: |D* - 1/2| below this: a level on the antipodal plateau (the claims' HALF_TOL)
HALF_TOL = 0.03


def _sweep(change: Callable[[np.ndarray], np.ndarray]) -> Serve:
    """Change the fast sweep's weights, seen as (levels, restarts, m, n)."""

    def apply(result: Result) -> Result:
        W = change(result.by_setting(result.W).copy())
        return edit(result, W=W.reshape(result.W.shape))

    return only(SWEEP, apply)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _pairs(W: np.ndarray) -> list[tuple[int, int]]:
    return geometry.antipodal_pairs(W, cos_max=-0.99)


def _dense_dimension_unused(W: np.ndarray) -> np.ndarray:
    """Restart 0 at density 1 leaves one hidden dimension unused (its top singular direction
    projected out): rank 9 of 10."""
    w = W[0, 0]
    u = np.linalg.svd(w)[0][:, :1]
    W[0, 0] = w - u @ (u.T @ w)
    return W


def _short_plateau(W: np.ndarray) -> np.ndarray:
    """Every restart reaches the sparse geometries early: its longest run of plateau levels cut to
    two, the levels after them holding the weights of the levels past the run (the last one
    repeated)."""
    levels = W.shape[0]
    for r in range(W.shape[1]):
        on = np.abs(metrics.dims_per_feature(W[:, r]) - 0.5) < HALF_TOL
        ends = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int), [0]])))
        starts, stops = ends[::2], ends[1::2]
        longest = int(np.argmax(stops - starts))
        start, length = int(starts[longest]), int(stops[longest] - starts[longest])
        rest = np.arange(start + 2, levels)
        W[rest, r] = W[np.minimum(rest + length - 2, levels - 1), r]
    return W


def _swap_sparse_levels(W: np.ndarray) -> np.ndarray:
    """Levels 13 and 14 (past the plateau, D* about 0.44 and 0.40) stored in each other's place."""
    W[[13, 14]] = W[[14, 13]]
    return W


def _unequal_pairs(W: np.ndarray) -> np.ndarray:
    """In every model, the second feature of each antipodal pair at 0.9 of its partner's norm (D_i
    0.55 / 0.45 instead of 1/2 each)."""
    for w in W.reshape(-1, *W.shape[-2:]):
        for _, j in _pairs(w):
            w[:, j] *= 0.9
    return W


def _copies_of_restart_0(W: np.ndarray) -> np.ndarray:
    """Every restart a copy of restart 0 (restarts not reseeded); restart 0 has no fractional peak."""
    W[:] = W[:, :1]
    return W


def _skip_plateau(W: np.ndarray) -> np.ndarray:
    """In every restart, each plateau level (|D* - 1/2| < 0.03) holds the weights of the first
    sparser level off the plateau: the sweep jumps over the antipodal phase."""
    dstar = metrics.dims_per_feature(W)
    for r in range(W.shape[1]):
        on = np.flatnonzero(np.abs(dstar[:, r] - 0.5) < HALF_TOL)
        after = next(k for k in range(on[-1] + 1, W.shape[0]) if dstar[k, r] < 0.5 - HALF_TOL)
        W[on, r] = W[after, r]
    return W


def _pairs_share_an_axis(W: np.ndarray) -> np.ndarray:
    """At restart 0's first plateau level, two antipodal pairs rotated onto a third pair's axis
    (norms kept, so D* is unchanged): two hidden dimensions left unused."""
    dstar = metrics.dims_per_feature(W[:, 0])
    level = int(np.flatnonzero(np.abs(dstar - 0.5) < HALF_TOL)[0])
    w = W[level, 0]
    (i, _), *others = _pairs(w)
    axis = _unit(w[:, i])
    for a, c in others[:2]:
        w[:, a], w[:, c] = np.linalg.norm(w[:, a]) * axis, -np.linalg.norm(w[:, c]) * axis
    return W


# ----- theory: ideal polytopes -------------------------------------------------------------------


def _polytope_patch(change: Callable[[str, np.ndarray], np.ndarray]) -> Callable[[pytest.MonkeyPatch], None]:
    """Break :func:`toymodel.analysis.geometry.ideal_polytope`: ``change(name, W) -> W``."""
    real = geometry.ideal_polytope

    def patch(mp: pytest.MonkeyPatch) -> None:
        mp.setattr(geometry, "ideal_polytope", lambda name: change(name, real(name)))

    return patch


def _shrink_vertex(name: str, W: np.ndarray) -> np.ndarray:
    W = W.copy()
    W[:, -1] *= 0.9
    return W


def _poles_first(name: str, W: np.ndarray) -> np.ndarray:
    return np.roll(W, 2, axis=1)


def _padded(name: str, W: np.ndarray) -> np.ndarray:
    return np.vstack([W, np.zeros((1, W.shape[1]))])


T = {
    name: f"{M}::test_{name}"
    for name in (
        "dims_per_feature_sticky",
        "dimensionality_fractions",
        "dimensionality_sums_to_m",
        "polytope_dimensionalities",
    )
}

WITNESSES: list[Witness] = [
    Witness(
        T["dims_per_feature_sticky"],
        "dense_one",
        "the dense model leaves one of its 10 hidden dimensions unused (D* 1.11)",
        serve=_sweep(_dense_dimension_unused),
        params=FAST,
    ),
    Witness(
        T["dims_per_feature_sticky"],
        "half_plateau",
        "D* passes through 1/2 without sticking: every restart's plateau lasts two levels",
        serve=_sweep(_short_plateau),
        params=FAST,
    ),
    Witness(
        T["dims_per_feature_sticky"],
        "non_increasing",
        "two sparse levels' results stored in each other's place (the mean D* rises by 0.04)",
        serve=_sweep(_swap_sparse_levels),
        params=FAST,
    ),
    Witness(
        T["dimensionality_fractions"],
        "half_peak",
        "antipodal pairs with unequal norms (0.9 : 1), so no D_i sits at 1/2",
        serve=_sweep(_unequal_pairs),
        params=FAST,
    ),
    Witness(
        T["dimensionality_fractions"],
        "second_peak",
        "restarts not reseeded: eight copies of a sweep without a fractional peak",
        serve=_sweep(_copies_of_restart_0),
        params=FAST,
    ),
    Witness(
        T["dimensionality_sums_to_m"],
        "dims_fill_m",
        "two antipodal pairs stacked on a third pair's axis at a plateau level (two dimensions unused)",
        serve=_sweep(_pairs_share_an_axis),
        params=FAST,
    ),
    Witness(
        T["polytope_dimensionalities"],
        "vertex_dimensionalities",
        "a digon with one vertex at norm 0.9 (D 0.55 / 0.45; still sums to m)",
        patch=_polytope_patch(_shrink_vertex),
        params={"name": "digon"},
    ),
    Witness(
        T["polytope_dimensionalities"],
        "vertex_dimensionalities",
        "the bipyramid's poles listed before its triangle (the expected column order broken)",
        patch=_polytope_patch(_poles_first),
        params={"name": "triangular_bipyramid"},
    ),
    Witness(
        T["polytope_dimensionalities"],
        "vertex_dimensionalities",
        "the bipyramid's poles listed before its pentagon (the expected column order broken)",
        patch=_polytope_patch(_poles_first),
        params={"name": "pentagonal_bipyramid"},
    ),
    Witness(
        T["polytope_dimensionalities"],
        "sum_is_m",
        "the digon embedded in two dimensions, one left unused (D_i still 1/2)",
        patch=_polytope_patch(_padded),
        params={"name": "digon"},
    ),
    Witness(
        T["polytope_dimensionalities"],
        "sum_is_m",
        "the tetrahedron embedded in four dimensions, one left unused (D_i still 3/4)",
        patch=_polytope_patch(_padded),
        params={"name": "tetrahedron"},
    ),
]
