"""Section "nonuniform superposition": the pentagon → digon phase change (n=5, m=2, I=1).

One sweep (:func:`toymodel.experiments.nonuniform.pentagon_sweep`) serves every claim: the varied
feature's density scaled 0.1x-10x around the base density 0.05, restarts per level. Selection: per
level, the restart with the lowest loss ("fit multiple times, keep the lowest loss"); per
geometry, the lowest loss among the restarts with that geometry.

Which loss ranks the restarts: the exact expected loss of each trained (W, b)
(:func:`~toymodel.analysis.pentagon.exact_losses`, deterministic for n=5 independent
features), the limit of common random numbers. The held-out loss, even on the 2^19 samples all
restarts of a level share, has a standard error of 1.5% on the square/pentagon loss ratio (measured:
the two geometries err on different samples, so sharing them only brings it down from 1.9%), as
large as the 2.7% gap one level below the crossover; 2^19 is what the fast tier can afford. The
held-out selection is recorded beside the exact one.
The exact location of the phase change comes from the deterministic expected loss minimised from
a pentagon and from a square start (:func:`~toymodel.theory.pentagon.pentagon_crossover`),
which needs no training and is checked beside what the trained models show.
The exact crossover itself needs no training: it is checked in the theory tier
(``test_pentagon_digon_theory``), never as a verdict on an implementation.
"""

from __future__ import annotations

import numpy as np
import pytest

from toymodel import theory
from toymodel.analysis import geometry, metrics, select
from toymodel.analysis.pentagon import exact_losses, label_restarts
from toymodel.experiments import nonuniform as ex
from toymodel.report import figures
from toymodel.result import Result
from toymodel.suite.claim import Claim, Trained

pytestmark = pytest.mark.nonuniform

#: the transition bracket of CLAIMS.md (the paper: "~2.5x sparser", relative density ≈ 0.4). The
#: exact crossover (theory tier) is inside it near its low end; the trained transition is checked
#: against the exact crossover, the trained loss curves' crossing against the bracket.
BRACKET = (0.25, 0.55)
PENTAGON_FROM = 0.7  # best-of-k is a pentagon at every relative density >= this
SQUARE_UPTO = 0.2  # best-of-k is the square (varied feature off) at every relative density <= this
TIERS = ["fast", pytest.param("paper", marks=pytest.mark.slow)]


def _exact(result: Result) -> np.ndarray:
    """(settings, restarts) exact expected loss of every trained instance."""
    density = result.spec.density_array(per_instance=True)
    return result.by_setting(exact_losses(result.W, result.b, density))


def _best(result: Result, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per level, the instance with the lowest of ``losses`` (settings, restarts): (W, b, loss)."""
    restart = select.lowest_loss(losses)
    inst = np.arange(result.spec.settings) * result.spec.restarts + restart
    return result.W[inst], result.b[inst], losses[np.arange(len(restart)), restart]


def test_pentagon_baseline(trained: Trained, claim: Claim) -> None:
    """ "With uniform sparsity (0.05) ... the features form a regular pentagon", with "slightly
    negative biases" and the vertices "outside the unit circle" (ReLU output, n=5, m=2, I=1)."""
    result = trained(ex.pentagon_sweep())
    level = int(np.flatnonzero(np.isclose(ex.relative_density(result.spec), 1.0))[0])
    Ws, bs, exact = _best(result, _exact(result))
    W, b = Ws[level], bs[level]
    shape = geometry.describe_2d(W)
    norms = metrics.feature_norms(W)
    # The exact optimum from a regular pentagon (theory.minimise_expected_loss) is the figure's
    # geometry: ||W_i|| = 1.135, b_i = -0.246. Being within 2% of its loss pins that geometry down:
    # with the other parameters free, a gap 5° off costs +2.6%, a vertex at norm 1 +5.4%, a bias at 0
    # +19% (a frozen bias +295%), so the geometry is recorded and the loss is the check. Measured:
    # within 0.05% of the optimum.
    optimum = theory.pentagon_minima(1.0)
    excess = exact[level] / optimum.pentagon_loss - 1
    geometry_found = {
        "represented": shape.represented,
        "gap_error_deg": shape.gap_error,
        "biases": b,
        "norms": norms,
    }
    claim.record("best_restart_geometry", geometry_found)
    claim.figure(
        "pentagon",
        lambda fig: figures.feature_directions_2d(
            fig,
            W[None],
            ["density 0.05, I = 1"],
            title="uniform sparsity: the best restart's feature directions (a regular pentagon)",
        ),
    )
    claim.check(
        "optimal_pentagon",
        excess < 0.02,
        what="exact expected loss of the best restart over the optimum's (a regular pentagon, vertices at "
        "1.135, biases -0.246)",
        measured={"excess": excess, **geometry_found},
        bound="< 2%",
        value=float(excess),
        upper=0.02,
    )
    claim.regress("norms", np.sort(norms), rtol=1e-2)
    claim.regress("biases", np.sort(b), rtol=2e-2, atol=5e-3)


def _transition(rel: np.ndarray, labels: np.ndarray) -> float:
    """The first level, going from dense to sparse, whose label is the square (NaN if none)."""
    hits = [r for r, lab in sorted(zip(rel, labels, strict=True), reverse=True) if lab == "square"]
    return float(hits[0]) if hits else float("nan")


@pytest.mark.parametrize("tier", TIERS)
def test_pentagon_digon_transition(trained: Trained, claim: Claim, tier: ex.Tier) -> None:
    """ "If we make it sufficiently sparse, there's a phase change, and it collapses from a
    pentagon to a pair of digons with the sparser point at zero" (~2.5x sparser); "if we make it
    denser, the pentagon continuously deforms"."""
    result = trained(ex.pentagon_sweep(tier))
    rel = ex.relative_density(result.spec)
    W, _, best_loss = _best(result, _exact(result))
    labels = label_restarts(W)
    transition = _transition(rel, labels)
    held_out = label_restarts(select.best_of(result).W)
    claim.record("best_labels", dict(zip([f"{r:.3g}" for r in rel], labels, strict=True)))
    claim.record("transition", transition)
    claim.record("transition_held_out_selection", _transition(rel, held_out))
    claim.record(
        "restarts_per_label",
        {
            f"{r:.3g}": {str(k): int(v) for k, v in zip(*np.unique(row, return_counts=True), strict=True)}
            for r, row in zip(rel, label_restarts(result.W).reshape(len(rel), -1), strict=True)
        },
    )
    claim.figure(
        "polygons",
        lambda fig: figures.feature_directions_2d(
            fig,
            W,
            [f"{r:.2g}×\n{lab}" for r, lab in zip(rel, labels, strict=True)],
            groups=[1 if i == ex.VARIED else 0 for i in range(ex.N)],
            group_names=["features of density 1 − S", "the varied feature"],
            compact=True,
            title="n=5, m=2: best restart per relative density of the varied feature (sparser to the left)",
        ),
    )
    dense = rel >= PENTAGON_FROM
    claim.check(
        "dense_pentagon",
        np.all(labels[dense] == "pentagon"),
        what=f"best-of-k geometry at relative density >= {PENTAGON_FROM}",
        measured=dict(zip(rel[dense].round(3), labels[dense], strict=True)),
        bound="pentagon at every level",
    )
    # at the transition level 0.251 about half the restarts reach the square; at <= 0.2 every best restart
    # is the square with the varied feature at ||W|| < 0.01
    sparse = rel <= SQUARE_UPTO + 1e-9
    varied = metrics.feature_norms(W)[:, ex.VARIED]
    pairs = [len(geometry.antipodal_pairs(w, cos_max=-0.95)) for w in W]
    claim.check(
        "sparse_square",
        np.all(labels[sparse] == "square")
        and np.all(varied[sparse] < 0.2)
        and all(pairs[k] == 2 for k in np.flatnonzero(sparse)),
        what=f"best-of-k at relative density <= {SQUARE_UPTO}: two antipodal pairs, varied feature off",
        measured={"labels": labels[sparse], "varied_norm": varied[sparse], "pairs": np.array(pairs)[sparse]},
        bound="square (two digons, cos < -0.95) and ||W_varied|| < 0.2",
    )
    # Where the trained models switch, against the exact crossover (theory tier: inside the
    # bracket). The transition is grid-valued, so it is checked as two statements that can each be
    # calibrated: the sparse side is a search (some restart at the first level below the crossover
    # must find the square and beat every other geometry there: a count among restarts), the dense
    # side a level offset (a pentagon missed at a level above the crossover moves the transition up).
    crossover = theory.pentagon_crossover()
    below = int(np.flatnonzero(rel < crossover).max())
    losses = _exact(result)[below]
    level_labels = label_restarts(result.by_setting(result.W)[below])
    rivals = losses[level_labels != "square"]
    beat = int(np.sum((level_labels == "square") & (losses < (rivals.min() if rivals.size else np.inf))))
    claim.check(
        "square_wins_below_crossover",
        beat >= 1,
        what=f"restarts (of {result.spec.restarts}) at {rel[below]:.3g}x, the first level sparser than the "
        f"exact crossover ({crossover:.3g}x), that reach the square with a lower exact loss than every "
        "other geometry there",
        measured={"restarts": beat, "labels": level_labels, "exact_losses": losses},
        bound=">= 1",
        value=beat,
        lower=1,
        trials=result.spec.restarts,
    )
    offset = int(np.flatnonzero(np.isclose(rel, transition))[0]) - below if np.isfinite(transition) else 0
    claim.check(
        "transition_near_crossover",
        offset <= 1,
        what="levels from the first level sparser than the exact crossover up to the trained transition "
        f"(first level, going sparser, whose best-of-k is the square; bracket {BRACKET})",
        measured={"transition": transition, "levels_above": offset, "exact_crossover": crossover},
        bound="<= 1",
        value=offset,
        upper=1,
    )
    if tier == "fast":
        # pentagon levels only: a converged pentagon's loss is stable; near the transition the
        # best restart's geometry (and its loss) may flip between re-runs
        claim.regress("best_exact_loss_pentagon_levels", best_loss[dense], rtol=1e-2)


def _crossing(rel: np.ndarray, square: np.ndarray, pentagon: np.ndarray) -> tuple[float, int]:
    """Where square/pentagon - 1 changes sign (log-linear interpolation between the two levels
    around the change), over the levels where both geometries were found; and the number of
    sign changes (1 for a clean crossover)."""
    both = ~np.isnan(square) & ~np.isnan(pentagon)
    r, gap = rel[both], square[both] / pentagon[both] - 1
    order = np.argsort(r)
    r, gap = r[order], gap[order]
    sign = np.sign(gap)
    changes = np.flatnonzero(sign[:-1] != sign[1:])
    if changes.size == 0:
        return float("nan"), 0
    k = int(changes[0])
    t = gap[k] / (gap[k] - gap[k + 1])
    return float(np.exp(np.log(r[k]) + t * (np.log(r[k + 1]) - np.log(r[k])))), int(changes.size)


@pytest.mark.parametrize("tier", TIERS)
def test_pentagon_digon_loss_crossover(trained: Trained, claim: Claim, tier: ex.Tier) -> None:
    """The phase change is a crossing of the per-geometry loss curves: the lowest loss of the
    pentagon restarts and of the square restarts, against the varied feature's relative density."""
    result = trained(ex.pentagon_sweep(tier))
    rel = ex.relative_density(result.spec)
    labels = label_restarts(result.W).reshape(result.spec.settings, result.spec.restarts)
    exact = _exact(result)
    curves = select.best_by_label(exact, labels)
    nan = np.full(rel.size, np.nan)
    square, pentagon = curves.get("square", nan), curves.get("pentagon", nan)
    crossing, changes = _crossing(rel, square, pentagon)
    held_out = select.best_by_label(result.by_setting(result.eval_loss), labels)
    claim.record("square_curve", square)
    claim.record("pentagon_curve", pentagon)
    claim.record(
        "crossing_held_out", _crossing(rel, held_out.get("square", nan), held_out.get("pentagon", nan))[0]
    )
    th = [theory.pentagon_minima(float(r)) for r in rel]
    th_p = np.array([t.pentagon_loss if label_restarts(t.W_pentagon) == "pentagon" else np.nan for t in th])
    th_s = np.array([t.square_loss for t in th])
    claim.figure(
        "loss_curves",
        lambda fig: figures.loss_crossover(
            fig,
            rel,
            {"pentagon": pentagon, "square": square},
            {"pentagon": th_p, "square": th_s},
            crossings={"trained": crossing, "exact": theory.pentagon_crossover()},
            bracket=BRACKET,
            title="pentagon vs two digons (square): lowest loss per geometry",
        ),
    )
    claim.check(
        "one_crossing_in_bracket",
        changes == 1 and BRACKET[0] <= crossing <= BRACKET[1],
        what="trained: where the square's lowest loss overtakes the pentagon's (sign changes "
        "of square/pentagon - 1)",
        measured={"crossing": crossing, "sign_changes": changes},
        bound=f"one crossing, inside {BRACKET}",
        value=crossing,
        lower=BRACKET[0],
        upper=BRACKET[1],
    )
    # each level's best-of-k loss against the lower exact minimum there, pooled over the levels:
    # all but one within 2% (a level whose restarts all missed the lower geometry happens at about
    # one seed in ten: calibration/pentagon_digon_loss_crossover.json); 2% catches a model stopped
    # far from its minimum. Denser levels are left to the transition claim.
    upto = rel <= 1.0 + 1e-9
    per_level = (exact.min(axis=1) / np.fmin(th_p, th_s) - 1)[upto]
    second = float(np.sort(per_level)[-2])
    claim.record("excess_per_level", per_level)
    claim.record("best_excess_over_theory", float(np.max(per_level)))
    claim.check(
        "near_exact_minima",
        second < 0.02,
        what="second-largest excess of a level's best-of-k loss over the lower exact "
        "minimum (pentagon or square), relative density <= 1 (all levels but one within the bound)",
        measured={"second_largest": second, "per_level": per_level},
        bound="< 2%",
        value=second,
        upper=0.02,
    )
    if tier == "fast":
        claim.regress("trained_crossing", crossing, rtol=2e-2)


@pytest.mark.theory
@pytest.mark.claim("pentagon_digon_transition")
def test_pentagon_digon_theory(claim: Claim) -> None:
    """Where the phase change is, without training: the relative density where the square's exact
    expected-loss minimum overtakes the pentagon's (deterministic; compare the trained transition)."""
    crossover = theory.pentagon_crossover()
    claim.check(
        "exact_crossover_in_bracket",
        BRACKET[0] <= crossover <= BRACKET[1],
        what="relative density where the square's exact minimum overtakes the pentagon's",
        measured=crossover,
        bound=BRACKET,
        lower=BRACKET[0],
        upper=BRACKET[1],
    )
    below, above = theory.pentagon_minima(crossover * 0.9), theory.pentagon_minima(crossover * 1.1)
    claim.check(
        "exact_winners",
        below.square_loss < below.pentagon_loss and above.pentagon_loss < above.square_loss,
        what="the lower exact minimum 10% below / above the crossover",
        measured={
            "below": [below.square_loss, below.pentagon_loss],
            "above": [above.square_loss, above.pentagon_loss],
        },
        bound="square below, pentagon above",
    )
    claim.regress("theory_crossover", crossover, rtol=1e-3)
