"""Section "correlated and anticorrelated features": specs for the n=4, n=6 and n=20 experiments.

Features are sampled as the paper does (CLAIMS.md, Conventions): a correlated set is zero or
active as a whole (one draw), its members' magnitudes independent U[0, 1]; an anticorrelated set
is active with the set's density and then exactly one uniformly chosen member carries the value.
Every feature has importance 1. The sets are consecutive: set k of size s is features
k*s .. k*s + s - 1.

Densities: the paper states none for these experiments except the collapse sweep (whose ranges
the slides give). We use 0.05 (CLAIMS.md's default) for the n=4 sets and for nothing else: the
n=6 side-by-side hexagon is read at the sparsest sweep level (0.01, where no pair collapses), and
the n=20 local bases at 0.03 (calibrated: at 0.1 and above the sets stop being clean bases,
within-set max |WᵀW_ij| 0.15-0.32 measured, because both sets are often active together).
"""

from __future__ import annotations

from typing import Literal

from ..spec import FeatureGroup, GroupKind, Spec, TrainConfig

__all__ = [
    "COLLAPSE_DENSITIES",
    "COLLAPSE_DENSITIES_PAPER",
    "PAPER_COLLAPSE_RANGES",
    "collapse_sweep",
    "hexagon",
    "independent",
    "local_bases",
    "pair_sets",
    "sets",
]

Tier = Literal["fast", "paper"]

#: the densities where the claim reads the number of collapsed pairs: 0, 1, 2 at 0.01, 0.1, 0.17;
#: 3 at 0.35 (typical restart) and 0.5 (lowest-loss restart); see claims/test_correlated.py
COLLAPSE_DENSITIES: tuple[float, ...] = (0.01, 0.1, 0.17, 0.35, 0.5)
#: the paper-scale sweep (the figure: collapsed pairs against density)
COLLAPSE_DENSITIES_PAPER: tuple[float, ...] = (
    0.01,
    0.02,
    0.03,
    0.05,
    0.07,
    0.1,
    0.13,
    0.15,
    0.17,
    0.2,
    0.25,
    0.3,
    0.35,
    0.5,
    0.7,
    1.0,
)
#: the slides' ranges: (low density, high density, collapsed pairs), "approximately"
PAPER_COLLAPSE_RANGES: tuple[tuple[float, float, int], ...] = (
    (0.0, 0.05, 0),
    (0.05, 0.15, 1),
    (0.15, 0.2, 2),
    (0.25, 0.5, 3),
)


def sets(kind: GroupKind, count: int, size: int) -> tuple[FeatureGroup, ...]:
    """``count`` consecutive feature sets of ``size`` members each."""
    return tuple(FeatureGroup(kind, tuple(range(k * size, (k + 1) * size))) for k in range(count))


def independent(spec: Spec, restarts: int | None = None) -> Spec:
    """The control of a claim about correlation: the same spec (same seed, so the same initial
    weights, and the same budget) with every feature sampled independently at its marginal
    density: a correlated set's members keep the set's density, an anticorrelated set's members
    get density / k. What differs between the two runs is the correlation alone. ``restarts``: more
    restarts for a control that a claim counts restarts of (the first ones start from the same
    initial weights as the correlated run's: every instance has its own stream)."""
    density = spec.density_array()
    for g in spec.groups:
        if g.kind == "anticorrelated":
            density[:, list(g.features)] /= len(g.features)
    return spec.replace(
        groups=(), density=density, name=f"{spec.name}-independent", restarts=restarts or spec.restarts
    )


def pair_sets(
    kind: GroupKind, *, density: float = 0.05, restarts: int = 16, steps: int = 5_000, seed: int = 0
) -> Spec:
    """n=4 (two sets of 2 ``kind`` features), m=2: the slides' first two figures.

    5 000 steps: the loss is flat from ~3 000 on (measured at 10 000). 16 restarts: the claims
    count restarts (how often independent features pair up within a set, which correlated ones
    never do), and anticorrelated sets have a local minimum (each set's members orthogonal, loss
    4e-4 instead of 0) that most restarts reach.
    """
    return Spec(
        model="relu_output",
        n=4,
        m=2,
        importance=[1.0] * 4,
        density=[density] * 4,
        groups=sets(kind, 2, 2),
        restarts=restarts,
        seed=seed,
        train=TrainConfig(steps=steps),
        eval_samples=32_768,
        name=f"{kind}-pairs-n4-m2",
    )


def collapse_sweep(tier: Tier = "fast", *, restarts: int | None = None, seed: int = 0) -> Spec:
    """n=6 (three correlated pairs), m=2, one setting per density.

    Fast tier: the four densities the claim reads, 5 000 steps (the loss curves are flat from
    ~5 000 steps on at every density, measured to 10 000), 8 restarts. Paper tier: the full sweep
    of :data:`COLLAPSE_DENSITIES_PAPER`, the notebook's 10 000 steps, 10 restarts.
    """
    fast = tier == "fast"
    densities = COLLAPSE_DENSITIES if fast else COLLAPSE_DENSITIES_PAPER
    return Spec(
        model="relu_output",
        n=6,
        m=2,
        importance=[1.0] * 6,
        density=[[d] * 6 for d in densities],
        groups=sets("correlated", 3, 2),
        restarts=restarts or (8 if fast else 10),
        seed=seed,
        train=TrainConfig(steps=5_000 if fast else 10_000),
        eval_samples=32_768,
        name=f"correlated-collapse-n6-m2-{tier}",
    )


def hexagon(*, density: float = 0.01, restarts: int = 16, steps: int = 5_000, seed: int = 0) -> Spec:
    """n=6 (three correlated pairs), m=2 at a density where no pair collapses (0.01): the six
    features form a hexagon. 16 restarts: the claim counts the restarts whose pairs sit side by
    side (about half of them; independent features almost never do)."""
    return Spec(
        model="relu_output",
        n=6,
        m=2,
        importance=[1.0] * 6,
        density=[density] * 6,
        groups=sets("correlated", 3, 2),
        restarts=restarts,
        seed=seed,
        train=TrainConfig(steps=steps),
        eval_samples=32_768,
        name="correlated-hexagon-n6-m2",
    )


def local_bases(*, density: float = 0.03, restarts: int = 2, steps: int = 5_000, seed: int = 0) -> Spec:
    """n=20 (two correlated sets of 10), m=10: each set should become a local orthogonal basis."""
    return Spec(
        model="relu_output",
        n=20,
        m=10,
        importance=[1.0] * 20,
        density=[density] * 20,
        groups=sets("correlated", 2, 10),
        restarts=restarts,
        seed=seed,
        train=TrainConfig(steps=steps),
        eval_samples=32_768,
        name="correlated-local-bases-n20-m10",
    )
