"""Witnesses of the adversarial and L1 section's checks (see ``witness_kit``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from witness_kit import Serve, Witness, best_instance, best_weights, edit, edit_best, exactly

from toymodel.experiments import adversarial as ex
from toymodel.experiments import superposition as sx
from toymodel.result import Result

M = "test_adversarial"
T = {name: f"{M}::test_{name}" for name in ("l1_removes_superposition", "adversarial_vulnerability")}
L1, SWEEP = ex.l1_sweep().name, sx.sparsity_sweep("relu_output").name


def _levels(name: str, mapping: dict[int, tuple[int, float]]) -> Serve:
    """Level ``dst`` takes the selected weights of level ``src`` scaled by ``factor``."""

    def apply(result: Result) -> Result:
        out = result
        for dst, (src, factor) in mapping.items():
            W, b = best_weights(result, src)
            out = edit_best(out, dst, W=factor * W, b=b)
        return out

    return exactly(name, apply)


def _growing_norms(result: Result) -> Result:
    """Every level the dense model's orthogonal features, their norms growing from 1 to 1.1 as the
    density falls: features per dimension rise (to 1.21), vulnerability with them, but not to 3x."""
    out = result
    W0, b0 = best_weights(result, 0)
    for level, c in enumerate(np.linspace(1.0, 1.1, result.spec.settings)):
        out = edit_best(out, level, W=c * W0, b=b0)
    return out


def _dense_superposed(result: Result) -> Result:
    """At density 1 feature 1 tilted towards feature 0 (cos 0.1): an attack on one spills into the
    other."""
    W, b = best_weights(result, 0)
    u = W[:, 0] / np.linalg.norm(W[:, 0])
    v = W[:, 1] - (W[:, 1] @ u) * u
    v /= np.linalg.norm(v)
    W[:, 1] = np.linalg.norm(W[:, 1]) * (0.1 * u + np.sqrt(0.99) * v)
    return edit_best(result, 0, W=W, b=b)


def _cheaper_at(level: int, like: int) -> Callable[[Result], Result]:
    """The selected restart at ``level`` reports the held-out loss of level ``like``."""

    def apply(result: Result) -> Result:
        loss = np.array(result.eval_loss)
        loss[best_instance(result, level)] = result.eval_loss[best_instance(result, like)]
        return edit(result, eval_loss=loss)

    return apply


WITNESSES: list[Witness] = [
    Witness(
        T["l1_removes_superposition"],
        "superposition_without_penalty",
        "without the penalty the model keeps no more features than with λ = 0.03",
        serve=_levels(L1, {0: (1, 0.98)}),
    ),
    Witness(
        T["l1_removes_superposition"],
        "frobenius_non_increasing",
        "at the largest λ superposition comes back (the λ = 0.03 model)",
        serve=_levels(L1, {4: (1, 1.0)}),
    ),
    Witness(
        T["l1_removes_superposition"],
        "superposition_removed",
        "the penalty never removes superposition (λ >= 0.1 keep the λ = 0.03 model)",
        serve=_levels(L1, {2: (1, 1.0), 3: (1, 1.0), 4: (1, 1.0)}),
    ),
    Witness(
        T["l1_removes_superposition"],
        "loss_cost",
        "the smallest penalty comes at no loss cost (λ = 0 loss at λ = 0.03)",
        serve=exactly(L1, _cheaper_at(1, 0)),
    ),
    Witness(
        T["l1_removes_superposition"],
        "loss_grows",
        "the cost does not grow: the largest λ reports the loss of λ = 0.03",
        serve=exactly(L1, _cheaper_at(4, 1)),
    ),
    Witness(
        T["adversarial_vulnerability"],
        "dense_robust",
        "dense features sharing directions: attacks spill over at density 1",
        serve=exactly(SWEEP, _dense_superposed),
    ),
    Witness(
        T["adversarial_vulnerability"],
        "vulnerability_rises",
        "norms that grow instead of features sharing dimensions: vulnerability rises, but below 3x",
        serve=exactly(SWEEP, _growing_norms),
    ),
    Witness(
        T["adversarial_vulnerability"],
        "tracks_features_per_dimension",
        "sparse levels' weights shrunk to 0.6: features per dimension back near 1, vulnerability still high",
        serve=_levels(SWEEP, {4: (4, 0.6), 5: (5, 0.6), 6: (6, 0.6)}),
    ),
]
