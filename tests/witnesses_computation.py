"""Witnesses of the computation section's checks (see ``witness_kit``).

The basic claim's witnesses are rescored (:func:`_rescored`): its ``near_zero_loss`` check reads
the held-out loss, which the suite always recomputes from the weights, so a witness that breaks
the weights must carry the loss those weights have.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from witness_kit import Serve, Witness, best_weights, edit, edit_best, only, settings_from

from toymodel.analysis import metrics
from toymodel.result import Result, validate

M = "test_computation"
BASIC, SPARSITY = "abs-basic", "abs-sparsity"
T = {name: f"{M}::test_{name}" for name in ("abs_value_basic", "abs_value_sparsity")}


def _rescored(result: Result) -> Result:
    """``result`` with its held-out losses recomputed by the suite from its (edited) weights."""
    return validate(result, result.spec, "witness")


def _every_restart(change: Callable[[Result, int], dict[str, np.ndarray]]) -> Callable[[Result], Result]:
    """Apply ``change(result, instance) -> {field: new row}`` to every restart, then rescore."""

    def apply(result: Result) -> Result:
        fields: dict[str, np.ndarray] = {}
        for k in range(result.spec.instances):
            for name, row in change(result, k).items():
                fields.setdefault(name, np.array(getattr(result, name), dtype=np.float64))[k] = row
        return _rescored(edit(result, **fields))

    return apply


def _missed_pair(result: Result, k: int) -> dict[str, np.ndarray]:
    """The worst trained restart's weights (seed 0: feature 2 got two ReLU(-x) neurons, no ReLU(x))."""
    assert result.W2 is not None
    worst = int(np.argmax(result.eval_loss))
    return {"W": result.W[worst], "b": result.b[worst], "W2": result.W2[worst]}


def _leaky_neuron(result: Result, k: int) -> dict[str, np.ndarray]:
    """Each restart's first neuron also reads the next feature at 60% of its main weight."""
    W = result.W[k].copy()
    i = int(np.argmax(np.abs(W[0])))
    W[0, (i + 1) % W.shape[1]] = 0.6 * abs(W[0, i])
    return {"W": W}


def _biased_output(result: Result, k: int) -> dict[str, np.ndarray]:
    """Each restart's output bias at 0.05 instead of 0 (|x| is offset by 0.05)."""
    return {"b": np.full(result.spec.n, 0.05)}


def _mix_neurons(levels: tuple[int, ...], degrees: float) -> Serve:
    """At each of ``levels``, neuron 0 and the first neuron reading another feature rotated into
    each other by ``degrees``."""
    t = np.radians(degrees)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])

    def apply(result: Result) -> Result:
        out = result
        for level in levels:
            W, _ = best_weights(result, level)
            feature = metrics.dominant_feature(W)[0]
            j = int(np.flatnonzero(feature != feature[0])[0])
            W[[0, j]] = rot @ W[[0, j]]
            out = edit_best(out, level, W=W)
        return out

    return only(SPARSITY, apply)


WITNESSES: list[Witness] = [
    Witness(
        T["abs_value_basic"],
        "near_zero_loss",
        "the clean ReLU(±x) pairs with an output bias of 0.05 (loss 0.0075)",
        serve=only(BASIC, _every_restart(_biased_output)),
    ),
    Witness(
        T["abs_value_sparsity"],
        "dense_monosemantic",
        "dense neurons of two features rotated into each other (as without the hidden ReLU)",
        serve=_mix_neurons((0, 1), 45.0),
    ),
    Witness(
        T["abs_value_sparsity"],
        "sparse_polysemantic",
        "sparsity stops mattering below density 0.3 (the sparser levels keep its solution)",
        serve=only(SPARSITY, lambda result: settings_from(result, {k: 1 for k in range(2, 7)})),
    ),
    Witness(
        T["abs_value_sparsity"],
        "non_increasing",
        "density 0.01 trained at density 0.1 (a misordered density list: every restart)",
        serve=only(SPARSITY, lambda result: settings_from(result, {4: 2})),
    ),
]
