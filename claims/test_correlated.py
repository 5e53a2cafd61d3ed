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

from toymodel.analysis import geometry, metrics, select
from toymodel.experiments import correlated as ex
from toymodel.report import figures
from toymodel.result import Result
from toymodel.suite.claim import Claim, Trained

pytestmark = pytest.mark.correlated

PAIRS = np.array([[0, 1], [2, 3], [4, 5]])  # the three correlated pairs of the n=6 experiments


def _draw_2d(W: np.ndarray, titles: list[str], sets: int, title: str) -> Callable[[object], None]:
    """Feature directions of one or more (2, n) instances, the members of a set in one colour."""
    size = W.shape[-1] // sets
    names = [f"set {k}: features {k * size}-{(k + 1) * size - 1}" for k in range(sets)]
    groups = [i // size for i in range(W.shape[-1])]
    return lambda fig: figures.feature_directions_2d(
        fig, W, titles, groups=groups, group_names=names, title=title
    )


def _within_set_antipodal(W: np.ndarray, sets: list[list[int]]) -> np.ndarray:
    """(instances,) whether any two members of one set are antipodal (cos < -0.9)."""
    cos = metrics.cosines(W)
    hit = np.zeros(W.shape[0], dtype=bool)
    for members in sets:
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                hit |= cos[:, a, b] < -0.9
    return hit


def _square(W: np.ndarray) -> np.ndarray:
    """(instances,) every feature at norm 0.9-1.1: a square of two antipodal pairs in m=2."""
    norms = metrics.feature_norms(W)
    return np.all((norms > 0.9) & (norms < 1.1), axis=-1)


def _side_by_side(W: np.ndarray) -> np.ndarray:
    """(instances,) every correlated pair adjacent in angular order among the represented features
    (a pair collapsed onto one direction counts as adjacent: nothing lies between its members)."""
    return np.all([geometry.neighbours_in_angular_order(W, a, b) for a, b in PAIRS], axis=0)


def test_correlated_orthogonal(trained: Trained, claim: Claim) -> None:
    """ "Models prefer to represent correlated features in orthogonal dimensions" (2 sets of 2
    correlated features, n=4, m=2; density 0.05, not stated by the paper: CLAIMS.md's default).

    Sparse independent features also form a square of two antipodal pairs, with an arbitrary
    pairing: the contrast is that correlated partners are (almost) never antipodal, while the same
    features sampled independently (same seed, budget and initial weights) often are."""
    spec = ex.pair_sets("correlated")
    result, control = trained(spec), trained(ex.independent(spec, restarts=CONTROL_RESTARTS))
    best = select.best_of(result)
    claim.figure(
        "features",
        lambda fig: _draw_2d(
            np.stack([best.W[0], select.best_of(control).W[0]]),
            ["correlated pairs (0,1), (2,3)", "the same features sampled independently"],
            2,
            "n=4, m=2, density 0.05: best restart of each",
        )(fig),
    )
    W = best.W[0]
    cos = metrics.cosines(W)
    within = np.array([cos[0, 1], cos[2, 3]])
    norms = metrics.feature_norms(W)
    sets = [[0, 1], [2, 3]]
    paired = int((_within_set_antipodal(result.W, sets) & _square(result.W)).sum())
    control_paired = int((_within_set_antipodal(control.W, sets) & _square(control.W)).sum())
    claim.record("restarts_with_partners_antipodal", paired)
    claim.record("control_restarts_with_partners_antipodal", control_paired)
    claim.check(
        "all_represented",
        np.all(norms > 0.9),
        what="||W_i|| of the 4 features",
        measured=norms,
        bound="> 0.9 (all represented)",
        value=float(norms.min()),
        lower=0.9,
    )
    # max |cos| within a set measured ~0.003-0.03
    claim.check(
        "orthogonal_within_sets",
        np.all(np.abs(within) < 0.1),
        what="cos within each correlated set",
        measured=within,
        bound="|cos| < 0.1",
        value=float(np.abs(within).max()),
        upper=0.1,
    )
    # Among the squares (all four features at norm 0.9-1.1, the solution sparse features reach),
    # correlated partners were never antipodal (0 of ~2600 square restarts), independent ones in ~34%
    # (a random pairing: 1/3), so independent sampling passes with probability ~0.66^16 = 0.2%. (A
    # rare local minimum, ~0.7% of restarts, has one set antipodal at norm ~1.2 and the other
    # collapsed, 13x the best loss: not a square, not counted.)
    claim.check(
        "partners_never_antipodal",
        paired == 0,
        what=f"restarts (of {spec.restarts}) forming a square (norms 0.9-1.1) with two members of a "
        "correlated set antipodal (cos < -0.9)",
        measured=paired,
        bound="none",
        upper=0,
    )
    claim.check(
        "independent_control_pairs_partners",
        control_paired >= 1,
        what=f"the same features sampled independently: square restarts (of {control.spec.restarts}) "
        "pairing two members of a set antipodally",
        measured=control_paired,
        bound=">= 1 (without the correlation the pairing is arbitrary: about 1 in 3)",
        lower=1,
        trials=control.spec.restarts,
    )
    claim.regress("best_eval_loss", best.eval_loss, rtol=0.02)


#: restarts of the independent control counted by correlated_orthogonal: about one in three pairs
#: two partners, so 16 (the correlated run's) miss at about one run in 300 at the lower end of that
#: rate's interval (calibration/correlated_orthogonal.json); 48 miss it at about one in 10^7
CONTROL_RESTARTS = 48


#: log10 of the best anticorrelated loss over the best loss of the same features sampled
#: independently: measured -5.9 (an exact zero-interference solution, ~1e-10) against -3.0 for a
#: model trained on independent features and scored on the anticorrelated sample
NO_INTERFERENCE_LOG_RATIO = -4.0


def test_anticorrelated_antipodal(trained: Trained, claim: Claim) -> None:
    """ "Models prefer to represent anticorrelated features in opposite directions" (2 sets of 2
    anticorrelated features, n=4, m=2, density 0.05).

    At most one member of a set is active, so two members in opposite directions never interfere
    (a ReLU cuts the negative projection): the lowest loss is ~0, and the only such solution puts
    each set's members antipodal on orthogonal axes. The contrast: the same features sampled
    independently (same marginal density, seed and budget) must pay for interference."""
    spec = ex.pair_sets("anticorrelated")
    result, control = trained(spec), trained(ex.independent(spec))
    best = select.best_of(result)
    claim.figure(
        "features",
        lambda fig: _draw_2d(
            np.stack([best.W[0], select.best_of(control).W[0]]),
            ["anticorrelated pairs (0,1), (2,3)", "the same features sampled independently"],
            2,
            "n=4, m=2, density 0.05: best restart of each",
        )(fig),
    )
    cos = metrics.cosines(best.W[0])
    within = np.array([cos[0, 1], cos[2, 3]])
    all_cos = metrics.cosines(result.W)[:, [0, 2], [1, 3]]
    # many restarts end in the local minimum "both sets orthogonal" (loss 4e-4 instead of ~0), so 16
    claim.record("restarts_antipodal", int(np.sum(np.all(all_cos < -0.9, axis=1))))
    claim.record("best_within_set_cos", within)
    claim.record(
        "cos_between_set_axes", float(metrics.cosines(best.W[0] @ np.diag([1.0, -1.0, 1.0, -1.0]))[0, 2])
    )
    ratio = float(np.log10(max(best.eval_loss[0], 1e-300) / select.best_of(control).eval_loss[0]))
    claim.check(
        "no_interference",
        ratio < NO_INTERFERENCE_LOG_RATIO,
        what="log10 of the best held-out loss over the best loss of the same features sampled "
        "independently (the antipodal pairs cost nothing)",
        measured={"log10_ratio": ratio, "best_loss": float(best.eval_loss[0]), "best_within_set_cos": within},
        bound=f"< {NO_INTERFERENCE_LOG_RATIO}",
        value=ratio,
        upper=NO_INTERFERENCE_LOG_RATIO,
    )
    claim.regress("within_set_cos", within, rtol=0.0, atol=1e-3)


#: restarts (of 16) with every correlated pair adjacent, correlated minus independent: correct
#: implementations put 55-95% of restarts side by side (the others are local minima that drop a
#: feature, at 3x the loss), independent features ~2% (a pentagon with the sixth feature weak, not a
#: random hexagon), so that a model ignoring the correlation reaches 4 with probability ~3e-4
SIDE_BY_SIDE_GAIN = 4


def test_correlated_side_by_side(trained: Trained, claim: Claim) -> None:
    """ "Models prefer to arrange correlated features side by side if they can't be orthogonal"
    (3 sets of 2 correlated features, n=6, m=2), a hexagon "not how 6 independent features embed".

    Read at density 0.01; the partners need not be closer to each other than to the next set, only
    adjacent. Most restarts end with every pair side by side (some with one pair collapsed onto its
    principal component); the same features sampled independently (same seed, budget and initial
    weights) almost never do."""
    spec = ex.hexagon()
    result, control = trained(spec), trained(ex.independent(spec))
    near = select.near_best(result)[0]
    claim.figure(
        "features",
        lambda fig: _draw_2d(
            np.stack([select.best_of(result).W[0], select.best_of(control).W[0]]),
            ["correlated pairs (0,1), (2,3), (4,5)", "the same features sampled independently"],
            3,
            "n=6, m=2, density 0.01: best restart of each",
        )(fig),
    )
    hexagon = np.all(metrics.feature_norms(result.W) > 0.5, axis=-1) & ~metrics.collapsed_pairs(
        result.W, PAIRS
    ).any(axis=-1)
    claim.check(
        "hexagon",
        bool(np.any(hexagon[near])),
        what="a restart within one standard error of the lowest held-out loss: six represented directions, "
        "no pair collapsed",
        measured={"near_best_restarts": np.flatnonzero(near), "hexagon": hexagon[near]},
        bound="at least one",
    )
    ours, theirs = _side_by_side(result.W), _side_by_side(control.W)
    gain = int(ours.sum() - theirs.sum())
    claim.check(
        "side_by_side_contrast",
        gain >= SIDE_BY_SIDE_GAIN,
        what=f"restarts (of {spec.restarts}) with every correlated pair adjacent, minus the same count for "
        "the features sampled independently",
        measured={"correlated": int(ours.sum()), "independent": int(theirs.sum())},
        bound=f">= {SIDE_BY_SIDE_GAIN}",
        value=gain,
        lower=SIDE_BY_SIDE_GAIN,
    )
    best = select.best_of(result)
    gaps = geometry.angular_gaps(best.W[0])
    claim.record("angular_gaps_deg", gaps)
    claim.regress("angular_gaps_deg", gaps, rtol=0.0, atol=1.0)


def test_local_orthogonal_bases(trained: Trained, claim: Claim) -> None:
    """ "Within each set of correlated features, the model creates a local orthogonal basis"
    (2 sets of 10 correlated features, n=20, m=10; density 0.03, calibrated, see
    toymodel.experiments.correlated); the same features sampled independently do not."""
    spec = ex.local_bases()
    result, control = trained(spec), trained(ex.independent(spec))
    A, B = np.arange(10), np.arange(10, 20)

    def within_max(W: np.ndarray) -> np.ndarray:
        off = np.abs(metrics.interference(W))
        return np.maximum(
            off[..., A[:, None], A].max(axis=(-2, -1)), off[..., B[:, None], B].max(axis=(-2, -1))
        )

    best = select.best_of(result)
    W = best.W[0]
    norms = metrics.feature_norms(W)
    claim.figure(
        "gram",
        lambda fig: figures.gram(
            fig,
            {
                "correlated sets": metrics.gram(W),
                "the same features sampled independently": metrics.gram(select.best_of(control).W[0]),
            },
            boundaries=[10],
            title="n=20, m=10: WᵀW of the best restart; features 0-9 and 10-19 are the two sets",
        ),
    )
    every = within_max(result.W)
    control_best = float(within_max(select.best_of(control).W)[0])
    claim.check(
        "all_represented",
        norms.min() > 0.9,
        what="min ||W_i||",
        measured=float(norms.min()),
        bound="> 0.9 (all 20 represented)",
        lower=0.9,
    )
    # measured within-set max 0.01-0.05 in every restart
    claim.check(
        "orthogonal_within_sets",
        bool(np.all(every < 0.1)),
        what="max |WᵀW_ij| within a set (i != j), every restart",
        measured=every,
        bound="< 0.1",
        value=float(every.max()),
        upper=0.1,
    )
    # measured ~1.0: independent features share directions within a set (antipodal pairs)
    claim.check(
        "independent_control_interferes",
        control_best > 0.5,
        what="the same features sampled independently: max |WᵀW_ij| within a set, best restart",
        measured=control_best,
        bound="> 0.5",
        lower=0.5,
    )
    cross = np.abs(metrics.interference(W)[np.ix_(A, B)])
    claim.record("cross_set_mean", float(cross.mean()))
    claim.record("cross_set_max", float(cross.max()))
    claim.regress("best_eval_loss", best.eval_loss, rtol=0.02)


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
    spec = ex.collapse_sweep(tier)  # type: ignore[arg-type]
    result, control = trained(spec), trained(ex.independent(spec))
    densities = result.spec.density_array()[:, 0]
    counts, every = _collapse_counts(result)
    near = select.near_best(result)
    claim.record("densities", densities)
    claim.record("collapsed_best", counts)
    claim.record("collapsed_every_restart", every)
    claim.record("paper_ranges", [_paper_count(float(d)) for d in densities])
    claim.figure(
        "collapse_vs_density",
        lambda fig: figures.collapse_counts(
            fig,
            densities,
            counts,
            paper=ex.PAPER_COLLAPSE_RANGES,
            title="3 correlated pairs in m=2: pairs collapsed onto their principal component",
        ),
    )
    claim.figure(
        "features",
        _draw_2d(
            select.best_of(result).W,
            [f"density {d:g}" for d in densities],
            3,
            "n=6, m=2: best restart per density (pairs (0,1), (2,3), (4,5) correlated)",
        ),
    )
    # The lowest-loss solution at 0.01, 0.1, 0.17 and 0.5, read as "a restart within one standard
    # error of the lowest held-out loss": at 0.01 collapsing one pair or none are near-ties (a
    # third of the restarts collapse one). Not at 0.35: there the lowest loss keeps one pair
    # uncollapsed, 1.2-1.5% below the all-collapsed solution that most restarts find (the paper's
    # figure shows such typical runs), so at 0.35 the claim reads the modal count over restarts.
    expected = {0.01: 0, 0.1: 1, 0.17: 2, 0.5: 3}
    found = []
    for d, want in expected.items():
        level = int(np.flatnonzero(np.isclose(densities, d))[0])
        found.append(bool(np.any(every[level][near[level]] == want)))
    claim.check(
        "collapsed_counts",
        all(found),
        what="a restart within one standard error of the lowest held-out loss with the paper's count, at "
        f"densities {list(expected)}",
        measured={"found": found, "best_restart": counts},
        bound=f"{list(expected.values())}",
        value=sum(not f for f in found),
        upper=0,
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
    # are those above 0.5, the slides' "more PCA-like" regime, where all six features share the two
    # overall principal components
    rest = counts[(densities <= 0.2) | (densities == 0.5)]
    claim.check(
        "non_decreasing",
        np.all(np.diff(rest) >= 0),
        what="collapsed pairs (best restart) non-decreasing with density",
        measured=counts,
        bound="non-decreasing at densities <= 0.2 and 0.5",
    )
    # the contrast: collapsing onto a principal component only pays when the pair is active together
    control_counts, _ = _collapse_counts(control)
    dense = densities >= 0.1
    claim.check(
        "independent_control_never_collapses",
        int(control_counts[dense].sum()) == 0,
        what="the same features sampled independently: collapsed pairs of the best restart, densities >= 0.1",
        measured=control_counts,
        bound="0 at every density",
        value=int(control_counts[dense].sum()),
        upper=0,
    )
    best = select.best_of(result)
    if tier == "fast":  # one baseline per claim id: the fast tier's
        claim.regress("best_eval_loss", best.eval_loss, rtol=0.02)
