"""Section "computation in superposition": the absolute-value model computes |x| with ReLU(x) and
ReLU(-x) neurons, and becomes polysemantic as the features get sparser.

Selection: per setting, the restart with the lowest held-out loss. A neuron is monosemantic when
its largest |input weight| is >= 90% of its input weights' norm (metrics.monosemantic_neurons;
dead neurons never count).
"""

from __future__ import annotations

import numpy as np
import pytest

from toymodel.analysis import metrics, select
from toymodel.experiments import computation as ex
from toymodel.result import Result
from toymodel.suite.claim import Claim, Trained

pytestmark = pytest.mark.computation

#: held-out loss of the best abs-basic restart (measured ~1e-9; a restart that misses one
#: feature's pair sits at 0.07)
BASIC_LOSS = 1e-4
#: fast tier (n=20, m=8): the best restart's monosemantic neurons over the densities go from 8 to
#: 0-1 (calibration/abs_value_sparsity.json); a density/sparsity swap rises to 8 at the sparse end.
#: The trend is judged on the restarts' mean count, allowing it to rise by one neuron: at the sparse
#: end a restart keeps a monosemantic neuron or two now and then, at some seeds in most restarts.
FAST_DENSE_MIN, FAST_SPARSE_MAX, FAST_RISE = 7, 2, 1.0


def test_abs_value_basic(trained: Trained, claim: Claim) -> None:
    """ "Each feature gets a ReLU(x) and a ReLU(−x) neuron" (n=3, m=6, dense, inputs U[−1, 1],
    target |x|)."""
    result = trained(ex.abs_basic())
    best = select.best_of(result)
    W = best.W[0]
    feature, weight = metrics.dominant_feature(W)
    per_feature = {i: np.sign(weight[feature == i]).astype(int).tolist() for i in range(W.shape[1])}
    claim.record("dominant_input_signs_per_feature", per_feature)
    claim.record("monosemantic_neurons", int(metrics.monosemantic_neurons(W).sum()))
    # computing |x| exactly with m = 6 ReLU neurons leaves one way: a ReLU(x_i) and a ReLU(-x_i)
    # neuron per feature (a neuron reading a mix of features puts kinks off the axes that cost
    # ~0.05 of loss); so the structure is checked by the loss, and recorded above
    loss = float(best.eval_loss[0])
    claim.check(
        "near_zero_loss",
        loss < BASIC_LOSS,
        what="held-out loss of the best restart (exact |x| takes a ReLU(x) and ReLU(-x) neuron per feature)",
        measured=loss,
        bound=f"< {BASIC_LOSS} (predicting 0 costs n/3 = 1; a missed pair ~0.05)",
        upper=BASIC_LOSS,
    )
    claim.regress("eval_loss", loss, rtol=0.0, atol=1e-4)


def _monosemantic_counts(result: Result) -> tuple[np.ndarray, np.ndarray]:
    """(the best restart's count per density, the restarts' mean count per density)."""
    every = metrics.monosemantic_neurons(result.by_setting(result.W)).sum(axis=-1)
    return metrics.monosemantic_neurons(select.best_of(result).W).sum(axis=-1), every.mean(axis=1)


def _check_sparsity(
    claim: Claim,
    both: tuple[np.ndarray, np.ndarray],
    m: int,
    dense_min: int,
    sparse_max: int,
    allowance: float,
) -> None:
    counts, mean = both
    claim.record("density", ex.DENSITIES)
    claim.record("monosemantic", counts)
    claim.record("monosemantic_mean_over_restarts", mean)
    claim.check(
        "dense_monosemantic",
        counts[0] >= dense_min,
        what="monosemantic neurons at density 1",
        measured=int(counts[0]),
        bound=f">= {dense_min} of {m}",
        lower=dense_min,
    )
    claim.check(
        "sparse_polysemantic",
        counts[-1] <= sparse_max,
        what="monosemantic neurons at density 0.001",
        measured=int(counts[-1]),
        bound=f"<= {sparse_max} of {m}",
        upper=sparse_max,
    )
    rises = float(np.max(mean[1:] - np.minimum.accumulate(mean)[:-1]))
    claim.check(
        "non_increasing",
        rises <= allowance,
        what="monosemantic count, mean over restarts, non-increasing as density falls "
        "(rise above the running min)",
        measured=mean,
        bound=f"rise <= {allowance:g}",
        value=rises,
        upper=allowance,
    )


def test_abs_value_sparsity(trained: Trained, claim: Claim) -> None:
    """ "As sparsity increases, neurons go from monosemantic to polysemantic" (fast tier: n=20,
    m=8, I=0.8^i, the seven densities; the paper's n=100, m=40 is the slow variant)."""
    result = trained(ex.abs_sparsity())
    counts = _monosemantic_counts(result)
    _check_sparsity(
        claim,
        counts,
        result.spec.m,
        dense_min=FAST_DENSE_MIN,
        sparse_max=FAST_SPARSE_MAX,
        allowance=FAST_RISE,
    )
    claim.regress("best_eval_loss", select.best_of(result).eval_loss, rtol=0.02)


@pytest.mark.slow
@pytest.mark.claim("abs_value_sparsity")
def test_abs_value_sparsity_paper(trained: Trained, claim: Claim) -> None:
    """The paper's configuration: n=100, m=40, I=0.8^i, the seven densities."""
    result = trained(ex.abs_sparsity(n=100, m=40, restarts=2))
    counts = _monosemantic_counts(result)
    _check_sparsity(claim, counts, 40, dense_min=36, sparse_max=8, allowance=3)
