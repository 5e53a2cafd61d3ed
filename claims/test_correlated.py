"""Section "correlated and anticorrelated features" (n=4, n=6 in m=2; n=20 in m=10).

Sampling is the paper's (CLAIMS.md, Conventions; toymodel.data): a correlated set is zero or
active as a whole, an anticorrelated set has at most one active member. Importance 1 throughout.
Selection: per setting, the restart with the lowest held-out loss ("fit multiple times, keep the
lowest loss"); weights are never averaged across restarts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from toymodel import geometry, metrics, select
from toymodel.claim import Claim, Trained
from toymodel.experiments import correlated as ex
from toymodel.result import Result

pytestmark = pytest.mark.correlated

PAIRS = np.array([[0, 1], [2, 3], [4, 5]])  # the three correlated pairs of the n=6 experiments
COLOURS = ("tab:blue", "tab:blue", "tab:orange", "tab:orange", "tab:green", "tab:green")


def _draw_2d(W: np.ndarray, titles: list[str], sets: int) -> Callable[[object], None]:
    """Feature directions of one or more (2, n) instances, set members in one colour."""

    def draw(fig: object) -> None:
        axes = np.atleast_1d(fig.subplots(1, len(W)))  # type: ignore[attr-defined]
        for ax, Wl, title in zip(axes, W, titles, strict=True):
            size = Wl.shape[1] // sets
            for i in range(Wl.shape[1]):
                ax.plot(
                    [0, Wl[0, i]],
                    [0, Wl[1, i]],
                    marker="o",
                    color=COLOURS[2 * (i // size)],
                    label=f"{i} (set {i // size})",
                )
            ax.set_aspect("equal")
            ax.set_xlim(-1.3, 1.3)
            ax.set_ylim(-1.3, 1.3)
            ax.set_title(title, fontsize=8)
        axes[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))

    return draw


def test_correlated_orthogonal(trained: Trained, claim: Claim) -> None:
    """ "Models prefer to represent correlated features in orthogonal dimensions" (2 sets of 2
    correlated features, n=4, m=2; density 0.05, not stated by the paper: CLAIMS.md's default)."""
    result = trained(ex.pair_sets("correlated"))
    best = select.best_of(result)
    W = best.W[0]
    cos = metrics.cosines(W)
    within = np.array([cos[0, 1], cos[2, 3]])
    norms = metrics.feature_norms(W)
    every = np.abs(metrics.cosines(result.W)[:, [0, 2], [1, 3]])
    claim.record("restarts_orthogonal", int(np.sum(np.all(every < 0.1, axis=1))))
    claim.check(
        "all_represented",
        np.all(norms > 0.9),
        what="||W_i|| of the 4 features",
        measured=norms,
        bound="> 0.9 (all represented)",
    )
    # measured max |cos| within a set 0.003-0.016 (seeds 0-4, both implementations); an
    # independent sampler gives a square whose pairing is arbitrary (|cos| 1 in 2 of 3 pairings)
    claim.check(
        "orthogonal_within_sets",
        np.all(np.abs(within) < 0.1),
        what="cos within each correlated set",
        measured=within,
        bound="|cos| < 0.1",
    )
    claim.regress("best_eval_loss", best.eval_loss, rtol=0.02)
    claim.figure("features", _draw_2d(best.W, ["correlated sets (0,1), (2,3)"], 2))


def test_anticorrelated_antipodal(trained: Trained, claim: Claim) -> None:
    """ "Models prefer to represent anticorrelated features in opposite directions" (2 sets of 2
    anticorrelated features, n=4, m=2, density 0.05)."""
    result = trained(ex.pair_sets("anticorrelated", restarts=16))
    best = select.best_of(result)
    cos = metrics.cosines(best.W[0])
    within = np.array([cos[0, 1], cos[2, 3]])
    all_cos = metrics.cosines(result.W)[:, [0, 2], [1, 3]]
    # most restarts end in the local minimum "both sets orthogonal" (loss 4e-4 instead of ~0):
    # 15 of 40 restarts antipodal at 8 per seed (seeds 0-4, numpy; 1 of 8 at seed 3), so best of 16
    claim.record("restarts_antipodal", int(np.sum(np.all(all_cos < -0.9, axis=1))))
    claim.check(
        "antipodal_within_sets",
        np.all(within < -0.9),
        what="cos within each anticorrelated set",
        measured=within,
        bound="< -0.9 (antipodal)",
    )
    axis = float(metrics.cosines(best.W[0] @ np.diag([1.0, -1.0, 1.0, -1.0]))[0, 2])
    claim.record("cos_between_set_axes", axis)
    claim.regress("within_set_cos", within, rtol=0.0, atol=1e-3)
    claim.figure("features", _draw_2d(best.W, ["anticorrelated sets (0,1), (2,3)"], 2))


def test_correlated_side_by_side(trained: Trained, claim: Claim) -> None:
    """ "Models prefer to arrange correlated features side by side if they can't be orthogonal"
    (3 sets of 2 correlated features, n=6, m=2), a hexagon "not how 6 independent features embed".

    Read at density 0.01, the sweep's sparsest level, where no pair collapses; the partners need
    not be closer to each other than to the next set (CLAIMS.md), only adjacent."""
    result = trained(ex.collapse_sweep())
    best = select.best_of(result)
    W = best.W[0]
    norms = metrics.feature_norms(W)
    collapsed = metrics.collapsed_pairs(W, PAIRS)
    adjacent = np.array([geometry.neighbours_in_angular_order(W, a, b) for a, b in PAIRS])
    claim.check(
        "hexagon",
        np.all(norms > 0.5) and not collapsed.any(),
        what="density 0.01: six represented directions, no pair collapsed",
        measured={"norms": norms, "collapsed": collapsed},
        bound="||W_i|| > 0.5, no collapse",
    )
    gaps = geometry.angular_gaps(W)
    claim.record("angular_gaps_deg", gaps)
    claim.regress("angular_gaps_deg", gaps, rtol=0.0, atol=1.0)
    # an independent sampler would make every pairing equally likely: all three pairs adjacent
    # in 2 of the 15 pairings of a hexagon
    claim.check(
        "pairs_adjacent",
        np.all(adjacent),
        what="each correlated pair adjacent in angular order",
        measured=adjacent,
        bound="all three pairs neighbours",
    )
    claim.figure("features", _draw_2d(best.W[:1], ["density 0.01: pairs (0,1), (2,3), (4,5)"], 3))


def test_local_orthogonal_bases(trained: Trained, claim: Claim) -> None:
    """ "Within each set of correlated features, the model creates a local orthogonal basis"
    (2 sets of 10 correlated features, n=20, m=10; density 0.03, calibrated, see
    toymodel.experiments.correlated)."""
    result = trained(ex.local_bases())
    best = select.best_of(result)
    W = best.W[0]
    off = metrics.interference(W)
    A, B = np.arange(10), np.arange(10, 20)
    within = float(max(np.abs(off[np.ix_(A, A)]).max(), np.abs(off[np.ix_(B, B)]).max()))
    cross = np.abs(off[np.ix_(A, B)])
    norms = metrics.feature_norms(W)
    claim.check(
        "all_represented",
        norms.min() > 0.9,
        what="min ||W_i||",
        measured=float(norms.min()),
        bound="> 0.9 (all 20 represented)",
    )
    # measured within-set max 0.009-0.039 (10 000 steps, seed 0 numpy, densities 0.01-0.03)
    claim.check(
        "orthogonal_within_sets",
        within < 0.1,
        what="max |WᵀW_ij| within a set (i != j)",
        measured=within,
        bound="< 0.1",
    )
    # 20 unit features in 10 dimensions must overlap across the sets (not a check: it follows
    # from the two above)
    claim.record("cross_set_mean", float(cross.mean()))
    claim.record("cross_set_max", float(cross.max()))
    claim.regress("best_eval_loss", best.eval_loss, rtol=0.02)

    def draw(fig: object) -> None:
        ax = fig.add_subplot(1, 1, 1)  # type: ignore[attr-defined]
        im = ax.imshow(metrics.gram(W), cmap="RdBu", vmin=-1, vmax=1)
        ax.set_title("WᵀW: features 0-9 and 10-19 are the two correlated sets", fontsize=8)
        fig.colorbar(im)  # type: ignore[attr-defined]

    claim.figure("gram", draw)


def _collapse_counts(result: Result) -> tuple[np.ndarray, np.ndarray]:
    """Collapsed pairs of the best restart per density, and of every restart (settings, restarts)."""
    best = select.best_of(result)
    every = result.by_setting(metrics.collapsed_pairs(result.W, PAIRS).sum(axis=-1))
    return metrics.collapsed_pairs(best.W, PAIRS).sum(axis=-1), every


def _paper_count(density: float) -> int | None:
    for lo, hi, count in ex.PAPER_COLLAPSE_RANGES:
        if lo < density <= hi:
            return count
    return None


@pytest.mark.parametrize("tier", ["fast", pytest.param("paper", marks=pytest.mark.slow)])
def test_pca_collapse(trained: Trained, claim: Claim, tier: str) -> None:
    """ "If there are two correlated features a and b, but the model only has capacity to represent
    one, the model will represent their principal component": collapsed pairs (both members on
    the pair's principal component) approximately 0 at density <= 0.05, 1 at 0.05-0.15, 2 at
    0.15-0.2, 3 at 0.25-0.5 (3 correlated pairs, n=6, m=2).

    Paper tier, numpy, claims seed 0 (best of 10, 10 000 steps), collapsed pairs at densities
    0.01 0.02 0.03 0.05 0.07 0.1 0.13 0.15 0.17 0.2 0.25 0.3 0.35 0.5 0.7 1.0:
         0    0    0    1    1   1    1    2    2   2    2   3    2   3   3   0 (PCA-like)."""
    result = trained(ex.collapse_sweep(tier))  # type: ignore[arg-type]
    densities = result.spec.density_array()[:, 0]
    counts, every = _collapse_counts(result)
    claim.record("densities", densities)
    claim.record("collapsed_best", counts)
    claim.record("collapsed_every_restart", every)
    claim.record("paper_ranges", [_paper_count(float(d)) for d in densities])
    # Best-of-k (lowest held-out loss) at 0.01, 0.1, 0.17 and 0.5. Not at 0.35: there the lowest
    # loss is a solution with 2 collapsed pairs and the third pair nearly orthogonal, 1.2-1.5% below
    # the all-collapsed solution, found by 1 of 8 (seed 0) and 5 of 16 (seed 7) restarts; the
    # all-collapsed one is what most restarts find (the paper's figure shows such typical runs).
    # So at 0.35 the claim reads the modal count over restarts, the typical solution.
    expected = {0.01: 0, 0.1: 1, 0.17: 2, 0.5: 3}
    at = np.array([int(counts[np.flatnonzero(np.isclose(densities, d))[0]]) for d in expected])
    claim.check(
        "collapsed_counts",
        np.array_equal(at, list(expected.values())),
        what=f"collapsed pairs of the best restart at densities {list(expected)}",
        measured=at,
        bound=f"{list(expected.values())} (best of {result.spec.restarts})",
    )
    level = int(np.flatnonzero(np.isclose(densities, 0.35))[0])
    modal = int(np.bincount(every[level], minlength=4).argmax())
    claim.record("collapsed_best_at_0.35", int(counts[level]))
    claim.check(
        "modal_at_035",
        modal == 3,
        what="most common count of collapsed pairs over restarts at density 0.35",
        measured={"modal": modal, "every_restart": every[level]},
        bound="3 (all pairs collapsed)",
    )
    # levels in (0.2, 0.5), where 2 and 3 collapsed pairs compete (above), are left out, and so
    # are those above 0.5, the slides' "more PCA-like" regime: there all six features share the two
    # overall principal components (paper tier, numpy seed 0: 3 at 0.7, none at density 1.0)
    rest = counts[(densities <= 0.2) | (densities == 0.5)]
    claim.check(
        "non_decreasing",
        np.all(np.diff(rest) >= 0),
        what="collapsed pairs (best restart) non-decreasing with density",
        measured=counts,
        bound="non-decreasing at densities <= 0.2 and 0.5",
    )
    best = select.best_of(result)
    if tier == "fast":  # one baseline per claim id: the fast tier's
        claim.regress("best_eval_loss", best.eval_loss, rtol=0.02)

    def draw(fig: object) -> None:
        ax = fig.add_subplot(1, 1, 1)  # type: ignore[attr-defined]
        ax.plot(densities, counts, "o-", label="measured (best restart)")
        for lo, hi, c in ex.PAPER_COLLAPSE_RANGES:
            ax.plot([max(lo, densities.min()), hi], [c, c], color="grey", lw=6, alpha=0.4)
        ax.plot([], [], color="grey", lw=6, alpha=0.4, label="paper (approximate ranges)")
        ax.set_xscale("log")
        ax.set_xlabel("density 1 - S")
        ax.set_ylabel("collapsed pairs")
        ax.legend(fontsize=7)

    claim.figure("collapse_vs_density", draw)
    claim.figure("features", _draw_2d(best.W, [f"density {d:g}" for d in densities], 3))
