"""Trained phase maps: label each (r, s) cell from the selected model's weights and compare the
labels with a theoretical map. Pure numpy (no torch, no training, no I/O).

Labels of the extra feature (the last one), as in the paper's phase diagrams, with the indices
of :data:`toymodel.theory.N2_CANDIDATES` so an n=2 trained map compares directly with
:func:`toymodel.theory.phase_map_n2`:

- 0 ``not_represented``: ``||W_extra|| <= norm_min``;
- 1 ``dedicated``: represented, ``superposition(extra) < sup_min`` (it owns its direction);
- 2 ``superposition``: represented and sharing its direction *antipodally* with another
  represented feature (cosine < ``-cos_min``): the paper's superposition phase;
- 3 ``other``: represented and sharing its direction with positive cosine: the continuous
  "confused feature" solution (both features on one direction, norms ≈ 1/√2) that none of the
  paper's candidates describes; it never agrees with the theory.

For n=3, m=2 the whole configuration is labelled by :func:`configuration_n3` with the indices
of :data:`toymodel.theory.N3_CANDIDATES`, plus 4 ``triangle`` (all three represented, no
antipodal pair: the candidate the paper excluded) and 5 ``other``.
"""

from __future__ import annotations

import numpy as np

from ..result import Result
from ..theory import expected_loss
from .metrics import cosines, feature_norms, superposition

__all__ = [
    "EXTRA_LABELS",
    "N3_LABELS",
    "agreement",
    "away_from_boundary",
    "best_by_expected_loss",
    "configuration_n3",
    "expected_losses",
    "extra_feature_labels",
    "extra_label_of_n3",
    "loglog_slopes",
]

EXTRA_LABELS: tuple[str, ...] = ("not_represented", "dedicated", "superposition", "other")
N3_LABELS: tuple[str, ...] = ("perp_001", "perp_100", "perp_110", "perp_011", "triangle", "other")

#: ||W_i|| above this: feature i is represented (trained norms are ~0 or ~1; the confused
#: solution's ~0.7 counts as represented)
NORM_MIN = 0.5
#: superposition above this: the feature shares its direction (dedicated: ~0; antipodal: ~1)
SUP_MIN = 0.25
#: |cos| above this: two represented features lie on one line (antipodal when negative)
COS_MIN = 0.9


def extra_feature_labels(
    W: np.ndarray, *, norm_min: float = NORM_MIN, sup_min: float = SUP_MIN, cos_min: float = COS_MIN
) -> np.ndarray:
    """Label (see module doc) of the last feature of each model; ``W`` is (..., m, n), returns (...)
    int. Only represented features count as partners, so a weak leftover column is ignored."""
    W = np.asarray(W, dtype=np.float64)
    norms = feature_norms(W)
    rep = norms > norm_min
    sup = superposition(np.where(rep[..., None, :], W, 0.0))[..., -1]
    cos = cosines(W)[..., -1, :-1]
    partner = rep[..., :-1]
    antipodal = np.any(partner & (cos < -cos_min), axis=-1)
    label = np.where(sup < sup_min, 1, np.where(antipodal, 2, 3))
    return np.where(rep[..., -1], label, 0)


def configuration_n3(
    W: np.ndarray, *, norm_min: float = NORM_MIN, cos_min: float = COS_MIN, orth_max: float = 0.3
) -> np.ndarray:
    """Candidate index (:data:`N3_LABELS`) of each n=3, m=2 model, ``W`` (..., 2, 3) -> (...) int.
    Features 0 and 1 are interchangeable (both importance 1), so perp_100 is "one unit feature
    ignored, the other and the extra orthogonal" and perp_011 "the extra antipodal to either unit
    feature, the other orthogonal to both". ``orth_max``: largest |cos| counted as orthogonal."""
    W = np.asarray(W, dtype=np.float64)
    rep = feature_norms(W) > norm_min
    cos = cosines(W)
    c01, c02, c12 = cos[..., 0, 1], cos[..., 0, 2], cos[..., 1, 2]
    orth = lambda c: np.abs(c) < orth_max  # noqa: E731
    anti = lambda c: c < -cos_min  # noqa: E731
    r0, r1, r2 = rep[..., 0], rep[..., 1], rep[..., 2]
    all3 = r0 & r1 & r2
    out = np.full(W.shape[:-2], 5)
    out = np.where(r0 & r1 & ~r2 & orth(c01), 0, out)
    out = np.where(((r1 & ~r0 & orth(c12)) | (r0 & ~r1 & orth(c02))) & r2, 1, out)
    out = np.where(all3 & anti(c01) & orth(c02) & orth(c12), 2, out)
    out = np.where(all3 & ((anti(c12) & orth(c01)) | (anti(c02) & orth(c01))), 3, out)
    no_pair = (c01 < -0.2) & (c02 < -0.2) & (c12 < -0.2) & ~anti(c01) & ~anti(c02) & ~anti(c12)
    return np.where(all3 & no_pair, 4, out)


def extra_label_of_n3(config: np.ndarray) -> np.ndarray:
    """The extra-feature label (:data:`EXTRA_LABELS`) implied by an n=3 configuration label:
    perp_001 -> not represented, perp_100/perp_110 -> dedicated, perp_011 -> superposition,
    triangle -> superposition (the extra shares its direction with both), other -> other."""
    table = np.array([0, 1, 1, 2, 2, 3])
    return table[np.asarray(config)]


def away_from_boundary(labels: np.ndarray, cells: int = 2) -> np.ndarray:
    """Boolean mask of the cells of a 2-D label map at least ``cells`` cells from a boundary:
    every cell within Chebyshev distance ``cells - 1`` has the same label (``cells=2``: all eight
    neighbours agree). Cells at the grid's edge only look at the neighbours that exist."""
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be a 2-D map; got shape {lab.shape}")
    k = cells - 1
    # edge padding only repeats labels already inside each cell's window
    pad = np.pad(lab, k, mode="edge")
    rows, cols = lab.shape
    ok = np.ones(lab.shape, dtype=bool)
    for di in range(2 * k + 1):
        for dj in range(2 * k + 1):
            ok &= pad[di : di + rows, dj : dj + cols] == lab
    return ok


def agreement(trained: np.ndarray, theory: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of the (masked) cells where the two label maps agree."""
    t, th = np.asarray(trained), np.asarray(theory)
    if t.shape != th.shape:
        raise ValueError(f"label maps differ in shape: {t.shape} vs {th.shape}")
    sel = np.ones(t.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if not np.any(sel):
        raise ValueError("no cells selected")
    return float(np.mean(t[sel] == th[sel]))


def loglog_slopes(s: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """d log L / d log s between consecutive densities, along the last axis: (..., len(s) - 1).
    A first-order transition shows as a jump of this slope: ~1 where a feature is ignored
    (variance s/3 - s²/4), 2 in the antipodal phase (loss (1+r)s²/6)."""
    ls = np.log(np.asarray(s, dtype=np.float64))
    ll = np.log(np.asarray(loss, dtype=np.float64))
    return np.diff(ll, axis=-1) / np.diff(ls)


def expected_losses(result: Result) -> np.ndarray:
    """Deterministic expected loss (:func:`toymodel.theory.expected_loss`) of every instance of a
    ReLU-output result with independent features: (instances,). ~1.5 ms per n=3 model."""
    spec = result.spec
    if spec.model != "relu_output" or spec.groups or spec.n > 6:
        raise ValueError("expected_losses needs a relu_output spec with independent features and n <= 6")
    imp, den = spec.importance_array(per_instance=True), spec.density_array(per_instance=True)
    return np.array(
        [expected_loss(result.W[i], result.b[i], imp[i], den[i])[0] for i in range(spec.instances)]
    )


def best_by_expected_loss(result: Result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per setting, the restart with the lowest deterministic expected loss: (restart (S,),
    W (S, m, n), expected loss (S,)).

    Why not the held-out sample: at density 0.01 the n=3 configurations differ only on inputs
    with two features active (probability ~1e-4), so a 16k-sample held-out loss sees ~2 such
    inputs and ranks restarts by noise; the exact expectation is the held-out loss of an
    infinite sample (the rule "keep the lowest loss", without its sampling error)."""
    spec = result.spec
    loss = expected_losses(result).reshape(spec.settings, spec.restarts)
    pick = np.argmin(loss, axis=1)
    inst = np.arange(spec.settings) * spec.restarts + pick
    return pick, result.W[inst], loss[np.arange(spec.settings), pick]
