"""Section "The geometry of superposition": uniform superposition (I = 1, every feature equally
sparse), dimensions per feature D* = m/||W||_F^2, and feature dimensionalities D_i.

The trained claims share one density sweep per tier (log-spaced 1/(1-S) from 1 to 20 at paper
scale, 1 to 8 in the fast tier, one setting per level; see
:func:`toymodel.experiments.geometry.uniform_sweep`). D* is read per level and restart; the D_i
are pooled over every level and restart, as the paper's scatter plot does.
"""

from __future__ import annotations

import numpy as np
import pytest

from toymodel.analysis import geometry, metrics
from toymodel.experiments import geometry as ex
from toymodel.report import figures
from toymodel.suite.claim import Claim, Trained

pytestmark = pytest.mark.geometry

TIERS = [pytest.param("fast", id="fast"), pytest.param("paper", id="paper", marks=pytest.mark.slow)]

#: the fractions the paper draws as lines on its dimensionality scatter (besides 1/2)
FRACTIONS = {"3/4": 3 / 4, "2/3": 2 / 3, "2/5": 2 / 5, "3/8": 3 / 8}
# |D* - 1/2| < 0.03: the level sits on the antipodal plateau (CLAIMS.md). On the plateau every
# represented feature is in an antipodal pair (D_i = 1/2) but ||W_i||^2 < 1, so D* sits slightly
# above 1/2 (0.51-0.54 measured).
HALF_TOL = 0.03
# Largest rise of the restarts' mean D* above its running minimum over the sweep (never above 0 in
# calibration: see its file); a sweep that does not add features as sparsity grows, or two levels'
# results swapped, rises by several times more.
RISE_MAX = 0.01
#: least mean length (levels) of the restarts' longest run on the 1/2 plateau
PLATEAU_MIN = 3


def _sweep(trained: Trained, tier: ex.Tier) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(1/(1-S) per level, D* as (levels, restarts), D_i as (levels, restarts, n), m)."""
    result = trained(ex.uniform_sweep(tier))
    W = result.by_setting(result.W)
    return (
        ex.inverse_densities(tier),
        metrics.dims_per_feature(W),
        metrics.feature_dimensionality(W),
        result.spec.m,
    )


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """(length, start) of the longest run of True in a 1-D mask; (0, -1) if none."""
    best, start, cur = 0, -1, 0
    for i, v in enumerate(mask):
        cur = cur + 1 if v else 0
        if cur > best:
            best, start = cur, i - cur + 1
    return best, start


@pytest.mark.parametrize("tier", TIERS)
def test_dims_per_feature_sticky(trained: Trained, claim: Claim, tier: ex.Tier) -> None:
    """ "The dimensions per feature ... seems to 'stick' at 1 and 1/2": D* = m/||W||_F^2 stays at 1
    while the model is dense and then sits at 1/2 (antipodal pairs) over a wide range of densities
    (ReLU output, I = 1)."""
    inv, dstar, _, _ = _sweep(trained, tier)
    claim.record("inverse_density", inv)
    claim.record("dims_per_feature", dstar)
    claim.figure(
        "dims_per_feature",
        lambda fig: figures.dims_per_feature(
            fig,
            inv,
            dstar,
            band=HALF_TOL,
            title=f"D* over the uniform sweep ({tier} tier, ReLU output, I = 1), every restart",
        ),
    )
    lengths = []
    for r, curve in enumerate(dstar.T):
        claim.check(
            "dense_one",
            0.95 <= curve[0] <= 1.05,
            what=f"D* at density 1 (restart {r})",
            measured=float(curve[0]),
            bound="[0.95, 1.05]",
            lower=0.95,
            upper=1.05,
        )
        length, start = _longest_run(np.abs(curve - 0.5) < HALF_TOL)
        lengths.append(length)
        claim.record(
            f"half_plateau_restart{r}",
            {
                "levels": length,
                "from_inverse_density": inv[start] if length else None,
                "to_inverse_density": inv[start + length - 1] if length else None,
            },
        )
    # pooled over restarts: a restart's plateau is a whole number of levels (4-5 in the fast tier,
    # 3-4 at paper scale), and where a level sits just outside the band is chance; the restarts'
    # mean length measures the stickiness
    plateau = float(np.mean(lengths))
    claim.check(
        "half_plateau",
        plateau >= PLATEAU_MIN,
        what=f"consecutive levels with |D* - 1/2| < {HALF_TOL}, mean over restarts",
        measured={"per_restart": lengths, "D*": dstar.T},
        bound=f">= {PLATEAU_MIN}",
        value=plateau,
        lower=PLATEAU_MIN,
    )
    # pooled over restarts: a single restart's D* can step up by ~0.02 where its features regroup
    # (1/(1-S) ~ 3.7-5.2), in about one restart of eight; the restarts' mean curve shows the trend
    mean_curve = dstar.mean(axis=1)
    rise = float(np.max(mean_curve - np.minimum.accumulate(mean_curve)))
    claim.check(
        "non_increasing",
        rise <= RISE_MAX,
        what="D* (mean over restarts) non-increasing with sparsity: largest rise above the running minimum",
        measured={"rise": rise, "mean D*": mean_curve},
        bound=f"<= {RISE_MAX}",
        value=rise,
        upper=RISE_MAX,
    )
    if tier == "fast":  # seed-to-seed spread per level up to ~0.07 where pairs turn into pentagons
        claim.regress("dims_per_feature", dstar, rtol=0.0, atol=0.08)


#: Why the paper tier's second peak is an expected failure when it is missing (it is checked, and
#: the test passes, when it is there; a strict xfail would turn those runs red).
PAPER_SECOND_PEAK = (
    "paper scale (n=400, m=30, notebook training): the fractional D_i pile up at values that vary "
    "from run to run (0.41, 0.455, 0.465, ...), on a fraction in about 5 sweeps of 13, unchanged by "
    "4x longer training; the 1/2 peak is still checked"
)


@pytest.mark.parametrize("tier", TIERS)
def test_dimensionality_fractions(trained: Trained, claim: Claim, tier: ex.Tier) -> None:
    """ "Feature dimensionalities cluster at" 3/4 (tetrahedron), 2/3 (triangle), 1/2 (antipodal
    pair), 2/5 (pentagon), 3/8 (square antiprism) and 0 (not represented).

    What counts as a peak: a fraction c is a peak of a set of D_i when at least 3 features lie
    within ±0.005 of c and at least twice as many as in each of the windows of the same width
    centred 0.0125 below and above c (:func:`toymodel.analysis.metrics.histogram_peaks`). The 1/2 peak is
    asked of the D_i pooled over every level and restart; the others of one sweep (every level of
    one restart), in at least one restart: which fraction a sweep's fractional features pile up
    on varies from restart to restart, and pooling restarts fills the flanks with the piles that
    miss (see PAPER_SECOND_PEAK). Flanks 0.0125 away are far enough that a cluster's
    own spread does not reach them and near enough that a smooth background would fill them as
    densely as the centre; a pile-up at c relative to both flanks is a cluster at c, not just many
    features in the neighbourhood. We test peaks, not the share of features near fractions: in the
    paper's own saved run only ~26% of features lie within ±0.02 of a fraction.
    """
    inv, _, dims, _ = _sweep(trained, tier)
    levels, restarts, n = dims.shape
    claim.figure(
        "feature_dimensionality",
        lambda fig: figures.dimensionality_scatter(
            fig,
            inv,
            dims,
            title=f"D_i of every feature ({tier} tier): {levels} levels × {restarts} restarts × {n} features",
        ),
    )
    centres = np.array([0.5, *FRACTIONS.values()])
    peaks = metrics.histogram_peaks(dims, centres)
    table = {
        name: {"at": int(a), "left": int(lo), "right": int(hi), "peak": bool(p)}
        for name, a, lo, hi, p in zip(
            ["1/2", *FRACTIONS], peaks.at_centre, peaks.left, peaks.right, peaks.is_peak, strict=True
        )
    }
    claim.record("peaks", table)
    # the 1/2 peak is pooled (measured ~1100 at the centre against <= 20 at a flank, fast tier);
    # a second peak is asked of one sweep in at least one restart: most sweeps have one, and the
    # calibration's binomial yardstick bounds the chance that all the restarts miss
    claim.check(
        "half_peak",
        peaks.is_peak[0],
        what="a peak of the pooled D_i at 1/2",
        measured=table["1/2"],
        bound="count within ±0.005 >= 3 and >= 2x each flank (±0.0125)",
        # the margin is judged on the logarithm of the centre's excess over the bar (the natural
        # scale of a ratio; floored so that an empty centre stays finite)
        value=float(np.log(max(peaks.at_centre[0] / max(2 * peaks.left[0], 2 * peaks.right[0], 3), 1e-3))),
        lower=0.0,
    )
    per_restart, found = [], []
    for r in range(dims.shape[1]):
        pk = metrics.histogram_peaks(dims[:, r], centres[1:])
        rows = zip(FRACTIONS, pk.at_centre, pk.left, pk.right, pk.is_peak, strict=True)
        per_restart.append(
            {
                name: f"{int(a)} vs {int(lo)} / {int(hi)}" + (" peak" if p else "")
                for name, a, lo, hi, p in rows
            }
        )
        if pk.is_peak.any():
            found.append(r)
    claim.record("second_peak_per_restart", per_restart)
    if tier == "paper" and not found:
        pytest.xfail(PAPER_SECOND_PEAK)
    claim.check(
        "second_peak",
        len(found) >= 1,
        what="a restart whose D_i (all levels) peak at 3/4, 2/3, 2/5 or 3/8",
        measured={"restarts_with_a_peak": found, "per_restart": per_restart},
        bound="at least one restart",
        value=len(found),
        lower=1,
        trials=dims.shape[1],
    )
    if tier == "fast":  # share of the pooled D_i within ±0.005 of each centre
        claim.regress("share_at_centres", peaks.at_centre / dims.size, rtol=0.0, atol=0.04)


@pytest.mark.parametrize("tier", TIERS)
def test_dimensionality_sums_to_m(trained: Trained, claim: Claim, tier: ex.Tier) -> None:
    """The features are "packed efficiently": where D* ≈ 1/2, the dimensionalities of all features
    add up to about m (every hidden dimension is fully used), Σ_i D_i ≈ m. (Σ_i D_i <= rank W <= m
    always holds, so only the lower side is a check.)"""
    _, dstar, dims, m = _sweep(trained, tier)
    on_half = np.abs(dstar - 0.5) < HALF_TOL
    claim.record("plateau_levels", int(on_half.sum()))
    ratio = dims.sum(axis=-1)[on_half] / m
    claim.record("sum_dims_over_m", ratio)
    # measured 0.997-1.000 at the plateau levels; a model that leaves dimensions unused (or
    # half-used) falls below 0.9
    claim.check(
        "dims_fill_m",
        ratio.size > 0 and np.all(ratio >= 0.9),
        what="Σ_i D_i / m at the levels where D* ≈ 1/2 (there must be some)",
        measured=ratio,
        bound=">= 0.9",
        value=float(ratio.min()) if ratio.size else 0.0,
        lower=0.9,
    )
    if tier == "fast":
        claim.regress("sum_dims_over_m", dims.sum(axis=-1) / m, rtol=0.0, atol=0.005)


# (polytope, expected dimensionality of every vertex in ideal_polytope's column order)
POLYTOPES = {
    "digon": [1 / 2] * 2,
    "triangle": [2 / 3] * 3,
    "pentagon": [2 / 5] * 5,
    "tetrahedron": [3 / 4] * 4,
    "square_antiprism": [3 / 8] * 8,
    "triangular_bipyramid": [2 / 3] * 3 + [1 / 2] * 2,
    "pentagonal_bipyramid": [2 / 5] * 5 + [1 / 2] * 2,
}


@pytest.mark.theory
@pytest.mark.parametrize("name", list(POLYTOPES))
def test_polytope_dimensionalities(claim: Claim, name: str) -> None:
    """Uniform polytopes give each vertex D = m/N ("a fraction of a dimension"): digon 1/2,
    triangle 2/3, pentagon 2/5, tetrahedron 3/4, square antiprism 3/8; a tegum product splits into
    its factors' fractions: triangular bipyramid {2/3 x 3, 1/2 x 2}, pentagonal bipyramid
    {2/5 x 5, 1/2 x 2}. Exact geometry, no training; the dimensionalities also sum to m."""
    W = geometry.ideal_polytope(name)
    dims = metrics.feature_dimensionality(W)
    expected = np.array(POLYTOPES[name])
    err = float(np.max(np.abs(dims - expected)))
    claim.check(
        "vertex_dimensionalities",
        err <= 1e-12,
        what=f"feature dimensionalities of the ideal {name}",
        measured=dims,
        bound=f"{np.round(expected, 4).tolist()} within 1e-12",
        value=err,
        upper=1e-12,
    )
    claim.regress(name, dims, rtol=0.0, atol=1e-12)
    total = float(dims.sum())
    claim.check(
        "sum_is_m",
        abs(total - W.shape[0]) <= 1e-12,
        what=f"Σ_i D_i of the {name}",
        measured=total,
        bound=f"m = {W.shape[0]} within 1e-12",
        value=abs(total - W.shape[0]),
        upper=1e-12,
    )
