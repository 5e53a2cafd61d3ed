"""Section "Demonstrating superposition" (n=20, m=5 sweeps; the n=5, m=2 opening figure).

Selection: per density level, the restart with the lowest held-out loss (the paper's "fit
multiple times, keep the lowest loss"); weights are never averaged across restarts.
"""

from __future__ import annotations

import numpy as np
import pytest

from toymodel import models
from toymodel.analysis import geometry, metrics, select
from toymodel.experiments import superposition as ex
from toymodel.report import figures
from toymodel.result import Result
from toymodel.suite.claim import Claim, Trained

pytestmark = pytest.mark.superposition

REPRESENTED = 0.5  # ||W_i|| above this: the feature is represented
IN_SUPERPOSITION = 0.1  # superposition above this: the feature shares its direction


def _best_W(result: Result) -> tuple[np.ndarray, np.ndarray]:
    best = select.best_of(result)
    return best.W, best.b


def _top_m_checks(claim: Claim, W: np.ndarray, b: np.ndarray, levels: tuple[float, ...], m: int) -> None:
    norms = metrics.feature_norms(W)
    claim.check(
        "top_norms",
        np.all(np.abs(norms[:, :m] - 1) <= 0.05),
        what=f"||W_i|| of the top {m} features",
        measured=norms[:, :m],
        bound="within [0.95, 1.05] at every level",
        value=float(np.abs(norms[:, :m] - 1).max()),
        upper=0.05,
    )
    claim.check(
        "other_norms",
        np.all(norms[:, m:] < 0.05),
        what="||W_i|| of the other features",
        measured=norms[:, m:].max(axis=1),
        bound="< 0.05 at every level",
        value=float(norms[:, m:].max()),
        upper=0.05,
    )
    top = metrics.interference(W[:, :, :m])
    claim.check(
        "top_orthogonal",
        np.abs(top).max() < 0.05,
        what=f"max |WᵀW - diag| among the top {m}",
        measured=float(np.abs(top).max()),
        bound="< 0.05 (orthogonal)",
        upper=0.05,
    )
    # an unlearned feature's best bias is its mean, density/2; the weakest features (I = 0.7^19)
    # barely move at density 0.001, hence the absolute allowance; a density/sparsity swap is off by ~0.5
    dens = np.asarray(levels)
    mean_b = b[:, m:].mean(axis=1)
    ok = np.abs(mean_b - dens / 2) <= 0.25 * dens / 2 + 2e-4
    claim.check(
        "unlearned_bias",
        np.all(ok),
        what="mean bias of the unlearned features",
        measured=mean_b,
        bound=f"density/2 = {dens / 2} within 25% + 2e-4",
        value=float(np.max(np.abs(mean_b - dens / 2) / (0.25 * dens / 2 + 2e-4))),
        upper=1.0,
    )
    learned_b = np.abs(b[:, :m]).max()
    claim.check(
        "learned_bias",
        learned_b < 0.05,
        what="|b_i| of the learned features",
        measured=float(learned_b),
        bound="< 0.05 (zero)",
        upper=0.05,
    )


def test_linear_top_m(trained: Trained, claim: Claim) -> None:
    """ "Linear models learn the top m features": WᵀW is the identity on the m most important
    features and 0 elsewhere; the bias is 0 for learned features and the expected value for
    the others (n=20, m=5, I=0.7^i, every density)."""
    result = trained(ex.sparsity_sweep("linear"))
    W, b = _best_W(result)
    claim.figure(
        "sweep",
        lambda fig: figures.superposition_sweep(
            fig, W, ex.DENSITIES, title="linear model (n=20, m=5, I=0.7^i), best restart per density"
        ),
    )
    _top_m_checks(claim, W, b, ex.DENSITIES, 5)
    claim.regress("best_eval_loss", result.by_setting(result.eval_loss).min(axis=1), rtol=1e-3)


def test_relu_dense_top_m(trained: Trained, claim: Claim) -> None:
    """ "In the dense regime, ReLU output models also learn the top m features.\""""
    result = trained(ex.sparsity_sweep("relu_output"))
    W, b = _best_W(result)
    _top_m_checks(claim, W[:1], b[:1], ex.DENSITIES[:1], 5)


# the paper's Figure (n=20, m=5): features with ||W_i|| >~ 0.9 and features not in superposition
FIG_REPRESENTED = np.array([5, 7, 9, 10, 11, 12, 12])
FIG_ORTHOGONAL = np.array([5, 3, 1, 0, 0, 0, 0])
#: largest drop of ||W||_F^2 below its running maximum over the sweep: best-of-4 selection still
#: lands in local minima (a drop of ~2 has been measured), a sweep that loses features does more
F2_DROP = 2.5
#: largest distance of the restarts' mean count of strong features (||W_i|| >= 0.9) from the
#: figure's, over the levels (calibration/relu_superposition_grows.json)
STRONG_TOL = 1.5


def test_relu_superposition_grows(trained: Trained, claim: Claim) -> None:
    """ "As sparsity increases, superposition allows models to represent more features"
    (ReLU output, n=20, m=5, I=0.7^i), and it takes the nonlinearity: the linear model trained
    on the same data (same seed and budget) keeps exactly the top m features at every density."""
    result = trained(ex.sparsity_sweep("relu_output"))
    W, _ = _best_W(result)
    f2 = metrics.frobenius_sq(W)
    norms, sup = metrics.feature_norms(W), metrics.superposition(W)
    claim.record("frobenius_sq", f2)
    claim.figure(
        "sweep",
        lambda fig: figures.superposition_sweep(
            fig, W, ex.DENSITIES, title="ReLU output model (n=20, m=5, I=0.7^i), best restart per density"
        ),
    )
    claim.check(
        "dense_frobenius",
        abs(f2[0] - 5) < 0.2,
        what="||W||_F^2 at density 1",
        measured=f2[0],
        bound="5 ± 0.2",
        value=float(abs(f2[0] - 5)),
        upper=0.2,
    )
    claim.check(
        "sparse_frobenius",
        f2[-1] >= 12,
        what="||W||_F^2 at density 0.001",
        measured=f2[-1],
        bound=">= 12",
        lower=12.0,
    )
    drops = np.maximum.accumulate(f2) - f2
    claim.check(
        "frobenius_nondecreasing",
        drops.max() <= F2_DROP,
        what="||W||_F^2 non-decreasing with sparsity (drop below the running max)",
        measured=f2,
        bound=f"drop <= {F2_DROP}",
        value=float(drops.max()),
        upper=F2_DROP,
    )
    # every restart's count, averaged: the best restart's count is off the figure's by one feature
    # at some level in most runs (a norm near the 0.9 threshold), by two now and then
    strong = (metrics.feature_norms(result.by_setting(result.W)) >= 0.9).sum(axis=-1).mean(axis=1)
    orthogonal = ((norms > REPRESENTED) & (sup < IN_SUPERPOSITION)).sum(axis=1)
    claim.check(
        "strong_counts",
        np.all(np.abs(strong - FIG_REPRESENTED) <= STRONG_TOL),
        what="features with ||W_i|| >= 0.9 per level, mean over restarts",
        measured=strong,
        bound=f"{FIG_REPRESENTED.tolist()} ± {STRONG_TOL} (figure)",
        value=float(np.abs(strong - FIG_REPRESENTED).max()),
        upper=STRONG_TOL,
    )
    claim.check(
        "orthogonal_counts",
        np.all(np.abs(orthogonal - FIG_ORTHOGONAL) <= 2),
        what="represented features not in superposition per level",
        measured=orthogonal,
        bound=f"{FIG_ORTHOGONAL.tolist()} ± 2 (figure)",
        value=float(np.abs(orthogonal - FIG_ORTHOGONAL).max()),
        upper=2,
    )
    # the contrast: without the ReLU the extra features cost more interference than they are worth
    linear, _ = _best_W(trained(ex.sparsity_sweep("linear")))
    gained = metrics.represented(W).sum(axis=1) - metrics.represented(linear).sum(axis=1)
    claim.record("represented_minus_linear", gained)
    claim.check(
        "nonlinearity_contrast",
        gained[0] == 0 and gained[-1] >= LINEAR_GAIN,
        what="represented features (||W_i|| > 0.5), ReLU model minus the linear model trained on "
        "the same data, at densities 1 and 0.001",
        measured=gained,
        bound=f"0 when dense, >= {LINEAR_GAIN} at density 0.001",
        value=float(gained[-1]),
        lower=LINEAR_GAIN,
    )
    claim.regress("frobenius_sq", f2, rtol=0.02, atol=0.05)


#: the ReLU model represents at least this many more features than the linear one at density
#: 0.001 (the figure: 12 against the linear model's 5)
LINEAR_GAIN = 5


def _first_superposition_level(W: np.ndarray) -> int:
    norms, sup = metrics.feature_norms(W), metrics.superposition(W)
    shared = (norms > REPRESENTED) & (sup > IN_SUPERPOSITION)
    levels = np.flatnonzero(shared.any(axis=1))
    return int(levels[0]) if levels.size else -1


@pytest.mark.parametrize(
    ("n", "m", "ratio", "spare_room"), [(20, 5, 0.7, True), (5, 2, 0.9, False)], ids=["n20m5", "n5m2"]
)
def test_antipodal_first(
    trained: Trained, claim: Claim, n: int, m: int, ratio: float, spare_room: bool
) -> None:
    """ "The most important features are initially untouched. This early superposition is
    organized in antipodal pairs" (the less important features pair up first)."""
    result = trained(ex.sparsity_sweep("relu_output", n=n, m=m, ratio=ratio))
    W, _ = _best_W(result)
    level = _first_superposition_level(W)
    claim.check(
        "first_level",
        level > 0,
        what="first density level with superposition",
        measured=level,
        bound="a sparse level (index >= 1), never the dense one",
        lower=1,
    )
    Wl = W[level]
    norms, sup = metrics.feature_norms(Wl), metrics.superposition(Wl)
    shared = np.flatnonzero((norms > REPRESENTED) & (sup > IN_SUPERPOSITION))
    partners = geometry.antipodal_partners(Wl, cos_max=-0.9, threshold=REPRESENTED)
    # interference from represented features only: a feature whose whole superposition is the leak
    # of unrepresented ones (||W_j|| < REPRESENTED, lined up with it) shares its dimension with none
    with_represented = metrics.superposition(Wl * (norms > REPRESENTED)) > IN_SUPERPOSITION
    unpaired = [
        int(i) for i in shared if with_represented[i] and (partners[i] < 0 or partners[i] not in shared)
    ]
    claim.record("level_density", ex.DENSITIES[level])
    claim.check(
        "antipodal_pairs",
        not unpaired,
        what=f"features in superposition with represented features at density "
        f"{ex.DENSITIES[level]} without an antipodal partner (cos < -0.9)",
        measured=unpaired,
        bound="none",
        value=len(unpaired),
        upper=0,
    )
    solo = np.flatnonzero((norms > REPRESENTED) & (sup <= IN_SUPERPOSITION))
    if spare_room:  # n=20, m=5: the most important features keep their own dimension (with m=2
        # the first sparse level already puts all four represented features in two pairs)
        claim.check(
            "important_untouched",
            solo.size >= 1 and shared.size >= 1 and solo.max() < shared.min(),
            what="represented features outside superposition are the most important",
            measured={"orthogonal": solo, "in_superposition": shared},
            bound="every orthogonal feature more important than every superposed one",
        )


#: the median bias of the represented features at densities 0.003 and 0.001 is below this (dense
#: levels sit at |b| < 0.05; the sparse ones measured near -0.15)
SPARSE_BIAS = -0.05


def test_high_sparsity_interference(trained: Trained, claim: Claim) -> None:
    """ "In the high sparsity regime, models put all features in superposition ... we begin to see
    positive interference and negative biases" (densities 0.003 and 0.001)."""
    result = trained(ex.sparsity_sweep("relu_output"))
    W, b = _best_W(result)
    for level in (5, 6):
        density = ex.DENSITIES[level]
        norms, sup = metrics.feature_norms(W[level]), metrics.superposition(W[level])
        rep = norms > REPRESENTED
        claim.check(
            "all_superposed",
            sup[rep].min() > 0.5,
            what=f"min superposition of represented features at density {density}",
            measured=float(sup[rep].min()),
            bound="> 0.5",
            lower=0.5,
        )
        median_b = float(np.median(b[level, rep]))
        claim.check(
            "negative_biases",
            median_b < SPARSE_BIAS,
            what=f"median bias of the represented features at density {density}",
            measured={"median": median_b, "biases": np.sort(b[level, rep])},
            bound=f"< {SPARSE_BIAS}",
            value=median_b,
            upper=SPARSE_BIAS,
        )
        positive = metrics.interference(W[level])[np.ix_(rep, rep)].max()
        claim.check(
            "positive_interference",
            positive > 0.05,
            what=f"largest positive interference at density {density}",
            measured=float(positive),
            bound="> 0.05",
            lower=0.05,
        )


def test_intro_pentagon(trained: Trained, claim: Claim) -> None:
    """Opening figure (n=5, m=2, I=0.9^i): dense, the two most important features get orthogonal
    dimensions; at density 0.2 the four most important form two antipodal pairs; at 0.1 all five
    form a pentagon "with positive interference" (a regular pentagon's neighbours sit 72° apart)."""
    result = trained(ex.intro_pentagon())
    W, _ = _best_W(result)
    norms = metrics.feature_norms(W)
    dense = geometry.describe_2d(W[0])
    claim.check(
        "dense_represented",
        dense.represented == (0, 1),
        what="represented features at density 1",
        measured=dense.represented,
        bound="exactly (0, 1)",
    )
    cos01 = float(metrics.cosines(W[0])[0, 1])
    claim.check(
        "dense_orthogonal",
        abs(cos01) < 0.1,
        what="cos(W_0, W_1) at density 1",
        measured=cos01,
        bound="|cos| < 0.1",
        value=abs(cos01),
        upper=0.1,
    )
    mid = geometry.describe_2d(W[1])
    cos = metrics.cosines(W[1])
    pair_cos = [float(cos[a, b]) for a, b in mid.pairs]
    claim.check(
        "mid_pairs",
        mid.represented == (0, 1, 2, 3) and len(mid.pairs) == 2 and max(pair_cos) < -0.95,
        what="density 0.2: features 0-3 as two antipodal pairs",
        measured={"represented": mid.represented, "pairs": mid.pairs, "cos": pair_cos},
        bound="features (0,1,2,3) in 2 pairs with cos < -0.95",
        value=max(pair_cos, default=1.0),
        upper=-0.95,
    )
    claim.check(
        "mid_least_important_off",
        norms[1, 4] < 0.2,
        what="||W_4|| at density 0.2",
        measured=float(norms[1, 4]),
        bound="< 0.2",
        upper=0.2,
    )
    sparse = geometry.describe_2d(W[2])
    claim.check(
        "sparse_pentagon",
        sparse.represented == (0, 1, 2, 3, 4) and sparse.gap_error <= 5,
        what="density 0.1: a regular pentagon (max |gap - 72°|)",
        measured={"represented": sparse.represented, "gap_error_deg": sparse.gap_error},
        bound="5 represented, gaps 72° ± 5°",
        value=float(sparse.gap_error),
        upper=5,
    )
    order = np.argsort(geometry.angles_2d(W[2]))
    G = metrics.gram(W[2])
    claim.record("pentagon_neighbour_dots", [float(G[order[i], order[(i + 1) % 5]]) for i in range(5)])

    claim.figure(
        "features",
        lambda fig: figures.feature_directions_2d(
            fig,
            W,
            [f"density {d}" for d in (1.0, 0.2, 0.1)],
            title="n=5, m=2, I=0.9^i: feature directions W_i (best restart; feature 0 most important)",
        ),
    )


@pytest.mark.theory
def test_math_identities(claim: Claim) -> None:
    """The paper's closed forms: for Gaussian x and no bias the linear loss is
    Σ I_i (1 - ||W_i||²)² + Σ_{i≠j} I_j (W_j·W_i)²; an all-zero input costs Σ I_i ReLU(b_i)²; and
    "negative interference ... is 'free' in the 1-sparse case" for the ReLU output model."""
    rng = np.random.default_rng(12345)
    n, m = 8, 3
    W = rng.normal(0, 0.5, size=(1, m, n))
    imp = rng.uniform(0.2, 1.0, size=(1, n))
    G = W[0].T @ W[0]
    off = G - np.diag(np.diag(G))
    formula = float((imp[0] * (1 - np.diag(G)) ** 2).sum() + (imp[0][:, None] * off**2).sum())
    x = rng.normal(size=(1, 200_000, n))
    out, _ = models.forward("linear", {"W": W, "b": np.zeros((1, n))}, x)
    per_sample = ((x - out) ** 2 * imp[0]).sum(-1)[0]
    mc, se = float(per_sample.mean()), float(per_sample.std() / np.sqrt(per_sample.size))
    claim.check(
        "linear_loss_formula",
        abs(mc - formula) < 4 * se,
        what="linear loss, Monte Carlo vs formula",
        measured={"monte_carlo": mc, "formula": formula},
        bound=f"within 4 SE ({4 * se:.3g})",
    )

    b = rng.normal(0, 0.3, size=(1, n))
    zero = models.loss("relu_output", {"W": W, "b": b}, np.zeros((1, 4, n)), imp)[0]
    expected = float((imp[0] * np.maximum(b[0], 0) ** 2).sum())
    claim.check(
        "zero_input_loss",
        abs(zero - expected) < 1e-12,
        what="loss of all-zero inputs",
        measured=float(zero),
        bound=f"Σ I_i ReLU(b_i)² = {expected:.6g}",
    )

    # two features with negative interference and non-positive biases: 1-sparse inputs only pay
    # the feature-benefit term; flipping to positive interference adds loss
    Wn = np.array([[[1.0, -0.8]]])  # m=1: the two features point opposite ways
    bn = np.array([[0.0, -0.1]])
    vals = np.linspace(0.05, 1.0, 20)
    x1 = np.zeros((1, 40, 2))
    x1[0, :20, 0], x1[0, 20:, 1] = vals, vals
    out, _ = models.forward("relu_output", {"W": Wn, "b": bn}, x1)
    interference_cost = float((out[0, :20, 1] ** 2).sum() + (out[0, 20:, 0] ** 2).sum())
    claim.check(
        "negative_interference_free",
        interference_cost == 0.0,
        what="interference cost on 1-sparse inputs (negative interference)",
        measured=interference_cost,
        bound="exactly 0",
    )
    outp, _ = models.forward("relu_output", {"W": np.abs(Wn), "b": bn}, x1)
    positive_cost = float((outp[0, :20, 1] ** 2).sum() + (outp[0, 20:, 0] ** 2).sum())
    claim.check(
        "positive_interference_costs",
        positive_cost > 0.1,
        what="interference cost on 1-sparse inputs (positive interference)",
        measured=positive_cost,
        bound="> 0.1",
    )


@pytest.mark.slow
def test_larger_model_rescaled(trained: Trained, claim: Claim) -> None:
    """The n=80, m=20 model (I=0.9^i) "is essentially a rescaled version" of the small one:
    features not in superposition per level ≈ 20, 14, 8, 4, 1, 0, 0 (figure)."""
    result = trained(ex.sparsity_sweep("relu_output", n=80, m=20, ratio=0.9, restarts=2))
    W, _ = _best_W(result)
    norms, sup = metrics.feature_norms(W), metrics.superposition(W)
    orthogonal = ((norms > REPRESENTED) & (sup < IN_SUPERPOSITION)).sum(axis=1)
    # at density 0.03 the typical model has 3-4 features outside superposition, below the figure's
    # 4, and 2 in about one restart of five (CLAIMS.md, measured departures); bound not widened
    figure = np.array([20, 14, 8, 4, 1, 0, 0])
    bound = np.maximum(np.ceil(0.2 * figure), 1)
    claim.check(
        "orthogonal_counts",
        np.all(np.abs(orthogonal - figure) <= bound),
        what="represented features not in superposition per level",
        measured=orthogonal,
        bound=f"{figure.tolist()} ± 20% (at least ± 1)",
        value=float(np.max(np.abs(orthogonal - figure) - bound)),
        upper=0,
    )
