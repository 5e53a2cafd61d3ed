"""Section "superposition in a privileged basis" (ReLU-hidden, n=10, m=5, I=0.75^i).

Selection: per density, the restart with the lowest held-out loss (the paper kept the best of
1000 models). A neuron is monosemantic when its largest |input weight| is >= 90% of its weights'
norm (metrics.monosemantic_neurons). A feature "is on" neuron j when W_ji > 0 (a ReLU neuron only
fires for excitatory weights on non-negative inputs) and W_ji is at least half its strongest
weight (metrics.neurons_per_feature(sign="positive")).
"""

from __future__ import annotations

import numpy as np
import pytest

from toymodel.analysis import metrics, select
from toymodel.experiments import privileged as ex
from toymodel.suite.claim import Claim, Trained

pytestmark = pytest.mark.privileged


@pytest.mark.parametrize("tier", ["fast", pytest.param("paper", marks=pytest.mark.slow)])
def test_privileged_basis_regimes(trained: Trained, claim: Claim, tier: ex.Tier) -> None:
    """Neurons go from monosemantic (dense, density >~ 0.5) through mixed regimes to a regime
    where "each feature is a pair of neurons" (density <~ 0.04) (ReLU hidden, n=10, m=5,
    I=0.75^i, best of many restarts: 8 per density and 24 at density 0.02 in the fast tier)."""
    regimes, pairs = trained(ex.regimes(tier)), trained(ex.pairs(tier))
    W = np.concatenate([select.best_of(regimes).W, select.best_of(pairs).W])
    densities = (*ex.DENSITIES, ex.PAIRS_DENSITY)
    mono = metrics.monosemantic_neurons(W).sum(axis=-1)
    on_two = (metrics.neurons_per_feature(W, sign="positive") == 2).sum(axis=-1)
    claim.record("density", densities)
    claim.record("monosemantic", mono)
    claim.record("features_on_two_neurons", on_two)
    at = densities.index(0.7)
    claim.check(
        "monosemantic_dense",
        mono[at] == 5,
        what="monosemantic neurons at density 0.7",
        measured=int(mono[at]),
        bound="all 5",
        lower=5,
    )
    # best of 8 per density measured [5, 5, 3, 0, 0]; best of 4 did not always find the mixed
    # regimes' lowest-loss geometry
    # over the regimes' levels; the pairs level (where a single neuron can stay monosemantic beside
    # the pairs: 1 of 10 calibration seeds) is judged by the pairs themselves, below
    swept = mono[: len(ex.DENSITIES)]
    rises = int(np.max(swept[1:] - np.minimum.accumulate(swept)[:-1]))
    claim.check(
        "non_increasing",
        rises <= MONO_RISE,
        what=f"monosemantic count non-increasing with sparsity over densities {ex.DENSITIES} (rise above "
        "the running min)",
        measured=swept,
        bound=f"rise <= {MONO_RISE}",
        value=rises,
        upper=MONO_RISE,
    )
    # the lowest-loss solution at 0.02, read as "a restart within one standard error of the lowest
    # held-out loss": an 8-pair restart can tie a 10-pair one (0.1% apart) and win the selection
    near = select.near_best(pairs)[0]
    pair_counts = (metrics.neurons_per_feature(pairs.W, sign="positive") == 2).sum(axis=-1)
    best_near = int(pair_counts[near].max())
    claim.record("features_on_two_neurons_near_best", pair_counts[near])
    claim.check(
        "neuron_pairs",
        best_near >= PAIRS_MIN,
        what=f"features on exactly two neurons at density {ex.PAIRS_DENSITY}, in a restart within one "
        "standard error of the lowest held-out loss",
        measured={"near_best_restarts": np.flatnonzero(near), "features_on_two_neurons": pair_counts[near]},
        bound=f">= {PAIRS_MIN} of 10",
        value=best_near,
        lower=PAIRS_MIN,
    )
    if tier == "fast":
        best_loss = np.concatenate([select.best_of(regimes).eval_loss, select.best_of(pairs).eval_loss])
        claim.regress("best_eval_loss", best_loss, rtol=0.01)


#: the linear model is trained (not a random W): WᵀW is the projector onto the top 5 features
#: (measured max |WᵀW - P| 0.004-0.012; an untrained W is ~1 away)
LINEAR_PROJECTOR_TOL = 0.05
#: its neurons need not align: monosemantic neurons per restart measured 0-2
LINEAR_MONO_MAX = 2
MONO_RISE = 0
PAIRS_MIN = 9


def test_privileged_basis_interpretable(trained: Trained, claim: Claim) -> None:
    """ "A privileged basis makes W directly interpretable": dense, the ReLU-hidden model's
    neurons align with features; the linear model trained on the same data learns the same
    subspace (WᵀW projects onto the top 5 features) but is only determined up to a rotation of the
    hidden space, so its neurons need not align."""
    best = select.best_of(trained(ex.regimes()))
    relu = best.W[ex.DENSITIES.index(1.0)]
    relu_mono = int(metrics.monosemantic_neurons(relu).sum())
    claim.check(
        "relu_aligned",
        relu_mono == 5,
        what="monosemantic neurons, dense ReLU-hidden",
        measured=relu_mono,
        bound="all 5",
        lower=5,
    )
    linear = trained(ex.linear_counterpart())
    projector = np.diag([1.0] * 5 + [0.0] * 5)
    off = np.abs(metrics.gram(linear.W) - projector).max(axis=(-2, -1))
    claim.check(
        "linear_trained",
        np.all(off < LINEAR_PROJECTOR_TOL),
        what="max |WᵀW - P_top5| of the linear model, per restart",
        measured=off,
        bound=f"< {LINEAR_PROJECTOR_TOL} in every restart",
        value=float(off.max()),
        upper=LINEAR_PROJECTOR_TOL,
    )
    lin_mono = metrics.monosemantic_neurons(linear.W).sum(axis=-1)
    claim.record("linear_monosemantic_per_restart", lin_mono)
    claim.check(
        "linear_not_aligned",
        np.median(lin_mono) <= LINEAR_MONO_MAX,
        what="monosemantic neurons of the linear model (median over restarts)",
        measured=lin_mono,
        bound=f"<= {LINEAR_MONO_MAX} of 5",
        value=float(np.median(lin_mono)),
        upper=LINEAR_MONO_MAX,
    )
    claim.regress(
        "dense_eval_loss", [best.eval_loss[ex.DENSITIES.index(1.0)], linear.eval_loss.min()], rtol=0.01
    )
