"""The paper's phase-change candidates in closed form (section "phase"): per-sample expected
losses of the n=2, m=1 and n=3, m=2 candidates, their concrete weights, the optimal-label maps and
the exact phase boundaries.

Conventions follow CLAIMS.md: ``density`` is the probability a feature is non-zero, values are
U[0, 1], loss is sum_i I_i (x_i - x'_i)^2 per sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "N2_CANDIDATES",
    "N3_CANDIDATES",
    "TRIPLE_POINT",
    "ArrayLike",
    "boundary_n2",
    "boundary_n3",
    "candidate_params_n2",
    "candidate_params_n3",
    "closed_form_losses_n2",
    "closed_form_losses_n3",
    "phase_map_n2",
    "phase_map_n3",
]

ArrayLike = np.ndarray | float | Sequence[float]


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
