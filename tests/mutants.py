"""Deliberately broken implementations: the claims suite must fail each of them.

Each mutant trains with the reference implementation after one plausible mistake of a
reproduction, and returns the result under the spec it was asked for. ``tests/test_mutants.py``
runs selected claims against each (``--impl mutants:<name>``) and asserts a failure.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from toymodel import impl_torch, models
from toymodel.result import Result
from toymodel.spec import Spec


def _as_asked(asked: Spec, trained: Result, name: str) -> Result:
    params = trained.params
    return dataclasses.replace(trained, spec=asked, implementation=name,
                               eval_loss=models.eval_loss(asked, params))


def relu_dropped(spec: Spec) -> Result:
    """The ReLU output model trained as a linear model."""
    model = "linear" if spec.model == "relu_output" else spec.model
    return _as_asked(spec, impl_torch.train(spec.replace(model=model)), "relu_dropped")


def importance_ignored(spec: Spec) -> Result:
    """Every feature weighted 1 in the loss."""
    return _as_asked(spec, impl_torch.train(spec.replace(importance=np.ones(spec.n))), "importance_ignored")


def density_swapped(spec: Spec) -> Result:
    """Sparsity S used where the density 1 - S was meant."""
    flipped = 1.0 - spec.density_array()
    return _as_asked(spec, impl_torch.train(spec.replace(density=flipped)), "density_swapped")


def too_few_steps(spec: Spec) -> Result:
    """Training stopped after 1% of the steps."""
    short = spec.replace(train={"steps": max(1, spec.train.steps // 100)})
    return _as_asked(spec, impl_torch.train(short), "too_few_steps")


def correlation_ignored(spec: Spec) -> Result:
    """Correlated / anticorrelated sets sampled as independent features."""
    return _as_asked(spec, impl_torch.train(spec.replace(groups=())), "correlation_ignored")


def bias_frozen(spec: Spec) -> Result:
    """The output bias held at 0 throughout training."""

    def freeze(_: int, p: impl_torch.Params) -> None:
        p.b.zero_()

    params, steps, curve = impl_torch.fit(spec, on_step=freeze)
    weights = {k: v.double().numpy().copy() for k, v in params.as_dict().items()}
    return Result(spec=spec, W=weights["W"], b=weights["b"], W2=weights.get("W2"),
                  loss_steps=steps.astype(float), loss_curve=curve,
                  eval_loss=models.eval_loss(spec, weights), implementation="bias_frozen")


def returns_nan(spec: Spec) -> Result:
    """A numerically broken implementation: NaN weights."""
    res = too_few_steps(spec)
    W = res.W.copy()
    W[0, 0, 0] = np.nan
    return dataclasses.replace(res, W=W)


def wrong_shape(spec: Spec) -> dict[str, object]:
    """W returned as (instances, n, m) instead of (instances, m, n)."""
    res = too_few_steps(spec)
    return {"W": np.swapaxes(res.W, 1, 2), "b": res.b, "loss_steps": res.loss_steps,
            "loss_curve": res.loss_curve, "eval_loss": res.eval_loss}


def raises(spec: Spec) -> Result:
    """An implementation that crashes."""
    raise RuntimeError(f"cannot train {spec.model}")
