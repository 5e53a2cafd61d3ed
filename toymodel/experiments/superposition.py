"""Section "demonstrating superposition": the n=20, m=5 (and n=5, m=2, n=80, m=20) sweeps."""

from __future__ import annotations

from ..spec import ModelKind, Spec, TrainConfig, geometric_importance

__all__ = ["DENSITIES", "intro_pentagon", "sparsity_sweep"]

#: the paper's seven density levels 1 - S, dense first
DENSITIES: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)


def sparsity_sweep(
    model: ModelKind = "relu_output",
    *,
    n: int = 20,
    m: int = 5,
    ratio: float = 0.7,
    restarts: int = 4,
    steps: int = 10_000,
    seed: int = 0,
) -> Spec:
    """One setting per density level of :data:`DENSITIES`, importance ratio**i, the official
    notebook's training (AdamW lr 1e-3, batch 1024)."""
    return Spec(
        model=model,
        n=n,
        m=m,
        importance=geometric_importance(n, ratio),
        density=[[d] * n for d in DENSITIES],
        restarts=restarts,
        seed=seed,
        train=TrainConfig(steps=steps),
        eval_samples=16_384,
        name=f"superposition-sweep-{model}-n{n}-m{m}",
    )


def intro_pentagon(*, restarts: int = 8, steps: int = 10_000, seed: int = 0) -> Spec:
    """The paper's opening figure: n=5, m=2, I=0.9**i at densities 1.0, 0.2 and 0.1."""
    return Spec(
        model="relu_output",
        n=5,
        m=2,
        importance=geometric_importance(5, 0.9),
        density=[[d] * 5 for d in (1.0, 0.2, 0.1)],
        restarts=restarts,
        seed=seed,
        train=TrainConfig(steps=steps),
        eval_samples=65_536,
        name="intro-pentagon",
    )
