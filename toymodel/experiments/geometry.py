"""Section "the geometry of superposition": uniform superposition, every feature equally important
(I = 1) and equally sparse, swept over density.

One :class:`~toymodel.spec.Spec` per tier: one setting per density level, the levels log-spaced in
1/(1-S) from 1 (dense) to 20 at paper scale, as the official notebook's
``20 ** -linspace(0, 1, levels)`` (the fast tier stops at 8, see :data:`TIERS`);
``restarts`` independent runs of each level train in the same batched program. The claims read
D* = m/||W||_F^2 per level and pool the feature dimensionalities D_i over levels and restarts, as
the paper's scatter plot does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..spec import Schedule, Spec, TrainConfig

__all__ = ["TIERS", "Tier", "TierConfig", "inverse_densities", "uniform_sweep"]

Tier = Literal["fast", "paper"]


@dataclass(frozen=True)
class TierConfig:
    """Size of one tier's sweep: features n, hidden dimensions m, density levels log-spaced in
    1/(1-S) from 1 to ``max_inverse_density``, restarts per level, and the training recipe
    (steps, batch, AdamW learning rate and its schedule)."""

    n: int
    m: int
    levels: int
    max_inverse_density: float
    restarts: int
    steps: int
    batch_size: int = 1024
    lr: float = 1e-3
    schedule: Schedule = "constant"


#: paper: n=400, m=30 (the paper's uniform-superposition model), 20 levels up to 1/(1-S) = 20,
#: the official notebook's recipe (batch 1024, lr 1e-3, constant) for 10 000 steps.
#: fast (CI): n=60, m=10, 20 levels up to 1/(1-S) = 8, eight restarts per level. n=60, m=10 is the
#: smallest model measured to show both the antipodal plateau (1/(1-S) ~ 1.9-3.5, ~4 of the levels)
#: and fractional clusters (2/5, 3/8 at ~4-5.5); above 1/(1-S) ~ 6 the D_i add nothing to the
#: claims. Its recipe, batch 128 for 5 000 steps at lr 3e-3 with a cosine decay, trains in an
#: eighth of the notebook recipe's samples, which an implementation written in the notebook's style
#: pays for directly (160 models at batch 1024 page-fault its temporaries); the decay anneals the
#: small batch's noise, so the clusters come out at least as sharp (variants compared in
#: ``calibration/design/uniform_sweep_fast.jsonl``; the calibration of the checks in
#: ``calibration/dims_per_feature_sticky.json`` and ``dimensionality_fractions.json``).
TIERS: dict[str, TierConfig] = {
    "fast": TierConfig(
        n=60,
        m=10,
        levels=20,
        max_inverse_density=8.0,
        restarts=8,
        steps=5_000,
        batch_size=128,
        lr=3e-3,
        schedule="cosine",
    ),
    "paper": TierConfig(n=400, m=30, levels=20, max_inverse_density=20.0, restarts=1, steps=10_000),
}


def inverse_densities(tier: Tier = "fast") -> np.ndarray:
    """1/(1-S) per level of a tier, log-spaced from 1 to its ``max_inverse_density`` (dense first)."""
    cfg = TIERS[tier]
    return np.geomspace(1.0, cfg.max_inverse_density, cfg.levels)


def uniform_sweep(tier: Tier = "fast", *, seed: int = 0) -> Spec:
    """ReLU-output models with I = 1 for every feature, one setting per density level of the tier,
    trained with the tier's recipe (AdamW, weight decay 0.01; see :data:`TIERS`)."""
    cfg = TIERS[tier]
    density = 1.0 / inverse_densities(tier)
    return Spec(
        model="relu_output",
        n=cfg.n,
        m=cfg.m,
        importance=np.ones(cfg.n),
        density=[[float(d)] * cfg.n for d in density],
        restarts=cfg.restarts,
        seed=seed,
        train=TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, schedule=cfg.schedule),
        eval_samples=8_192,
        name=f"uniform-superposition-{tier}-n{cfg.n}-m{cfg.m}",
    )
