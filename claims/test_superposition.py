"""Section "Demonstrating superposition" (n=20, m=5 sweeps; the n=5, m=2 opening figure).

Selection: per density level, the restart with the lowest held-out loss (the paper's "fit
multiple times, keep the lowest loss"); weights are never averaged across restarts.
Calibration (seeds 0-4, torch and numpy implementations) is recorded next to each bound.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from toymodel import geometry, metrics, models, select
from toymodel.claim import Claim
from toymodel.experiments import superposition as ex
from toymodel.result import Result
from toymodel.spec import Spec

pytestmark = pytest.mark.superposition

Trained = Callable[[Spec], Result]
REPRESENTED = 0.5  # ||W_i|| above this: the feature is represented
IN_SUPERPOSITION = 0.1  # superposition above this: the feature shares its direction


def _best_W(result: Result) -> tuple[np.ndarray, np.ndarray]:
    best = select.best_of(result)
    return best.W, best.b


def _top_m_checks(claim: Claim, W: np.ndarray, b: np.ndarray, levels: tuple[float, ...], m: int) -> None:
    norms = metrics.feature_norms(W)
    claim.check(np.all(np.abs(norms[:, :m] - 1) <= 0.05), what=f"||W_i|| of the top {m} features",
                measured=norms[:, :m], bound="within [0.95, 1.05] at every level")
    claim.check(np.all(norms[:, m:] < 0.05), what="||W_i|| of the other features",
                measured=norms[:, m:].max(axis=1), bound="< 0.05 at every level")
    top = metrics.interference(W[:, :, :m])
    claim.check(np.abs(top).max() < 0.05, what=f"max |WᵀW - diag| among the top {m}",
                measured=float(np.abs(top).max()), bound="< 0.05 (orthogonal)")
    # the unlearned features' bias is their mean, density/2. Seeds 0-4 x {torch, numpy}: largest
    # |mean b - d/2| 0.8e-3 at density 1 (0.2%), 0.36e-3 at 0.01 (7%), 0.22e-3 at 0.001 (44%: the
    # weakest features, I = 0.7^19, barely move); swapped density/sparsity is off by ~0.5
    dens = np.asarray(levels)
    mean_b = b[:, m:].mean(axis=1)
    ok = np.abs(mean_b - dens / 2) <= 0.25 * dens / 2 + 2e-4
    claim.check(np.all(ok), what="mean bias of the unlearned features",
                measured=mean_b, bound=f"density/2 = {dens / 2} within 25% + 2e-4")
    learned_b = np.abs(b[:, :m]).max()
    claim.check(learned_b < 0.05, what="|b_i| of the learned features", measured=float(learned_b),
                bound="< 0.05 (zero)")


def test_linear_top_m(trained: Trained, claim: Claim) -> None:
    """"Linear models learn the top m features": WᵀW is the identity on the m most important
    features and 0 elsewhere; the bias is 0 for learned features and the expected value for
    the others (n=20, m=5, I=0.7^i, every density)."""
    result = trained(ex.sparsity_sweep("linear", restarts=2))
    W, b = _best_W(result)
    _top_m_checks(claim, W, b, ex.DENSITIES, 5)
    claim.regress("best_eval_loss", result.by_setting(result.eval_loss).min(axis=1), rtol=1e-3)


def test_relu_dense_top_m(trained: Trained, claim: Claim) -> None:
    """"In the dense regime, ReLU output models also learn the top m features.\""""
    result = trained(ex.sparsity_sweep("relu_output"))
    W, b = _best_W(result)
    _top_m_checks(claim, W[:1], b[:1], ex.DENSITIES[:1], 5)


# the paper's Figure (n=20, m=5): features with ||W_i|| >~ 0.9 and features not in superposition
FIG_REPRESENTED = np.array([5, 7, 9, 10, 11, 12, 12])
FIG_ORTHOGONAL = np.array([5, 3, 1, 0, 0, 0, 0])


def test_relu_superposition_grows(trained: Trained, claim: Claim) -> None:
    """"As sparsity increases, superposition allows models to represent more features"
    (ReLU output, n=20, m=5, I=0.7^i)."""
    result = trained(ex.sparsity_sweep("relu_output"))
    W, _ = _best_W(result)
    f2 = metrics.frobenius_sq(W)
    norms, sup = metrics.feature_norms(W), metrics.superposition(W)
    claim.record("frobenius_sq", f2)
    claim.check(abs(f2[0] - 5) < 0.2, what="||W||_F^2 at density 1", measured=f2[0], bound="5 ± 0.2")
    claim.check(f2[-1] >= 12, what="||W||_F^2 at density 0.001", measured=f2[-1], bound=">= 12")
    # best-of-4 selection still lands in local minima: the largest drop below the running max over
    # seeds 0-4 x {torch, numpy} is 1.93 (torch seed 0: 12.25 at 0.03, 10.32 at 0.01). Measured
    # ||W||_F^2 at density 1: 4.9986-5.0005; at 0.001: 14.76-16.73. Counts: every run within ± 1
    # of the figure except one (8 vs 9 at density 0.1); orthogonal counts [5, 2-3, 1, 0, 0, 0, 0]
    drops = np.maximum.accumulate(f2) - f2
    claim.check(drops.max() <= 2.5, what="||W||_F^2 non-decreasing with sparsity (drop below the "
                "running max)", measured=f2, bound="drop <= 2.5")
    strong = (norms >= 0.9).sum(axis=1)
    orthogonal = ((norms > REPRESENTED) & (sup < IN_SUPERPOSITION)).sum(axis=1)
    claim.check(np.all(np.abs(strong - FIG_REPRESENTED) <= 2),
                what="features with ||W_i|| >= 0.9 per level", measured=strong,
                bound=f"{FIG_REPRESENTED.tolist()} ± 2 (figure)")
    claim.check(np.all(np.abs(orthogonal - FIG_ORTHOGONAL) <= 2),
                what="represented features not in superposition per level", measured=orthogonal,
                bound=f"{FIG_ORTHOGONAL.tolist()} ± 2 (figure)")
    claim.regress("frobenius_sq", f2, rtol=0.02, atol=0.05)


def _first_superposition_level(W: np.ndarray) -> int:
    norms, sup = metrics.feature_norms(W), metrics.superposition(W)
    shared = (norms > REPRESENTED) & (sup > IN_SUPERPOSITION)
    levels = np.flatnonzero(shared.any(axis=1))
    return int(levels[0]) if levels.size else -1


@pytest.mark.parametrize(("n", "m", "ratio", "spare_room"), [(20, 5, 0.7, True), (5, 2, 0.9, False)],
                         ids=["n20m5", "n5m2"])
def test_antipodal_first(trained: Trained, claim: Claim, n: int, m: int, ratio: float,
                         spare_room: bool) -> None:
    """"The most important features are initially untouched. This early superposition is
    organized in antipodal pairs" (the less important features pair up first)."""
    result = trained(ex.sparsity_sweep("relu_output", n=n, m=m, ratio=ratio))
    W, _ = _best_W(result)
    level = _first_superposition_level(W)
    claim.check(level > 0, what="first density level with superposition", measured=level,
                bound="a sparse level (index >= 1), never the dense one")
    Wl = W[level]
    norms, sup = metrics.feature_norms(Wl), metrics.superposition(Wl)
    shared = np.flatnonzero((norms > REPRESENTED) & (sup > IN_SUPERPOSITION))
    partners = geometry.antipodal_partners(Wl, cos_max=-0.9, threshold=REPRESENTED)
    unpaired = [int(i) for i in shared if partners[i] < 0 or partners[i] not in shared]
    claim.record("level_density", ex.DENSITIES[level])
    claim.check(not unpaired, what=f"features in superposition at density {ex.DENSITIES[level]} "
                "without an antipodal partner (cos < -0.9)", measured=unpaired, bound="none")
    solo = np.flatnonzero((norms > REPRESENTED) & (sup <= IN_SUPERPOSITION))
    if spare_room:  # n=20, m=5: the most important features keep their own dimension (with m=2
        # the first sparse level already puts all four represented features in two pairs)
        claim.check(solo.size >= 1 and solo.max() < shared.min(),
                    what="represented features outside superposition are the most important",
                    measured={"orthogonal": solo, "in_superposition": shared},
                    bound="every orthogonal feature more important than every superposed one")


def test_high_sparsity_interference(trained: Trained, claim: Claim) -> None:
    """"In the high sparsity regime, models put all features in superposition ... we begin to see
    positive interference and negative biases" (densities 0.003 and 0.001)."""
    result = trained(ex.sparsity_sweep("relu_output"))
    W, b = _best_W(result)
    for level in (5, 6):
        norms, sup = metrics.feature_norms(W[level]), metrics.superposition(W[level])
        rep = norms > REPRESENTED
        claim.check(sup[rep].min() > 0.5, what=f"min superposition of represented features at "
                    f"density {ex.DENSITIES[level]}", measured=float(sup[rep].min()), bound="> 0.5")
        claim.check(b[level, rep].min() < 0, what=f"most negative bias at density {ex.DENSITIES[level]}",
                    measured=float(b[level, rep].min()), bound="< 0")
        positive = metrics.interference(W[level])[np.ix_(rep, rep)].max()
        claim.check(positive > 0.05, what=f"largest positive interference at density {ex.DENSITIES[level]}",
                    measured=float(positive), bound="> 0.05")


def test_intro_pentagon(trained: Trained, claim: Claim) -> None:
    """Opening figure (n=5, m=2, I=0.9^i): dense, the two most important features get orthogonal
    dimensions; at density 0.2 the four most important form two antipodal pairs; at 0.1 all five
    form a pentagon "with positive interference"."""
    result = trained(ex.intro_pentagon())
    W, _ = _best_W(result)
    norms = metrics.feature_norms(W)
    dense = geometry.describe_2d(W[0])
    claim.check(dense.represented == (0, 1), what="represented features at density 1",
                measured=dense.represented, bound="exactly (0, 1)")
    cos01 = float(metrics.cosines(W[0])[0, 1])
    claim.check(abs(cos01) < 0.1, what="cos(W_0, W_1) at density 1", measured=cos01, bound="|cos| < 0.1")
    mid = geometry.describe_2d(W[1])
    cos = metrics.cosines(W[1])
    pair_cos = [float(cos[a, b]) for a, b in mid.pairs]
    claim.check(mid.represented == (0, 1, 2, 3) and len(mid.pairs) == 2 and max(pair_cos) < -0.95,
                what="density 0.2: features 0-3 as two antipodal pairs",
                measured={"represented": mid.represented, "pairs": mid.pairs, "cos": pair_cos},
                bound="features (0,1,2,3) in 2 pairs with cos < -0.95")
    claim.check(norms[1, 4] < 0.2, what="||W_4|| at density 0.2", measured=float(norms[1, 4]), bound="< 0.2")
    sparse = geometry.describe_2d(W[2])
    claim.check(sparse.represented == (0, 1, 2, 3, 4) and sparse.gap_error <= 5,
                what="density 0.1: a regular pentagon (max |gap - 72°|)",
                measured={"represented": sparse.represented, "gap_error_deg": sparse.gap_error},
                bound="5 represented, gaps 72° ± 5°")
    angles = geometry.angles_2d(W[2])
    order = np.argsort(angles)
    G = metrics.gram(W[2])
    neighbour_dots = np.array([G[order[i], order[(i + 1) % 5]] for i in range(5)])
    claim.check(np.all(neighbour_dots > 0), what="neighbouring pentagon vertices' dot products",
                measured=neighbour_dots, bound="> 0 (positive interference)")

    def draw(fig: object) -> None:
        axes = fig.subplots(1, 3)  # type: ignore[attr-defined]
        for ax, Wl, d in zip(axes, W, (1.0, 0.2, 0.1), strict=True):
            for i in range(5):
                ax.plot([0, Wl[0, i]], [0, Wl[1, i]], marker="o", label=str(i))
            ax.set_aspect("equal")
            ax.set_title(f"density {d}")
        axes[0].legend(fontsize=6)

    claim.figure("features", draw)


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
    per_sample = ((x - x @ G) ** 2 * imp[0]).sum(-1)[0]
    mc, se = float(per_sample.mean()), float(per_sample.std() / np.sqrt(per_sample.size))
    claim.check(abs(mc - formula) < 4 * se, what="linear loss, Monte Carlo vs formula",
                measured={"monte_carlo": mc, "formula": formula}, bound=f"within 4 SE ({4 * se:.3g})")

    b = rng.normal(0, 0.3, size=(1, n))
    zero = models.loss("relu_output", {"W": W, "b": b}, np.zeros((1, 4, n)), imp)[0]
    expected = float((imp[0] * np.maximum(b[0], 0) ** 2).sum())
    claim.check(abs(zero - expected) < 1e-12, what="loss of all-zero inputs",
                measured=float(zero), bound=f"Σ I_i ReLU(b_i)² = {expected:.6g}")

    # two features with negative interference and non-positive biases: 1-sparse inputs only pay
    # the feature-benefit term; flipping to positive interference adds loss
    Wn = np.array([[[1.0, -0.8]]])  # m=1: the two features point opposite ways
    bn = np.array([[0.0, -0.1]])
    vals = np.linspace(0.05, 1.0, 20)
    x1 = np.zeros((1, 40, 2))
    x1[0, :20, 0], x1[0, 20:, 1] = vals, vals
    out, _ = models.forward("relu_output", {"W": Wn, "b": bn}, x1)
    interference_cost = float((out[0, :20, 1] ** 2).sum() + (out[0, 20:, 0] ** 2).sum())
    claim.check(interference_cost == 0.0, what="interference cost on 1-sparse inputs (negative interference)",
                measured=interference_cost, bound="exactly 0")
    Wp = np.abs(Wn)
    outp, _ = models.forward("relu_output", {"W": Wp, "b": bn}, x1)
    positive_cost = float((outp[0, :20, 1] ** 2).sum() + (outp[0, 20:, 0] ** 2).sum())
    claim.check(positive_cost > 0.1, what="interference cost on 1-sparse inputs (positive interference)",
                measured=positive_cost, bound="> 0.1")


@pytest.mark.slow
def test_larger_model_rescaled(trained: Trained, claim: Claim) -> None:
    """The n=80, m=20 model (I=0.9^i) "is essentially a rescaled version" of the small one:
    features not in superposition per level ≈ 20, 14, 8, 4, 1, 0, 0 (figure)."""
    result = trained(ex.sparsity_sweep("relu_output", n=80, m=20, ratio=0.9, restarts=2))
    W, _ = _best_W(result)
    norms, sup = metrics.feature_norms(W), metrics.superposition(W)
    orthogonal = ((norms > REPRESENTED) & (sup < IN_SUPERPOSITION)).sum(axis=1)
    # measured (2 restarts): torch seeds 0-2 [20,15,8,4,0,0,0], [20,13,8,4,0,0,0], [20,14,8,3,1,0,0]
    # pass; numpy seed 0 [20,13,7,2,0,0,0] failed at density 0.03 (2 vs the figure's 4 ± 1) before its
    # per-shard streams. Seeds 0-9, both implementations (2026-11-30): 4 of 20 runs fail, every one
    # at density 0.03 with 2 (torch seed 8; numpy seeds 1, 2, 4); elsewhere 3-5 there, and 12-15 /
    # 7-9 / 0-1 at 0.3 / 0.1 / 0.01. With 8 restarts (torch seeds 0, 1, 2, 8; numpy 1, 2) a restart
    # has 2 at 0.03 in 9 of 48 (3-4 in 37); the mean count per level is 13.4-14.1 / 7.5-8.3 /
    # 3.12-3.62 / 0.38-0.75, and the best of 8 still has 2 once (numpy seed 1). So the typical
    # model has 3-4 features outside superposition at 0.03, below the figure's 4, and neither more
    # restarts nor a mean over restarts would make this check robust: the figure is reproduced only
    # approximately there. Bound not widened.
    figure = np.array([20, 14, 8, 4, 1, 0, 0])
    bound = np.maximum(np.ceil(0.2 * figure), 1)
    claim.check(np.all(np.abs(orthogonal - figure) <= bound),
                what="represented features not in superposition per level", measured=orthogonal,
                bound=f"{figure.tolist()} ± 20% (at least ± 1)")
