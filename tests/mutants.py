"""Deliberately broken implementations: plausible mistakes of a reproduction, one each.

Each mutant is the reference implementation after one mistake a student could make, grouped by
what it touches: every model kind, every sampling rule (values, densities, correlated and
anticorrelated sets), every loss term (importance, L1) and the optimiser. Where the mistake does
not apply to a spec (an L1 mistake on a spec without an L1 term) the mutant returns the
reference's own result for it, read from the shared result cache, so a mutant costs only the
training it changes. Harmful mutants must be caught by the claims (``tests/test_mutants.py`` and
the kill table ``tests/data/kill_table.json``, made by ``python tests/killtable.py``); harmless
ones, such as a somewhat higher learning rate, must not be, and say why.

Run one against the claims with ``pytest claims --impl mutants:<name>`` (``tests/`` on the path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from toymodel.reference import gradients, training
from toymodel.result import expected_loss_steps
from toymodel.spec import FeatureGroup, Spec
from toymodel.suite import implementations
from toymodel.suite.cache import ResultCache, default_cache_dir, fingerprint

Raw = dict[str, Any]


@dataclass(frozen=True)
class Mutant:
    """One mistake: its name (``--impl mutants:<name>``), what it gets wrong, which part of a
    reproduction it touches, and, for a harmless one, why the paper's results should survive it."""

    name: str
    mistake: str
    touches: str
    harmless: str = ""


def _raw(result: Any) -> Raw:
    return {
        "W": result.W,
        "b": result.b,
        "W2": result.W2,
        "loss_steps": result.loss_steps,
        "loss_curve": result.loss_curve,
        "meta": dict(result.meta),
    }


def reference(spec: Spec) -> Raw:
    """The reference implementation's result for ``spec``, from the shared cache when there."""
    impl = implementations.resolve(implementations.DEFAULT)
    cache = ResultCache(default_cache_dir())
    result = cache.get_or_train(
        spec,
        implementations.DEFAULT,
        fingerprint(impl),
        lambda s: implementations.run(implementations.DEFAULT, s, impl),
    )
    return _raw(result)


def _trained_as(spec: Spec, changed: Spec | None) -> Raw:
    """Train ``changed`` in place of ``spec`` (the reference's own result when it is None or equal)."""
    if changed is None or changed == spec:
        return reference(spec)
    return training.train(changed)


def _fit_with(spec: Spec, on_step: Callable[[int, gradients.Params], None]) -> Raw:
    params, steps, curve = training.fit(spec, on_step=on_step)
    weights = {k: v.detach().double().numpy().copy() for k, v in params.as_dict().items()}
    return {**weights, "loss_steps": steps.astype(float), "loss_curve": curve}


# ----- models ---------------------------------------------------------------------------------


def relu_dropped(spec: Spec) -> Raw:
    """The ReLU output model trained without its ReLU (as the linear model)."""
    return _trained_as(spec, spec.replace(model="linear") if spec.model == "relu_output" else None)


def hidden_relu_dropped(spec: Spec) -> Raw:
    """The ReLU-hidden model trained without the hidden ReLU (as the ReLU output model)."""
    return _trained_as(spec, spec.replace(model="relu_output") if spec.model == "relu_hidden" else None)


def linear_gets_relu(spec: Spec) -> Raw:
    """The linear model trained with a ReLU on its output."""
    return _trained_as(spec, spec.replace(model="relu_output") if spec.model == "linear" else None)


def abs_decoder_tied(spec: Spec) -> Raw:
    """The absolute-value model's decoder tied to its encoder (W2 = Wᵀ), as in the other models."""
    if spec.model != "abs":
        return reference(spec)

    def tie(_: int, p: gradients.Params) -> None:
        assert p.W2 is not None
        p.W2.copy_(p.W.transpose(1, 2))

    return _fit_with(spec, tie)


# ----- sampling -------------------------------------------------------------------------------


def abs_inputs_unsigned(spec: Spec) -> Raw:
    """Inputs of the absolute-value model drawn from U[0, 1] instead of U[-1, 1]."""
    return _trained_as(spec, spec.replace(values="uniform01") if spec.values == "uniform_pm1" else None)


def density_swapped(spec: Spec) -> Raw:
    """Sparsity S used where the density 1 - S was meant."""
    return _trained_as(spec, spec.replace(density=1.0 - spec.density_array()))


def correlation_ignored(spec: Spec) -> Raw:
    """Correlated sets sampled as independent features (each with the set's density)."""
    kept = tuple(g for g in spec.groups if g.kind != "correlated")
    return _trained_as(spec, spec.replace(groups=kept) if kept != spec.groups else None)


def anticorrelation_ignored(spec: Spec) -> Raw:
    """Anticorrelated sets sampled as independent features with the right marginal density
    (density / k each), so two members can be active at once."""
    anti = [g for g in spec.groups if g.kind == "anticorrelated"]
    if not anti:
        return reference(spec)
    density = spec.density_array()
    for g in anti:
        density[:, list(g.features)] /= len(g.features)
    kept: tuple[FeatureGroup, ...] = tuple(g for g in spec.groups if g.kind != "anticorrelated")
    return _trained_as(spec, spec.replace(groups=kept, density=density))


# ----- loss -----------------------------------------------------------------------------------


def _uniform(rows: np.ndarray) -> bool:
    return bool(np.all(rows == rows[:, :1]))


def importance_ignored(spec: Spec) -> Raw:
    """Every feature weighted 1 in the loss."""
    imp = spec.importance_array()
    return _trained_as(spec, None if _uniform(imp) else spec.replace(importance=np.ones_like(imp)))


def importance_reversed(spec: Spec) -> Raw:
    """The importance schedule indexed backwards (the last feature the most important)."""
    imp = spec.importance_array()
    return _trained_as(spec, None if _uniform(imp) else spec.replace(importance=imp[:, ::-1].copy()))


def l1_ignored(spec: Spec) -> Raw:
    """The L1 penalty on the hidden activations left out of the loss."""
    return _trained_as(spec, spec.replace(hidden_l1=None) if spec.hidden_l1 is not None else None)


def l1_summed_over_batch(spec: Spec) -> Raw:
    """The L1 penalty summed over the batch instead of averaged (batch_size times too strong)."""
    if spec.hidden_l1 is None:
        return reference(spec)
    return _trained_as(spec, spec.replace(hidden_l1=spec.hidden_l1_array() * spec.train.batch_size))


# ----- optimiser ------------------------------------------------------------------------------


def bias_frozen(spec: Spec) -> Raw:
    """The output bias held at 0 throughout training (left out of the optimiser)."""

    def freeze(_: int, p: gradients.Params) -> None:
        p.b.zero_()

    return _fit_with(spec, freeze)


def too_few_steps(spec: Spec) -> Raw:
    """Training stopped after 1% of the steps (the loss curve padded with its last value)."""
    short = spec.replace(train={"steps": max(1, spec.train.steps // 100)})
    raw = training.train(short)
    steps = expected_loss_steps(spec)
    curve = np.repeat(raw["loss_curve"][:, -1:], steps.size, axis=1)
    curve[:, : raw["loss_curve"].shape[1]] = raw["loss_curve"][:, : steps.size]
    return {**raw, "loss_steps": steps, "loss_curve": curve}


def lr_10x(spec: Spec) -> Raw:
    """A learning rate ten times the spec's."""
    return _trained_as(spec, spec.replace(train={"lr": spec.train.lr * 10}))


def lr_1_5x(spec: Spec) -> Raw:
    """A learning rate 1.5 times the spec's (harmless)."""
    return _trained_as(spec, spec.replace(train={"lr": spec.train.lr * 1.5}))


MUTANTS: tuple[Mutant, ...] = (
    Mutant("relu_dropped", "ReLU output model trained as linear", "model: relu_output"),
    Mutant("hidden_relu_dropped", "ReLU-hidden model trained without the hidden ReLU", "model: relu_hidden"),
    Mutant("linear_gets_relu", "linear model trained with a ReLU output", "model: linear"),
    Mutant("abs_decoder_tied", "absolute-value model with a tied decoder (W2 = Wᵀ)", "model: abs"),
    Mutant("abs_inputs_unsigned", "absolute-value inputs from U[0, 1], not U[-1, 1]", "sampling: values"),
    Mutant("density_swapped", "sparsity S used as the density", "sampling: density"),
    Mutant("correlation_ignored", "correlated sets sampled independently", "sampling: correlated sets"),
    Mutant(
        "anticorrelation_ignored",
        "anticorrelated sets sampled independently (right marginals)",
        "sampling: anticorrelated sets",
    ),
    Mutant("importance_ignored", "all importances 1", "loss: importance"),
    Mutant("importance_reversed", "importance schedule indexed backwards", "loss: importance"),
    Mutant("l1_ignored", "L1 penalty left out of the loss", "loss: L1"),
    Mutant("l1_summed_over_batch", "L1 penalty summed over the batch", "loss: L1"),
    Mutant("bias_frozen", "output bias held at 0", "optimiser: parameters"),
    Mutant("too_few_steps", "1% of the training steps", "optimiser: steps"),
    Mutant("lr_10x", "learning rate x10", "optimiser: learning rate"),
    Mutant(
        "lr_1_5x",
        "learning rate x1.5",
        "optimiser: learning rate",
        harmless="AdamW at 1.5e-3 converges to the same solutions as at 1e-3 within the budget",
    ),
)
BY_NAME = {m.name: m for m in MUTANTS}


# ----- broken results (the contract, not a claim, catches these) -----------------------------


def returns_nan(spec: Spec) -> Raw:
    """A numerically broken implementation: NaN weights."""
    raw = too_few_steps(spec)
    W = np.array(raw["W"])
    W[0, 0, 0] = np.nan
    return {**raw, "W": W}


def wrong_shape(spec: Spec) -> Raw:
    """W returned as (instances, n, m) instead of (instances, m, n)."""
    raw = too_few_steps(spec)
    return {**raw, "W": np.swapaxes(raw["W"], 1, 2)}


def raises(spec: Spec) -> Raw:
    """An implementation that crashes."""
    raise RuntimeError(f"cannot train {spec.model}")
