"""Section "computation in superposition": the absolute-value model h = ReLU(W x),
y' = ReLU(W2 h + b), target |x|, inputs U[-1, 1] when active (untied weights).

A neuron of W can only compute ReLU(±x_i) of one feature cleanly, so |x_i| = ReLU(x_i) +
ReLU(-x_i) needs two neurons per feature: with m = 2n (the basic experiment) every feature gets
its pair; with fewer neurons than 2 x the features worth representing, sparsity pushes the model to
share neurons between features (polysemantic neurons).
"""

from __future__ import annotations

import numpy as np

from ..spec import Spec, TrainConfig, geometric_importance

__all__ = ["DENSITIES", "abs_basic", "abs_sparsity"]

#: the paper's seven density levels 1 - S, dense first
DENSITIES: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)


def abs_basic(*, restarts: int = 4, steps: int = 10_000, seed: int = 0) -> Spec:
    """n=3 features, m=6 neurons, I=1, dense: room for a ReLU(x) and a ReLU(-x) neuron per feature."""
    return Spec(
        model="abs",
        n=3,
        m=6,
        importance=np.ones(3),
        density=np.ones(3),
        restarts=restarts,
        seed=seed,
        train=TrainConfig(steps=steps),
        eval_samples=16_384,
        name="abs-basic-n3-m6",
    )


def abs_sparsity(
    *, n: int = 20, m: int = 8, ratio: float = 0.8, restarts: int = 4, steps: int = 10_000, seed: int = 0
) -> Spec:
    """The absolute-value model over the seven densities, I=ratio**i. The paper's configuration
    is n=100, m=40 (``n=100, m=40``); the fast tier keeps its ratio n/m = 2.5 and its importance
    decay at n=20, m=8: dense, the model has room for the top m/2 = 4 features on 2 neurons each
    (all neurons monosemantic), sparse it must share neurons, as at paper scale."""
    return Spec(
        model="abs",
        n=n,
        m=m,
        importance=geometric_importance(n, ratio),
        density=[[d] * n for d in DENSITIES],
        restarts=restarts,
        seed=seed,
        train=TrainConfig(steps=steps),
        eval_samples=16_384,
        name=f"abs-sparsity-n{n}-m{m}",
    )
