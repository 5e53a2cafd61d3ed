"""Section "learning dynamics" (the slides' teaser; the paper's learning-dynamics section).

Trajectories come from prefix runs (toymodel.experiments.dynamics): specs equal but for the
number of steps are checkpoints of one trajectory for any implementation whose init and data
stream depend only on the seed. The claim checks that premise on the loss curves before using it.
Loss-curve regimes are found by :func:`toymodel.analysis.regimes.detect_regimes`.
"""

from __future__ import annotations

import numpy as np
import pytest

from toymodel.analysis import geometry, metrics, select
from toymodel.analysis.regimes import Regimes, detect_regimes
from toymodel.experiments import correlated
from toymodel.experiments import dynamics as ex
from toymodel.report import figures
from toymodel.result import Result
from toymodel.suite.claim import Claim, Trained

pytestmark = pytest.mark.dynamics


#: detector settings for the octahedron run (loss logged every 20 steps, density 0.01): smoothing
#: over 200 steps tames the SGD noise of single windows; a plateau moves by < 0.25 in log-loss
#: per 400 steps and lasts >= 500 steps; an event falls by >= 1 in log-loss (a factor e).
#: Calibrated on 16 runs (lr 1e-3 and 3e-4): the intermediate plateau is found in 8 of 8 runs at
#: lr 3e-4, the final floor never counts as an event, and the result is stable for smoothing
#: 100-400 steps and windows 200-400 steps.
OCTAHEDRON_REGIMES = {
    "smooth": 200.0,
    "window": 400.0,
    "flat_tol": 0.25,
    "span_tol": 1.5,
    "min_plateau": 500.0,
    "min_drop": 1.0,
}


def _regimes(result: Result, instance: int) -> Regimes:
    return detect_regimes(result.loss_steps, result.loss_curve[instance], **OCTAHEDRON_REGIMES)


def _within_set_pairs(W: np.ndarray) -> list[tuple[int, int]]:
    """Antipodal pairs (cos < -0.95) of one restart whose members are in the same set of three."""
    return [(i, j) for i, j in geometry.antipodal_pairs(W, cos_max=-0.95) if i // 3 == j // 3]


def test_octahedron_attractor(trained: Trained, claim: Claim) -> None:
    """Two correlated sets of 3 features in m=3 (density 0.01): training ends in an octahedron,
    "with features forming antipodal pairs with features from a different correlated feature
    set", and "the loss curve goes through several distinct regimes corresponding to different
    geometric transformations of the weights"."""
    spec = ex.octahedron()
    result, control = trained(spec), trained(correlated.independent(spec, restarts=CONTROL_RESTARTS))
    best = select.best_of(result)
    W = best.W[0]
    claim.figure(
        "features",
        lambda fig: figures.feature_directions_3d(
            fig,
            W,
            groups=[i // 3 for i in range(6)],
            group_names=["correlated set 0: features 0-2", "correlated set 1: features 3-5"],
            title="best restart's final W in m=3: an octahedron, antipodal pairs across the sets",
        ),
    )
    near = np.flatnonzero(select.near_best(result)[0])
    axes = np.array([geometry.octahedron_pairs(result.W[k], cos_max=-0.95)[1] for k in near])
    claim.record("restarts_octahedron", int(np.sum(geometry.is_octahedron(result.W))))
    # the lowest-loss solution, read as "a restart within one standard error of the lowest held-out
    # loss": restarts still rotating into the octahedron can tie the best one
    claim.check(
        "octahedron",
        bool(np.nanmin(axes, initial=np.inf) < 0.1),
        what="a restart within one standard error of the lowest held-out loss with three antipodal pairs "
        "(cos < -0.95) on orthogonal axes: max |cos| between its axes (NaN unless there are three pairs)",
        measured={"near_best_restarts": near, "axes_max_cos": axes},
        bound="< 0.1 (orthogonal: an octahedron)",
        value=float(np.nanmin(axes, initial=np.inf)),
        upper=0.1,
    )
    within = [_within_set_pairs(result.W[k]) for k in range(spec.instances)]
    control_within = [_within_set_pairs(control.W[k]) for k in range(control.spec.instances)]
    claim.record("control_restarts_with_a_pair_within_a_set", int(sum(bool(p) for p in control_within)))
    # correlated: no restart measured with such a pair; independent sampling: ~2 in 3 restarts
    claim.check(
        "pairs_across_sets",
        not any(within),
        what=f"restarts (of {spec.restarts}) with an antipodal pair (cos < -0.95) inside one correlated set",
        measured={"restarts": [k for k, p in enumerate(within) if p], "pairs": [p for p in within if p]},
        bound="none: every pair joins the two sets",
        value=int(sum(bool(p) for p in within)),
        upper=0,
    )
    claim.check(
        "independent_control_pairs_within_sets",
        any(control_within),
        what=f"the same features sampled independently: restarts (of {control.spec.restarts}) with an "
        "antipodal pair inside one set",
        measured=int(sum(bool(p) for p in control_within)),
        bound=">= 1 (without the correlation the pairing is arbitrary)",
        lower=1,
        trials=control.spec.restarts,
    )

    # The paper's "several distinct regimes": the initial descent, a plateau, a drop, the final
    # floor (too noisy at density 0.01 to pass as a plateau itself; the last drop is measured to
    # the final loss). One plateau-then-drop event is what these runs show in the best restart; two
    # or more are rare (CLAIMS.md, measured departures).
    regimes = _regimes(result, int(best.instance[0]))
    claim.figure(
        "loss_regimes",
        lambda fig: figures.loss_regimes(
            fig,
            result.loss_steps,
            result.loss_curve[int(best.instance[0])],
            plateaus=[(p.start, p.end, p.level) for p in regimes.plateaus],
            drops=regimes.drop_steps,
            title="best restart's loss curve and the regimes found in it (toymodel.analysis.regimes)",
        ),
    )
    per_restart = [_regimes(result, k) for k in range(result.spec.instances)]
    claim.record("events_per_restart", [g.count for g in per_restart])
    claim.record("regimes_best", regimes.describe())
    # counted over restarts: about one restart in ten runs straight into the octahedron without a
    # plateau (and now and then it is the best one, or half of a run's restarts do), so the claim
    # asks the plateau-then-drop of at least PLATEAU_RESTARTS of the restarts
    falls = np.array([g.events[-1].drop if g.events else 0.0 for g in per_restart])
    seen = int(np.sum(falls >= PLATEAU_DROP_MIN))
    claim.check(
        "plateau_then_drop",
        seen >= PLATEAU_RESTARTS,
        what=f"restarts (of {result.spec.restarts}) whose loss curve shows a plateau, then a fall into the "
        f"octahedron of at least {PLATEAU_DROP_MIN} in log-loss (more than {np.exp(PLATEAU_DROP_MIN):.0f}x)",
        measured={"falls": falls, "best_restart_regimes": regimes.describe()},
        bound=f">= {PLATEAU_RESTARTS}",
        value=seen,
        lower=PLATEAU_RESTARTS,
        trials=result.spec.restarts,
    )
    claim.regress("best_eval_loss", best.eval_loss, rtol=0.05)


#: restarts of the independent control: about three in five pair two members of a set, so the
#: correlated run's 8 miss at about one run in 350 at the lower end of that rate's interval
#: (calibration/octahedron_attractor.json); 24 miss it at about one in 10^7
CONTROL_RESTARTS = 24

#: the last plateau's fall in log-loss (e^1.6: about 5x), 3 standard deviations below the falls'
#: calibrated mean when it was a single restart's check
PLATEAU_DROP_MIN = 1.6
#: restarts that must show it: a correct implementation's restarts do about nine times in ten
#: (calibration/octahedron_attractor.json), the learning rate x10 none
PLATEAU_RESTARTS = 3


# ----- energy levels ----------------------------------------------------------------------------

#: checkpoints before this step are the initial growth, where every dimensionality moves at once
BURN_IN = 300
#: |ΔD| between consecutive checkpoints below this: the feature stays on its level
STILL = 0.02
#: |ΔD| at or above this: a jump between levels
JUMP = 0.05
#: how many of the biggest loss drops are compared with the dimensionality changes
TOP_DROPS = 3


def _prefix_mismatch(results: list[Result]) -> float:
    """Largest relative difference between each prefix run's loss curve and the longest run's."""
    longest = results[-1]
    worst = 0.0
    for r in results[:-1]:
        k = r.loss_steps.size
        if not np.array_equal(r.loss_steps, longest.loss_steps[:k]):
            return float("inf")
        ref = longest.loss_curve[0, :k]
        worst = max(worst, float(np.max(np.abs(r.loss_curve[0] - ref) / np.abs(ref))))
    return worst


def _top_drop_p_value(activity: np.ndarray, drops: np.ndarray, top: int) -> tuple[float, float]:
    """Mean dimensionality activity of the ``top`` intervals with the biggest loss drops, and the
    exact probability that ``top`` intervals drawn at random have at least that mean."""
    from itertools import combinations

    chosen = np.argsort(drops)[::-1][:top]
    observed = float(activity[chosen].mean())
    means = np.array([activity[list(c)].mean() for c in combinations(range(activity.size), top)])
    return observed, float(np.mean(means >= observed - 1e-12))


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason=(
        "not reproduced in this setting (claims seed 0): after step 300, 83% (numpy) / 85% (torch) of "
        "feature-intervals are still (|ΔD| < 0.02) and 13 / 15 intervals move a feature by >= 0.05, but "
        "those moves carry only 7.5% / 10.6% of the total |ΔD| (bound 50%): read every 100 steps, the "
        "features glide between levels over 500-1 000 steps rather than jump; at density 0.2 "
        "(checkpoints every 250 steps to 10 000) no feature moved by 0.05 after step 2 000"
    ),
)
def test_energy_level_jumps(trained: Trained, claim: Claim) -> None:
    """ "Discrete 'energy level' jumps": during training, feature dimensionalities jump between
    discrete values rather than drifting, and the loss drops at the jumps (uniform superposition,
    ReLU output, importance 1, n=40, m=10, density 0.3: one run, read at 30 checkpoints, every
    100 steps to 3 000).

    Statistical, since the paper's example was a particularly clean run: after the initial
    growth (the first 300 steps), (1) most feature-intervals stay on their level (|ΔD| < 0.02)
    and the jumps (|ΔD| >= 0.05) carry most of the total change of D; (2) the 3 intervals whose
    loss drop most exceeds their neighbours' have more dimensionality change than 3 random
    intervals (exact permutation p-value <= 0.05)."""
    results = [trained(s) for s in ex.energy_checkpoints(ex.energy_run())]
    mismatch = _prefix_mismatch(results)
    if mismatch > 1e-6:
        pytest.skip(
            f"the implementation's prefix runs are not one trajectory (loss curves differ by "
            f"{mismatch:.3g} relative): its init or data stream depends on the number of steps, "
            f"so checkpoints cannot be read from prefix runs"
        )
    steps = np.array(ex.ENERGY_CHECKPOINTS, dtype=np.float64)
    D = metrics.feature_dimensionality(np.concatenate([r.W for r in results]))  # (K, n)
    keep = steps >= BURN_IN
    change = np.abs(np.diff(D[keep], axis=0))  # (intervals, n)
    still = float(np.mean(change < STILL))
    total = float(change.sum())
    jump_share = float(change[change >= JUMP].sum() / total) if total > 0 else 0.0
    jumps = int(np.sum(change >= JUMP))
    claim.record("jumps", jumps)
    claim.regress("final_eval_loss", results[-1].eval_loss, rtol=0.02)
    claim.check(
        "jumps",
        jumps >= 3,
        what=f"jumps |ΔD| >= {JUMP} after step {BURN_IN}",
        measured=jumps,
        bound=">= 3 (something to test)",
        lower=3,
    )
    claim.check(
        "levels_still",
        still >= 0.8,
        what=f"share of feature-intervals with |ΔD| < {STILL}",
        measured=still,
        bound=">= 0.8 (features sit on levels)",
        lower=0.8,
    )
    claim.check(
        "jump_share",
        jump_share >= 0.5,
        what=f"share of the total |ΔD| carried by jumps >= {JUMP}",
        measured=jump_share,
        bound=">= 0.5 (discrete jumps, not drift)",
        lower=0.5,
    )

    longest = results[-1]
    spacing = steps[1] - steps[0]
    logged, curve = longest.loss_steps, longest.loss_curve[0]
    # the training loss over the steps just before each checkpoint
    level = np.array([curve[(logged > c - spacing) & (logged <= c)].mean() for c in steps[keep]])
    drops = -np.diff(level)  # loss drop across each checkpoint interval
    # the loss falls fastest early, when the most features move: compare each interval's drop
    # with its neighbours' (local excess), so a common trend cannot make the coincidence
    padded = np.concatenate([drops[:1], drops, drops[-1:]])
    excess = drops - 0.5 * (padded[:-2] + padded[2:])
    activity = change.sum(axis=1)
    observed, p = _top_drop_p_value(activity, excess, TOP_DROPS)
    claim.record("activity_per_interval", activity)
    claim.record("loss_drop_per_interval", drops)
    claim.record("still_share", still)
    claim.record("jump_share", jump_share)
    claim.check(
        "drops_at_jumps",
        p <= 0.05,
        what=f"Σ|ΔD| in the {TOP_DROPS} intervals with the biggest loss drops vs random "
        "intervals (permutation p-value)",
        measured={"mean": observed, "median": float(np.median(activity)), "p": p},
        bound="p <= 0.05",
        value=p,
        upper=0.05,
    )
    claim.figure(
        "trajectories",
        lambda fig: figures.trajectories(
            fig,
            steps,
            D,
            longest.loss_steps,
            longest.loss_curve[0],
            title="feature dimensionalities over training (one line per feature) and the loss",
        ),
    )
