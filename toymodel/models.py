"""The toy models' forward pass, loss and initialisation, in numpy.

These define the models for every layer above ``implementation``: the held-out loss of any
result is recomputed here, so restarts are ranked the same way whichever implementation trained
them. Weight layout (all with a leading instance axis):

- ``W``  (instances, m, n): column ``W[:, :, i]`` is feature i's direction (the encoder; also
  the tied decoder for ``linear``, ``relu_output`` and ``relu_hidden``);
- ``b``  (instances, n): the output bias;
- ``W2`` (instances, n, m): the untied decoder of the ``abs`` model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .data import eval_chunks, seed_sequence
from .spec import Spec

__all__ = ["eval_loss", "eval_loss_and_se", "forward", "initial_weights", "loss", "sample_losses", "target"]


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def forward(model: str, params: Mapping[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output and hidden activations for inputs ``x`` (instances, batch, n)."""
    W, b = params["W"], params["b"]
    h = np.matmul(x, np.swapaxes(W, -1, -2))  # (I, B, m)
    if model == "linear":
        return np.matmul(h, W) + b[:, None, :], h
    if model == "relu_output":
        return _relu(np.matmul(h, W) + b[:, None, :]), h
    if model == "relu_hidden":
        h = _relu(h)
        return _relu(np.matmul(h, W) + b[:, None, :]), h
    if model == "abs":
        h = _relu(h)
        return _relu(np.matmul(h, np.swapaxes(params["W2"], -1, -2)) + b[:, None, :]), h
    raise ValueError(f"unknown model kind {model!r}")


def target(model: str, x: np.ndarray) -> np.ndarray:
    """What the model reconstructs: ``|x|`` for ``abs``, ``x`` otherwise."""
    return np.abs(x) if model == "abs" else x


def sample_losses(
    model: str,
    params: Mapping[str, np.ndarray],
    x: np.ndarray,
    importance: np.ndarray,
) -> np.ndarray:
    """Per-instance, per-sample loss sum_i I_i (y_i - y'_i)^2: (instances, batch)."""
    out, _ = forward(model, params, x)
    return ((target(model, x) - out) ** 2 * importance[:, None, :]).sum(-1)


def loss(
    model: str,
    params: Mapping[str, np.ndarray],
    x: np.ndarray,
    importance: np.ndarray,
    hidden_l1: np.ndarray | None = None,
) -> np.ndarray:
    """Per-instance loss: mean over the batch of sum_i I_i (y_i - y'_i)^2 (+ l1 * ||h||_1)."""
    if hidden_l1 is None:
        return sample_losses(model, params, x, importance).mean(-1)
    out, h = forward(model, params, x)
    per = ((target(model, x) - out) ** 2 * importance[:, None, :]).sum(-1).mean(-1)
    return per + hidden_l1 * np.abs(h).sum(-1).mean(-1)


def eval_loss_and_se(spec: Spec, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Held-out loss per instance on the spec's fixed evaluation sample (without the L1 term), and
    its standard error (the per-sample losses' standard deviation over sqrt(eval_samples)).

    All restarts of a setting are scored on the same sample (:func:`toymodel.data.eval_chunks`),
    so differences between restarts are not sampling noise. This is the number the suite ranks
    restarts and checks losses with, whatever an implementation reports about itself.
    """
    r = spec.restarts
    imp = spec.importance_array()
    total = np.zeros(spec.instances)
    squares = np.zeros(spec.instances)
    for s in range(spec.settings):
        sl = slice(s * r, (s + 1) * r)
        mine = {k: np.asarray(v)[sl] for k, v in params.items()}
        for x in eval_chunks(spec, s):
            per = sample_losses(spec.model, mine, x[None], np.broadcast_to(imp[s], (r, spec.n)))
            total[sl] += per.sum(-1)
            squares[sl] += (per**2).sum(-1)
    mean = total / spec.eval_samples
    var = np.maximum(squares / spec.eval_samples - mean**2, 0.0)
    return mean, np.sqrt(var / spec.eval_samples)


def eval_loss(spec: Spec, params: Mapping[str, np.ndarray]) -> np.ndarray:
    """Held-out loss per instance on the spec's fixed evaluation sample (see
    :func:`eval_loss_and_se`)."""
    return eval_loss_and_se(spec, params)[0]


def initial_weights(spec: Spec, stream: str = "init") -> dict[str, np.ndarray]:
    """Initial parameters, float64: W (and W2) ~ N(0, resolved_init_std), b = 0.

    Instance k draws from its own stream ``(seed, stream, k)``, so an instance's start does not
    depend on how many others are trained beside it (only the std does, as in the notebook).
    ``stream`` names the implementation's own streams: the reference uses ``"init"``, the other
    bundled implementations their own, so that two implementations at one seed are two
    independent samples, not one start trained twice.
    """
    std = spec.resolved_init_std()
    Ws, W2s = [], []
    for k in range(spec.instances):
        rng = np.random.Generator(np.random.PCG64(seed_sequence(spec.seed, stream, k)))
        Ws.append(rng.normal(0.0, std, size=(spec.m, spec.n)))
        if spec.model == "abs":
            W2s.append(rng.normal(0.0, std, size=(spec.n, spec.m)))
    params = {"W": np.stack(Ws), "b": np.zeros((spec.instances, spec.n))}
    if spec.model == "abs":
        params["W2"] = np.stack(W2s)
    return params
