"""Selecting among restarts: the lowest held-out loss per setting, the paper's rule.

Local minima are the main cause of failed reproductions, so claims about the optimal geometry
look at the restart with the lowest held-out loss of each setting ("fit multiple times, keep the
lowest loss"). Weights are never averaged across restarts: each restart's solution is only
determined up to a rotation (and a permutation of equivalent features), so an average of two
pentagons is not a pentagon. Pick one restart; compute metrics on it.

Instances are setting-major, as in :class:`toymodel.spec.Spec`: instance ``s * restarts + r`` is
setting s, restart r. Losses that are NaN rank last; ties go to the lowest restart index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..result import Result

__all__ = ["Best", "best_by_label", "best_of", "lowest_loss", "near_best"]


def _by_setting(losses: ArrayLike, settings: int | None, restarts: int | None, name: str) -> np.ndarray:
    arr = np.asarray(losses, dtype=np.float64)
    if settings is None and restarts is None:
        if arr.ndim != 2:
            raise ValueError(
                f"{name} must have shape (settings, restarts) when settings and restarts are "
                f"not given; got shape {arr.shape}"
            )
        return arr
    if settings is None or restarts is None:
        raise ValueError("give both settings and restarts, or neither")
    if settings < 1 or restarts < 1:
        raise ValueError(f"settings and restarts must be >= 1; got {settings}, {restarts}")
    if arr.size != settings * restarts or arr.ndim not in (1, 2):
        raise ValueError(
            f"{name} must hold settings x restarts = {settings} x {restarts} losses, as "
            f"(instances,) or (settings, restarts); got shape {arr.shape}"
        )
    if arr.ndim == 2 and arr.shape != (settings, restarts):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({settings}, {restarts})")
    return arr.reshape(settings, restarts)


def _rankable(arr: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(arr), np.inf, arr)


def lowest_loss(eval_loss: ArrayLike, settings: int | None = None, restarts: int | None = None) -> np.ndarray:
    """Per setting, the index (0..restarts-1) of the restart with the lowest held-out loss: (settings,).

    ``eval_loss`` is (instances,) in setting-major order (give settings and restarts) or already
    (settings, restarts).
    """
    arr = _by_setting(eval_loss, settings, restarts, "eval_loss")
    return np.argmin(_rankable(arr), axis=1)


@dataclass(frozen=True)
class Best:
    """The lowest-held-out-loss restart of every setting of a result.

    restart: (S,) chosen restart per setting; instance: (S,) its instance index in the result;
    eval_loss: (S,) its held-out loss; W: (S, m, n); b: (S, n); W2: (S, n, m) or None.
    """

    restart: np.ndarray
    instance: np.ndarray
    eval_loss: np.ndarray
    W: np.ndarray
    b: np.ndarray
    W2: np.ndarray | None


def best_of(result: Result) -> Best:
    """The best restart of each setting of ``result`` (lowest ``eval_loss``), with its weights."""
    spec = result.spec
    losses = result.by_setting(result.eval_loss)
    restart = lowest_loss(losses)
    instance = np.arange(spec.settings) * spec.restarts + restart
    return Best(
        restart=restart,
        instance=instance,
        eval_loss=result.eval_loss[instance],
        W=result.W[instance],
        b=result.b[instance],
        W2=None if result.W2 is None else result.W2[instance],
    )


def near_best(result: Result, se: float = 1.0) -> np.ndarray:
    """(settings, restarts) mask of the restarts whose held-out loss is within ``se`` standard
    errors (of the lowest one's estimate) of their setting's lowest: the restarts the held-out
    sample cannot rank below the best. "The lowest-loss solution is X" is read as "a restart in this
    set is X" where two solutions tie within sampling error."""
    losses = result.by_setting(result.eval_loss)
    errors = result.by_setting(
        result.eval_loss_se if result.eval_loss_se is not None else np.zeros_like(result.eval_loss)
    )
    best = lowest_loss(losses)
    rows = np.arange(losses.shape[0])
    cutoff = losses[rows, best] + se * errors[rows, best]
    return _rankable(losses) <= cutoff[:, None]


def best_by_label(losses: ArrayLike, labels: ArrayLike) -> dict[str, np.ndarray]:
    """Per geometry label, the lowest loss of the restarts with that label, per setting.

    ``losses`` and ``labels`` share a shape (..., restarts), e.g. (settings, restarts) from
    ``result.by_setting``. Returns {label: (...,) lowest loss, NaN where no restart of that setting
    has the label}, labels in sorted order. Plotting these against the setting shows where one
    geometry overtakes another (the pentagon / square loss crossover).
    """
    loss = np.asarray(losses, dtype=np.float64)
    lab = np.asarray(labels).astype(str)
    if loss.ndim < 1 or lab.shape != loss.shape:
        raise ValueError(
            f"labels must have the shape of losses (..., restarts); got labels {lab.shape}, "
            f"losses {loss.shape}"
        )
    if loss.size == 0:
        raise ValueError("losses is empty")
    out: dict[str, np.ndarray] = {}
    for name in sorted({str(x) for x in lab.reshape(-1)}):
        hit = (lab == name) & ~np.isnan(loss)
        best = np.min(np.where(hit, loss, np.inf), axis=-1)
        out[name] = np.where(np.any(hit, axis=-1), best, np.nan)
    return out
