"""Witnesses of the privileged-basis section's checks (see ``witness_kit``)."""

from __future__ import annotations

import numpy as np
from witness_kit import Serve, Witness, best_weights, edit, edit_best, keep_only_selected, only

from toymodel.analysis import metrics
from toymodel.result import Result

M = "test_privileged"
REGIMES, PAIRS, LINEAR = "privileged-regimes", "privileged-pairs", "privileged-linear"
T = {name: f"{M}::test_{name}" for name in ("privileged_basis_regimes", "privileged_basis_interpretable")}
FAST = {"tier": "fast"}


def _mix_neurons(level: int, degrees: float) -> Serve:
    """The selected restart of ``level`` with neuron 0 and the first neuron reading another feature
    rotated into each other by ``degrees`` (the hidden space turned, as if it had no ReLU)."""
    t = np.radians(degrees)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])

    def apply(result: Result) -> Result:
        W, _ = best_weights(result, level)
        feature = metrics.dominant_feature(W)[0]
        j = int(np.flatnonzero(feature != feature[0])[0])
        W[[0, j]] = rot @ W[[0, j]]
        return edit_best(result, level, W=W)

    return only(REGIMES, apply)


def _swap_levels(a: int, c: int) -> Serve:
    """The selected weights of levels ``a`` and ``c`` swapped."""

    def apply(result: Result) -> Result:
        Wa, ba = best_weights(result, a)
        Wc, bc = best_weights(result, c)
        return edit_best(edit_best(result, a, W=Wc, b=bc), c, W=Wa, b=ba)

    return only(REGIMES, apply)


def _select(name: str, instance: int) -> Serve:
    """Restart ``instance`` (a real trained restart of the single setting) made the selected one."""
    return only(name, lambda result: keep_only_selected(result, 0, instance))


def _fewest_pairs(result: Result) -> Result:
    """The restart with the most features on two neurons among those with at most 8 made the best."""
    on_two = (metrics.neurons_per_feature(result.W, sign="positive") == 2).sum(axis=-1)
    return keep_only_selected(result, 0, int(np.argmax(np.where(on_two <= 8, on_two, -1))))


def _least_aligned_dense(result: Result) -> Result:
    """The dense restart with the fewest monosemantic neurons made the best."""
    r = result.spec.restarts
    mono = metrics.monosemantic_neurons(result.W[:r]).sum(axis=-1)
    return keep_only_selected(result, 0, int(np.argmin(mono)))


def _wrong_subspace(result: Result) -> Result:
    """Restart 0 of the linear model representing feature 5 in place of feature 4."""
    W = np.array(result.W)
    W[0][:, [4, 5]] = W[0][:, [5, 4]]
    return edit(result, W=W)


def _aligned(result: Result) -> Result:
    """Every linear restart's hidden space rotated onto its features: W -> Qᵀ W with Q the polar
    factor of W's top-5 block (WᵀW, hence the loss, unchanged)."""
    W = np.array(result.W)
    for k in range(W.shape[0]):
        u, _, vt = np.linalg.svd(W[k][:, :5])
        W[k] = (u @ vt).T @ W[k]
    return edit(result, W=W)


WITNESSES: list[Witness] = [
    Witness(
        T["privileged_basis_regimes"],
        "monosemantic_dense",
        "density 0.7: two neurons rotated 30° into each other (the basis not privileged)",
        serve=_mix_neurons(1, 30.0),
        params=FAST,
    ),
    Witness(
        T["privileged_basis_regimes"],
        "non_increasing",
        "densities 0.3 and 0.1 swapped (a misordered sweep)",
        serve=_swap_levels(2, 3),
        params=FAST,
    ),
    Witness(
        T["privileged_basis_regimes"],
        "neuron_pairs",
        "density 0.02: a trained restart with only 8 features on neuron pairs kept as the best",
        serve=only(PAIRS, _fewest_pairs),
        params=FAST,
    ),
    Witness(
        T["privileged_basis_interpretable"],
        "relu_aligned",
        "dense: a trained restart stuck in a rotation of the aligned solution kept as the best",
        serve=only(REGIMES, _least_aligned_dense),
    ),
    Witness(
        T["privileged_basis_interpretable"],
        "linear_trained",
        "a linear restart that learned feature 5 in place of feature 4 (not the top-5 projector)",
        serve=only(LINEAR, _wrong_subspace),
    ),
    Witness(
        T["privileged_basis_interpretable"],
        "linear_not_aligned",
        "the linear model's neurons aligned with its features (as if its hidden layer had a ReLU)",
        serve=only(LINEAR, _aligned),
    ),
]
