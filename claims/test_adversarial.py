"""Section "adversarial and L1": an L1 penalty on the hidden activations removes superposition;
superposition makes models vulnerable to adversarial examples.

Selection: per setting, the restart with the lowest held-out loss (held-out losses exclude the L1
term, so they measure reconstruction only). The vulnerability metric is defined and unit-tested in
:mod:`toymodel.adversarial`. Calibration (seeds 0-4, torch and numpy) is recorded next to each
bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from toymodel import adversarial, metrics, select
from toymodel.claim import Claim, Trained
from toymodel.experiments import adversarial as ex
from toymodel.experiments import superposition as sup_ex

pytestmark = pytest.mark.adversarial


def test_l1_removes_superposition(trained: Trained, claim: Claim) -> None:
    """An L1 penalty λ‖h‖₁ on the hidden activations "removes superposition, at a loss cost"
    (ReLU output, n=20, m=5, I=0.7^i, density 0.03, λ swept; the held-out loss excludes the
    penalty)."""
    result = trained(ex.l1_sweep())
    best = select.best_of(result)
    lambdas = np.asarray(ex.L1_LAMBDAS)
    m = result.spec.m
    f2 = metrics.frobenius_sq(best.W)
    rep = metrics.represented(best.W)
    clean = rep & (metrics.superposition(best.W) < IN_SUPERPOSITION)
    claim.record("lambda", lambdas)
    claim.record("frobenius_sq", f2)
    claim.record("represented", rep.sum(axis=1))
    claim.record("represented_outside_superposition", clean.sum(axis=1))
    claim.record("eval_loss", best.eval_loss)
    claim.check(
        "superposition_without_penalty",
        f2[0] > 1.5 * m,
        what="||W||_F^2 without the penalty (superposition to remove)",
        measured=float(f2[0]),
        bound=f"> 1.5 m = {1.5 * m}",
    )
    rises = float(np.max(f2[1:] - np.minimum.accumulate(f2)[:-1]))
    claim.check(
        "frobenius_non_increasing",
        rises <= F2_NOISE,
        what="||W||_F^2 non-increasing in λ (rise above the running min)",
        measured=f2,
        bound=f"rise <= {F2_NOISE}",
    )
    # superposition removed, not everything: some λ leaves ||W||_F^2 <= m (at most one feature per
    # dimension) while >= m - 1 features are still represented. (An L1 penalty does not charge an
    # antipodal pair on a neuron axis, so such a pair may survive: seed 0 keeps one at λ = 0.1.)
    removed = (f2 <= m) & (rep.sum(axis=1) >= m - 1)
    claim.check(
        "superposition_removed",
        removed.any(),
        what=f"a λ with ||W||_F^2 <= m = {m} and >= {m - 1} features represented",
        measured={"frobenius_sq": f2, "represented": rep.sum(axis=1)},
        bound="at least one λ",
    )
    drops = float(np.max(np.maximum.accumulate(best.eval_loss)[:-1] - best.eval_loss[1:]))
    claim.check(
        "loss_cost",
        drops <= LOSS_NOISE * best.eval_loss[0],
        what="held-out loss non-decreasing in λ (drop below the running max)",
        measured=best.eval_loss,
        bound=f"drop <= {LOSS_NOISE:.0%} of the λ = 0 loss",
    )
    claim.regress("frobenius_sq", f2, rtol=0.02, atol=0.05)
    claim.regress("eval_loss", best.eval_loss, rtol=0.01)


IN_SUPERPOSITION = 0.1  # as in the superposition section
# measured over seeds 0-4, torch and numpy (λ = 0, 0.03, 0.1, 0.3): ||W||_F^2 9.85-12.43,
# 6.68-7.51, 3.70-4.54, 0.88-1.71 (never a rise); represented at λ = 0.1: 4-5; held-out loss
# 1.13-1.49e-3, 2.29-3.01e-3, 5.50-7.97e-3, 15.9-23.0e-3. λ = 0.01 was dropped: its loss
# (1.2-2.0e-3) overlaps the spread of the unpenalised model's local minima (best of 2), so "loss
# non-decreasing" failed on seed 2.
F2_NOISE = 0.5
LOSS_NOISE = 0.02


def test_adversarial_vulnerability(trained: Trained, claim: Claim) -> None:
    """ "Vulnerability to adversarial examples sharply increases as superposition forms (increases
    by >3x), and the level of vulnerability closely tracks the number of features per dimension"
    (ReLU output, n=20, m=5, I=0.7^i, the seven densities; L2 attacks of 0.1x the mean input norm,
    the analytic per-feature attacks ε(WᵀW)_i/‖(WᵀW)_i‖)."""
    spec = sup_ex.sparsity_sweep("relu_output")
    result = trained(spec)  # the superposition section's sweep (cached, shared)
    best = select.best_of(result)
    vuln = np.array(
        [
            adversarial.vulnerability(spec.model, best.W[s], best.b[s], ex.attack_inputs(result.spec, s))
            for s in range(spec.settings)
        ]
    )
    per_dim = metrics.frobenius_sq(best.W) / spec.m
    rho = float(spearmanr(vuln, per_dim).statistic)
    claim.record("density", sup_ex.DENSITIES)
    claim.record("vulnerability", vuln)
    claim.record("features_per_dimension", per_dim)
    claim.check(
        "dense_robust",
        abs(vuln[0] - 1) <= DENSE_TOL,
        what="vulnerability at density 1 (no superposition)",
        measured=float(vuln[0]),
        bound=f"1 ± {DENSE_TOL}",
    )
    claim.check(
        "vulnerability_rises",
        vuln.max() >= MAX_VULN,
        what="largest vulnerability over the densities",
        measured=vuln,
        bound=f">= {MAX_VULN} (the paper: > 3x)",
    )
    claim.check(
        "tracks_features_per_dimension",
        rho > 0.8,
        what="rank correlation of vulnerability with features per dimension ||W||_F^2/m",
        measured={"spearman": rho, "features_per_dim": per_dim},
        bound="> 0.8",
    )
    claim.regress("vulnerability", vuln, rtol=0.02)

    def draw(fig: object) -> None:
        ax = fig.subplots()  # type: ignore[attr-defined]
        ax.semilogx(sup_ex.DENSITIES, vuln, marker="o", label="vulnerability (x ideal)")
        ax.semilogx(sup_ex.DENSITIES, per_dim, marker="s", label="features per dimension")
        ax.invert_xaxis()
        ax.set_xlabel("density 1 - S")
        ax.legend()

    claim.figure("vulnerability", draw)


# measured over seeds 0-4, torch and numpy: vulnerability at density 1 is 1.003-1.008; the maximum
# 6.2-8.8; the rank correlation 0.68-0.96 (seed 4 fails: numpy 0.68, torch 0.71; seeds 0-3 >= 0.82).
# With numpy's per-shard streams (2026-11-30) numpy at seed 0 fails too: 0.75, vulnerability 4.03 at
# density 0.3 against 2.76 / 2.24 / 3.16 at 0.1 / 0.03 / 0.01, ||W||_F^2/m 1.52 there.
# Torch at seeds 5-14 (2026-11-30): every check passes, rank correlation 0.82-0.96, but at 0.821 (the
# least that passes) in 5 of 10. In 10 of the 11 torch runs at hand (seeds 0, 5-14) vulnerability
# *falls* from density 0.3 to 0.1 to 0.03 (3.32-3.50, 2.64-2.96, 2.27-2.68; seed 5: 3.95, 2.96, 4.59)
# while ||W||_F^2/m rises (1.39-1.41, 1.61-1.81, 1.98-2.04): the correlation rests on the two ends.
# The correlation is the fragile part: at density 0.3 the inputs are dense enough that both members
# of an antipodal pair are often active, so the worst attack does ~4x (a pair is 2 features per
# dimension, squared) while ||W||_F^2/m is only ~1.4; it can outrank the 0.1 and 0.03 levels.
DENSE_TOL = 0.05
MAX_VULN = 3.0
