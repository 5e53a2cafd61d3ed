"""Witnesses of the nonuniform-superposition section's checks (see ``witness_kit``).

The claims select, per level, the restart with the lowest *exact* expected loss, so a broken
selected model would simply lose the selection to an unbroken restart: the witnesses give every
restart of a level the same (broken) weights (``edit_setting``), or another restart's or level's.
Settings of the fast sweep, by relative density: 0: 0.1, 1: 0.2, 2: 0.251, 3: 0.316, 4: 0.398,
5: 0.501, 6: 0.794, 7: 1.0, 8: 1.585.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
from witness_kit import Serve, Witness, edit_setting, only, replace

from toymodel import theory
from toymodel.analysis import geometry, select
from toymodel.analysis.pentagon import exact_losses, label_restarts
from toymodel.experiments import nonuniform as ex
from toymodel.result import Result

M = "test_nonuniform"
SWEEP = "pentagon-digon-fast"
FAST = {"tier": "fast"}
SPARSEST, TRANSITION, ABOVE, BASE, DENSEST = 0, 2, 3, 7, 8

Change = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _exact(result: Result) -> np.ndarray:
    """(settings, restarts) exact expected loss of every instance, as the claims rank them."""
    density = result.spec.density_array(per_instance=True)
    return result.by_setting(exact_losses(result.W, result.b, density))


def _selected(result: Result, setting: int) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of the restart the claims select for ``setting`` (lowest exact loss), as copies."""
    k = setting * result.spec.restarts + int(select.lowest_loss(_exact(result))[setting])
    return result.W[k].copy(), result.b[k].copy()


def _levels(settings: tuple[int, ...], change: Change) -> Serve:
    """Every restart of each of ``settings`` given that setting's selected model changed by
    ``change(W, b)``."""

    def apply(result: Result) -> Result:
        for setting in settings:
            W, b = change(*_selected(result, setting))
            result = edit_setting(result, setting, W=W, b=b)
        return result

    return only(SWEEP, apply)


def _level(setting: int, change: Change) -> Serve:
    """:func:`_levels` at one setting."""
    return _levels((setting,), change)


def _best_labelled(result: Result, setting: int, label: str) -> int:
    """The instance of ``setting``'s lowest-exact-loss restart labelled ``label``."""
    labels = label_restarts(result.by_setting(result.W)[setting])
    loss = np.where(labels == label, _exact(result)[setting], np.inf)
    return setting * result.spec.restarts + int(np.argmin(loss))


def _only_label(settings: tuple[int, ...], label: str) -> Serve:
    """Every restart of each of ``settings`` given the weights of that setting's best restart
    labelled ``label``: the restarts that reached the other geometries are lost."""

    def apply(result: Result) -> Result:
        for setting in settings:
            k = _best_labelled(result, setting, label)
            result = edit_setting(result, setting, W=result.W[k], b=result.b[k])
        return result

    return only(SWEEP, apply)


def _square_up_to(setting: int) -> Serve:
    """Every restart of the levels above :data:`TRANSITION` up to ``setting`` given the square
    that :data:`TRANSITION`'s best square restart reached."""

    def apply(result: Result) -> Result:
        k = _best_labelled(result, TRANSITION, "square")
        for level in range(TRANSITION + 1, setting + 1):
            result = edit_setting(result, level, W=result.W[k], b=result.b[k])
        return result

    return only(SWEEP, apply)


def _scale_norms(factor: float) -> Change:
    return lambda W, b: (factor * W, b)


def _varied_on(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The varied feature at norm 0.3, between the two digons."""
    W = W.copy()
    (i, _), (j, _) = geometry.antipodal_pairs(W, cos_max=-0.95)
    diagonal = W[:, i] / np.linalg.norm(W[:, i]) + W[:, j] / np.linalg.norm(W[:, j])
    W[:, ex.VARIED] = 0.3 * diagonal / np.linalg.norm(diagonal)
    return W, b


def _theory_at_base_density(base: float) -> Callable[[pytest.MonkeyPatch], None]:
    """The exact minima computed with every unit feature at density ``base``, with fresh caches so
    the shared ones are neither read nor poisoned."""

    def patch(mp: pytest.MonkeyPatch) -> None:
        mp.setattr(ex, "BASE_DENSITY", base)
        replace(
            mp,
            theory,
            "pentagon_minima",
            functools.lru_cache(maxsize=256)(theory.pentagon_minima.__wrapped__),
        )
        replace(
            mp,
            theory,
            "pentagon_crossover",
            functools.lru_cache(maxsize=4)(theory.pentagon_crossover.__wrapped__),
        )

    return patch


def _paper_crossover(mp: pytest.MonkeyPatch) -> None:
    replace(mp, theory, "pentagon_crossover", lambda *a, **k: 0.4)


T = {
    name: f"{M}::test_{name}"
    for name in (
        "pentagon_baseline",
        "pentagon_digon_transition",
        "pentagon_digon_loss_crossover",
        "pentagon_digon_theory",
    )
}
WITNESSES: list[Witness] = [
    Witness(
        T["pentagon_baseline"],
        "optimal_pentagon",
        "training stopped early: a regular pentagon with its norms 5% short (still > 1)",
        serve=_level(BASE, _scale_norms(0.95)),
    ),
    Witness(
        T["pentagon_digon_transition"],
        "dense_pentagon",
        "at 1.585x every restart stuck in the square-plus-weak-feature local minimum",
        serve=_only_label((DENSEST,), "other"),
        params=FAST,
    ),
    Witness(
        T["pentagon_digon_transition"],
        "sparse_square",
        "at 0.1x the varied feature kept at norm 0.3 (not switched off)",
        serve=_level(SPARSEST, _varied_on),
        params=FAST,
    ),
    Witness(
        T["pentagon_digon_transition"],
        "square_wins_below_crossover",
        "no restart at 0.251x reaches the square: the transition found one level too sparse (0.2x)",
        serve=_only_label((TRANSITION,), "pentagon"),
        params=FAST,
    ),
    Witness(
        T["pentagon_digon_transition"],
        "transition_near_crossover",
        "the square (from 0.251x) at every restart of 0.316x and 0.398x: the transition two levels "
        "above the exact crossover",
        serve=_square_up_to(ABOVE + 1),
        params=FAST,
    ),
    Witness(
        T["pentagon_digon_loss_crossover"],
        "one_crossing_in_bracket",
        "every restart at 0.1x-0.251x reaches the square: no level below the crossover has both geometries",
        serve=_only_label(tuple(range(TRANSITION + 1)), "square"),
        params=FAST,
    ),
    Witness(
        T["pentagon_digon_loss_crossover"],
        "near_exact_minima",
        "training stopped early at 0.1x and the next level: the selected model's norms 10% short",
        serve=_levels((SPARSEST, SPARSEST + 1), _scale_norms(0.9)),
        params=FAST,
    ),
    Witness(
        T["pentagon_digon_theory"],
        "exact_crossover_in_bracket",
        "the exact minima computed at base density 0.02, not 0.05 (crossover 0.185)",
        patch=_theory_at_base_density(0.02),
    ),
    Witness(
        T["pentagon_digon_theory"],
        "exact_winners",
        "the crossover taken from the paper's '~2.5x sparser' (0.4) instead of computed",
        patch=_paper_crossover,
    ),
]
