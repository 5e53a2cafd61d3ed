"""Analytic adversarial attacks on the toy models and the vulnerability metric (pure numpy).

The paper ("Superposition and adversarial examples") attacks feature i of a tied model with the
L2 perturbation that most increases the pre-activation of output i, ``δ_i = ε (WᵀW)_i /
‖(WᵀW)_i‖`` (row i of WᵀW is the gradient of output i's pre-activation with respect to the
input), with a budget ε of 0.1 x the mean input norm, and reports the vulnerability relative to
a model without superposition. It does not spell the metric out; ours is:

    vulnerability = E_x [ max_i ( ‖f(x + δ_i) − x‖² − ‖f(x) − x‖² ) ] / ε²

- x runs over held-out inputs with at least one active feature. The empty input carries nothing
  to corrupt and a model with negative biases ignores a tiny perturbation of it; as density
  falls, empty inputs would make up almost the whole sample and the budget (0.1 x the mean norm
  over all inputs) would shrink towards 0, so the measure would report the sparsity, not the
  geometry.
- ε = 0.1 x the mean ‖x‖ over those inputs.
- The adversary picks, per input, the most damaging of the per-feature attacks (features whose
  row of WᵀW is non-zero, i.e. that the model represents at all).
- The damage is the increase in the (unweighted) squared reconstruction error of the clean input.
  A model without superposition is an isometry on the features it represents: any attack along a
  represented feature moves exactly that output by exactly ε (inputs are non-negative, so the
  ReLU never clips it), a damage of exactly ε². Dividing by ε² therefore makes the value the
  vulnerability relative to the ideal non-superposition model, 1 by construction for it
  (:func:`ideal_weights`), and independent of which features a model chose to represent.
  Unweighted, because importance weights would measure the attacked model's priorities, not the
  amplification: in superposition one attack spills into many outputs.

In the linear regime a tight frame of N unit features in m dimensions has (WᵀW)² = (N/m) WᵀW,
so every attack moves the output by ε N/m, a damage of (N/m)² ε²: vulnerability grows with the
number of features per dimension ‖W‖_F²/m (the ReLU and negative biases clip part of it).
"""

from __future__ import annotations

import numpy as np

from .. import models
from . import metrics

__all__ = [
    "ATTACK_SCALE",
    "attack_budget",
    "attack_damage",
    "attack_directions",
    "ideal_weights",
    "vulnerability",
]

#: the paper's attack budget: 0.1 x the mean input norm
ATTACK_SCALE = 0.1
#: rows of WᵀW below this norm belong to features the model does not represent: no attack
MIN_ROW_NORM = 1e-6


def attack_directions(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit attack directions (WᵀW)_i / ‖(WᵀW)_i‖ and which features can be attacked.

    Args:
        W: (..., m, n) tied weights.
    Returns:
        directions (..., n, n) with row i the attack on feature i (0 where it cannot be attacked),
        and a boolean (..., n) mask of the attackable features (‖(WᵀW)_i‖ >= MIN_ROW_NORM).
    """
    G = metrics.gram(W)
    norms = np.linalg.norm(G, axis=-1)
    ok = norms >= MIN_ROW_NORM
    return np.where(ok[..., None], G / np.where(ok, norms, 1.0)[..., None], 0.0), ok


def attack_budget(x: np.ndarray, scale: float = ATTACK_SCALE) -> float:
    """ε = ``scale`` x the mean L2 norm of the inputs ``x`` (batch, n)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (batch, n) array; got shape {x.shape}")
    return float(scale * np.linalg.norm(x, axis=-1).mean())


def _single(model: str, W: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    if model not in ("linear", "relu_output"):
        raise ValueError(
            f"the analytic attack is defined for tied models without a hidden ReLU "
            f"('linear', 'relu_output'), not {model!r}"
        )
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if W.ndim != 2 or b.shape != (W.shape[1],):
        raise ValueError(f"W must be (m, n) and b (n,); got {W.shape} and {b.shape}")
    return {"W": W[None], "b": b[None]}


def attack_damage(model: str, W: np.ndarray, b: np.ndarray, x: np.ndarray, eps: float) -> np.ndarray:
    """Damage of each per-feature attack on each input: (n, batch), NaN for features that cannot
    be attacked. Damage = ‖f(x + ε u_i) − x‖² − ‖f(x) − x‖² (unweighted squared error of the
    reconstruction of the clean input x).
    """
    params = _single(model, W, b)
    x = np.asarray(x, dtype=np.float64)
    directions, ok = attack_directions(params["W"][0])
    clean, _ = models.forward(model, params, x[None])
    base = np.sum((clean[0] - x) ** 2, axis=-1)
    out = np.full((x.shape[1], x.shape[0]), np.nan)
    for i in np.flatnonzero(ok):
        attacked, _ = models.forward(model, params, (x + eps * directions[i])[None])
        out[i] = np.sum((attacked[0] - x) ** 2, axis=-1) - base
    return out


def vulnerability(
    model: str, W: np.ndarray, b: np.ndarray, x: np.ndarray, scale: float = ATTACK_SCALE
) -> float:
    """Vulnerability relative to the ideal non-superposition model (see the module docstring):
    the mean over the inputs with an active feature of the worst per-feature attack's damage,
    divided by ε², with ε = ``scale`` x their mean norm. NaN if no feature can be attacked."""
    x = np.asarray(x, dtype=np.float64)
    active = x[np.any(x != 0, axis=-1)]
    if active.shape[0] == 0:
        raise ValueError("x holds no input with an active feature")
    eps = attack_budget(active, scale)
    damage = attack_damage(model, W, b, active, eps)
    if np.all(np.isnan(damage)):
        return float("nan")
    return float(np.nanmax(damage, axis=0).mean() / eps**2)


def ideal_weights(n: int, m: int, features: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The non-superposition reference: ``min(m, n)`` features (default the first ones) on
    orthonormal axes, the others absent, bias 0. Its vulnerability is exactly 1."""
    feats = np.arange(min(m, n)) if features is None else np.asarray(features, dtype=int)
    if feats.size > m or len(set(feats.tolist())) != feats.size or np.any((feats < 0) | (feats >= n)):
        raise ValueError(f"features must be at most m={m} distinct indices in [0, {n})")
    W = np.zeros((m, n))
    W[np.arange(feats.size), feats] = 1.0
    return W, np.zeros(n)
