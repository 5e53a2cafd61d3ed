"""Witnesses of the superposition section's checks (see ``witness_kit``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from witness_kit import Loader, Serve, Witness, best_weights, edit_best, edit_setting, only

from toymodel import models
from toymodel.analysis import metrics
from toymodel.result import Result, expected_loss_steps, validate
from toymodel.spec import Spec

M = "test_superposition"
LINEAR, RELU, RELU_N5, PENTAGON = "sweep-linear", "relu_output-n20", "relu_output-n5", "intro-pentagon"


def _level(
    name: str, level: int, change: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> Serve:
    """Change the selected restart of one level: ``change(W, b) -> (W, b)``."""

    def apply(result: Result) -> Result:
        W, b = best_weights(result, level)
        W, b = change(W, b)
        return edit_best(result, level, W=W, b=b)

    return only(name, apply)


def _level_every_restart(
    name: str, level: int, change: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> Serve:
    """Every restart of one level given the selected restart's weights changed: ``change(W, b)``."""

    def apply(result: Result) -> Result:
        W, b = change(*best_weights(result, level))
        return edit_setting(result, level, W=W, b=b)

    return only(name, apply)


def _levels_from(name: str, mapping: dict[int, int]) -> Serve:
    """Give each level ``k`` the selected weights of level ``mapping[k]``."""

    def apply(result: Result) -> Result:
        out = result
        for dst, src in mapping.items():
            W, b = best_weights(result, src)
            out = edit_best(out, dst, W=W, b=b)
        return out

    return only(name, apply)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _tilt(W: np.ndarray, i: int, toward: int, cos: float, within: int | None = None) -> np.ndarray:
    """Feature i rotated towards feature ``toward`` until their cosine is ``cos`` (norm kept), in
    the plane of ``toward`` and ``within`` (default: feature i's own direction)."""
    W = W.copy()
    u = _unit(W[:, toward])
    w = W[:, i] if within is None else W[:, within]
    v = _unit(w - (w @ u) * u)
    W[:, i] = np.linalg.norm(W[:, i]) * (cos * u + np.sqrt(1 - cos**2) * v)
    return W


def _scale(
    i: int | slice, factor: float
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def change(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        W = W.copy()
        W[:, i] *= factor
        return W, b

    return change


def _set_bias(
    i: int | slice, value: float
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def change(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = b.copy()
        b[i] = value
        return W, b

    return change


def _top_m(test: str, name: str) -> list[Witness]:
    def other_on(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        W = W.copy()
        W[:, 10] = 0.1 * _unit(W[:, 0])
        return W, b

    return [
        Witness(
            test,
            "top_norms",
            "a top feature learned at 0.9 of its norm",
            serve=_level(name, 0, _scale(0, 0.9)),
        ),
        Witness(
            test,
            "other_norms",
            "an unimportant feature learned weakly (norm 0.1)",
            serve=_level(name, 0, other_on),
        ),
        Witness(
            test,
            "top_orthogonal",
            "two top features 84° apart instead of 90°",
            serve=_level(name, 0, lambda W, b: (_tilt(W, 1, 0, 0.1), b)),
        ),
        Witness(
            test,
            "unlearned_bias",
            "unlearned features' biases left at 0, not their mean",
            serve=_level(name, 0, _set_bias(slice(5, None), 0.0)),
        ),
        Witness(
            test, "learned_bias", "a learned feature with bias 0.1", serve=_level(name, 0, _set_bias(0, 0.1))
        ),
    ]


def _weaken_strong(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Four of the strongly represented features (||W_i|| >= 0.9) shrunk to 0.85."""
    W = W.copy()
    strong = np.flatnonzero(metrics.feature_norms(W) >= 0.9)[:4]
    W[:, strong] *= 0.85 / metrics.feature_norms(W)[strong]
    return W, b


def _dense_superposed(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features 1 and 2 tilted towards feature 0 (cos 0.5): three features share directions."""
    return _tilt(_tilt(W, 1, 0, 0.5), 2, 0, 0.5), b


def _linear_represents_more(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The linear model with seven more features represented (norm 0.6)."""
    W = W.copy()
    rng = np.random.default_rng(0)
    W[:, 5:12] = 0.6 * (v := rng.normal(size=(W.shape[0], 7))) / np.linalg.norm(v, axis=0)
    return W, b


def _pair_dense_tail(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At the dense level the two least important represented features form an antipodal pair."""
    W = W.copy()
    rep = np.flatnonzero(metrics.feature_norms(W) > 0.5)
    a, c = rep[-2], rep[-1]
    W[:, c] = -W[:, a]
    return W, b


def _break_a_pair(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One feature of an antipodal pair rotated to cos -0.8 with its partner."""
    from toymodel.analysis import geometry

    pairs = geometry.antipodal_pairs(W, cos_max=-0.9)
    i, j = pairs[0]
    # rotate within the plane of another pair when there is one, so no dedicated feature is touched
    within = pairs[1][0] if len(pairs) > 1 else None
    return _tilt(W, j, i, -0.8, within), b


def _swap_roles(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The most important feature swaps places with a superposed one."""
    W = W.copy()
    norms, sup = metrics.feature_norms(W), metrics.superposition(W)
    shared = np.flatnonzero((norms > 0.5) & (sup > 0.1))
    W[:, [0, shared[-1]]] = W[:, [shared[-1], 0]]
    return W, b


def _cross_polytope(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ten features on five orthogonal antipodal pairs, the rest off: no positive interference."""
    m, n = W.shape
    out = np.zeros((m, n))
    for k in range(m):
        out[k, 2 * k], out[k, 2 * k + 1] = 1.0, -1.0
    return out, b


def _first_in_pairs(W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level 5 replaced by five antipodal pairs plus two dedicated features (a feature with its
    own dimension is not in superposition)."""
    m, n = W.shape
    out = np.zeros((m, n))
    for k in range(m - 1):
        out[k, 2 * k], out[k, 2 * k + 1] = 1.0, -1.0
    out[m - 1, 2 * (m - 1)] = 1.0
    out[:, 2 * m - 1] = 0.0
    return out, b


def _larger_model(spec: Spec, load: Loader) -> Result:
    """An n=80, m=20 sweep whose top 20 features keep orthogonal dimensions at every density."""
    W = np.zeros((spec.instances, spec.m, spec.n))
    W[:, np.arange(spec.m), np.arange(spec.m)] = 1.0
    steps = expected_loss_steps(spec)
    return validate(
        {
            "W": W,
            "b": np.zeros((spec.instances, spec.n)),
            "loss_steps": steps,
            "loss_curve": np.ones((spec.instances, steps.size)),
        },
        spec,
        "witness",
    )


def _forward_patch(
    model: str,
    change: Callable[[np.ndarray, np.ndarray], np.ndarray],
    when: Callable[[np.ndarray], bool] = lambda x: True,
) -> Callable[[pytest.MonkeyPatch], None]:
    real = models.forward

    def patch(mp: pytest.MonkeyPatch) -> None:
        def forward(kind: str, params: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            out, h = real(kind, params, x)
            if kind == model and when(x):
                out = change(out, x)
            return out, h

        mp.setattr(models, "forward", forward)

    return patch


def _no_relu_patch(mp: pytest.MonkeyPatch) -> None:
    """The ReLU output model computed without its ReLU (on the two-feature inputs only)."""
    real = models.forward

    def forward(kind: str, params: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if kind == "relu_output" and x.shape[-1] == 2:
            out, h = real("linear", params, x)
            return out, h
        return real(kind, params, x)

    mp.setattr(models, "forward", forward)


def _rotate(W: np.ndarray, i: int, degrees: float) -> np.ndarray:
    """Feature i of a 2-D W rotated by ``degrees``."""
    t = np.radians(degrees)
    W = W.copy()
    W[:, i] = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ W[:, i]
    return W


def _loss_patch(mp: pytest.MonkeyPatch) -> None:
    real = models.loss
    mp.setattr(models, "loss", lambda *a, **k: real(*a, **k) + 0.01)


T = {
    name: f"{M}::test_{name}"
    for name in (
        "linear_top_m",
        "relu_dense_top_m",
        "relu_superposition_grows",
        "antipodal_first",
        "high_sparsity_interference",
        "intro_pentagon",
        "math_identities",
        "larger_model_rescaled",
    )
}
N20 = {"n": 20, "m": 5, "ratio": 0.7, "spare_room": True}
N5 = {"n": 5, "m": 2, "ratio": 0.9, "spare_room": False}

WITNESSES: list[Witness] = [
    *_top_m(T["linear_top_m"], LINEAR),
    *_top_m(T["relu_dense_top_m"], RELU),
    Witness(
        T["relu_superposition_grows"],
        "dense_frobenius",
        "dense model with every feature 5% too long",
        serve=_level(RELU, 0, _scale(slice(None), 1.05)),
    ),
    Witness(
        T["relu_superposition_grows"],
        "sparse_frobenius",
        "superposition stops growing below density 0.03",
        serve=_levels_from(RELU, {4: 3, 5: 3, 6: 3}),
    ),
    Witness(
        T["relu_superposition_grows"],
        "frobenius_nondecreasing",
        "a sweep that loses features at 0.003",
        serve=_levels_from(RELU, {4: 6, 5: 3}),
    ),
    Witness(
        T["relu_superposition_grows"],
        "strong_counts",
        "four strong features at 0.85 instead of >= 0.9, in every restart",
        serve=_level_every_restart(RELU, 6, _weaken_strong),
    ),
    Witness(
        T["relu_superposition_grows"],
        "orthogonal_counts",
        "dense features sharing directions",
        serve=_level(RELU, 0, _dense_superposed),
    ),
    Witness(
        T["relu_superposition_grows"],
        "nonlinearity_contrast",
        "the linear model trained on the same data represents as many features as the ReLU one",
        serve=_level(LINEAR, 6, _linear_represents_more),
    ),
    Witness(
        T["antipodal_first"],
        "first_level",
        "superposition already at density 1",
        serve=_level(RELU, 0, _pair_dense_tail),
        params=N20,
    ),
    Witness(
        T["antipodal_first"],
        "antipodal_pairs",
        "early superposition not in antipodal pairs",
        serve=_level(RELU, 1, _break_a_pair),
        params=N20,
    ),
    Witness(
        T["antipodal_first"],
        "important_untouched",
        "the most important feature superposed first",
        serve=_level(RELU, 1, _swap_roles),
        params=N20,
    ),
    Witness(
        T["antipodal_first"],
        "first_level",
        "superposition already at density 1",
        serve=_level(RELU_N5, 0, _pair_dense_tail),
        params=N5,
    ),
    Witness(
        T["antipodal_first"],
        "antipodal_pairs",
        "early superposition not in antipodal pairs",
        serve=_level(RELU_N5, 1, _break_a_pair),
        params=N5,
    ),
    Witness(
        T["high_sparsity_interference"],
        "all_superposed",
        "a feature keeps a dimension of its own at 0.003",
        serve=_level(RELU, 5, _first_in_pairs),
        also=("positive_interference",),
    ),
    Witness(
        T["high_sparsity_interference"],
        "negative_biases",
        "biases stay at 0 at high sparsity",
        serve=_level(RELU, 5, _set_bias(slice(None), 0.0)),
    ),
    Witness(
        T["high_sparsity_interference"],
        "positive_interference",
        "only antipodal pairs on orthogonal axes: no positive interference",
        serve=_level(RELU, 5, _cross_polytope),
    ),
    Witness(
        T["intro_pentagon"],
        "dense_represented",
        "a third feature represented when dense",
        serve=_level(PENTAGON, 0, lambda W, b: (np.c_[W[:, :2], 0.6 * _unit(W[:, 0]), W[:, 3:]], b)),
    ),
    Witness(
        T["intro_pentagon"],
        "dense_orthogonal",
        "the dense features 78° apart",
        serve=_level(PENTAGON, 0, lambda W, b: (_tilt(W, 1, 0, 0.2), b)),
    ),
    Witness(
        T["intro_pentagon"],
        "mid_pairs",
        "density 0.2: a pair at cos -0.8",
        serve=_level(PENTAGON, 1, _break_a_pair),
    ),
    Witness(
        T["intro_pentagon"],
        "mid_least_important_off",
        "density 0.2: feature 4 kept at norm 0.3",
        serve=_level(PENTAGON, 1, lambda W, b: (np.c_[W[:, :4], 0.3 * _unit(W[:, 0] + W[:, 2])], b)),
    ),
    Witness(
        T["intro_pentagon"],
        "sparse_pentagon",
        "density 0.1: one vertex 10° off",
        serve=_level(PENTAGON, 2, lambda W, b: (_rotate(W, 0, 10.0), b)),
    ),
    Witness(
        T["math_identities"],
        "linear_loss_formula",
        "a linear model whose output is 10% too large",
        patch=_forward_patch("linear", lambda out, x: 1.1 * out),
    ),
    Witness(T["math_identities"], "zero_input_loss", "a loss with a constant offset", patch=_loss_patch),
    Witness(
        T["math_identities"],
        "negative_interference_free",
        "a ReLU output model without its ReLU",
        patch=_no_relu_patch,
    ),
    Witness(
        T["math_identities"],
        "positive_interference_costs",
        "1-sparse outputs forced to 0",
        patch=_forward_patch("relu_output", lambda out, x: np.zeros_like(out), lambda x: x.shape[-1] == 2),
    ),
    Witness(
        T["larger_model_rescaled"],
        "orthogonal_counts",
        "no superposition at any density",
        serve=_larger_model,
    ),
]
