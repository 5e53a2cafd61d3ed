"""Section "adversarial and L1": the L1-penalty sweep and the inputs of the adversarial claim.

The adversarial claim attacks the models of the superposition section's n=20, m=5 ReLU-output
density sweep (:func:`toymodel.experiments.superposition.sparsity_sweep`), so it trains nothing
of its own and shares that cached run.
"""

from __future__ import annotations

import numpy as np

from ..data import sample, seed_sequence
from ..spec import Spec, TrainConfig, geometric_importance

__all__ = ["L1_DENSITY", "L1_LAMBDAS", "attack_inputs", "l1_sweep"]

#: L1 coefficients λ of the sweep (λ = 0 first). Scale: at density 0.03 a feature of importance I
#: is worth about I·density/3 of loss and costs about λ·density·‖W_i‖₁/2 of penalty, so λ ≈ 0.01
#: starts to bite the least important represented features and λ = 0.3 leaves only the top few.
#: 0.17 sits between 0.1, where a run now and then keeps six features in five dimensions, and 0.3,
#: where only two or three remain.
L1_LAMBDAS: tuple[float, ...] = (0.0, 0.03, 0.1, 0.17, 0.3)
#: density of the L1 sweep: sparse enough that the unpenalised model is clearly in superposition
#: (‖W‖_F² ≈ 12 in m = 5 dimensions, the superposition section's level 0.03), dense enough that
#: 10k steps of batch 1024 see every feature often
L1_DENSITY = 0.03


def l1_sweep(
    *,
    n: int = 20,
    m: int = 5,
    ratio: float = 0.7,
    density: float = L1_DENSITY,
    lambdas: tuple[float, ...] = L1_LAMBDAS,
    restarts: int = 2,
    steps: int = 10_000,
    seed: int = 0,
) -> Spec:
    """ReLU-output n=20, m=5, I=ratio**i at one density, one setting per L1 coefficient λ on the
    hidden activations (loss + λ·mean‖h‖₁); the official notebook's training."""
    return Spec(
        model="relu_output",
        n=n,
        m=m,
        importance=geometric_importance(n, ratio),
        density=[[density] * n for _ in lambdas],
        hidden_l1=tuple(lambdas),
        restarts=restarts,
        seed=seed,
        train=TrainConfig(steps=steps),
        eval_samples=16_384,
        name=f"l1-sweep-n{n}-m{m}",
    )


def attack_inputs(spec: Spec, setting: int, count: int = 4096) -> np.ndarray:
    """``count`` inputs of one setting with at least one active feature, (count, n): the spec's
    own distribution conditioned on not being empty (rejection sampling from the stream
    ``(seed, "attack", setting)``), so sparse levels are attacked on as many inputs as dense ones."""
    rng = np.random.Generator(np.random.PCG64(seed_sequence(spec.seed, "attack", setting)))
    density = spec.density_array()[setting : setting + 1]
    p_any = 1.0 - float(np.prod(1.0 - density))
    kept: list[np.ndarray] = []
    have = 0
    while have < count:
        draw = int(min(1 << 20, max(1024, 1.2 * (count - have) / max(p_any, 1e-9))))
        x = sample(density, draw, rng, groups=spec.groups, values=str(spec.values))[0]
        x = x[np.any(x != 0, axis=1)]
        kept.append(x)
        have += len(x)
    return np.concatenate(kept)[:count]
