"""Regimes of a loss curve: plateaus and the drops between them, as a pure numpy metric.

Toy models often learn in stages: the loss sits on a plateau while the weights reorganise, then
falls quickly to a lower plateau when a feature finds its place (the paper's "learning dynamics";
each drop is a jump of the geometry). :func:`detect_regimes` finds those stages in a logged loss
curve so a claim can count them.

Definitions, in log-loss (the stages of a loss curve differ by factors, not by amounts):

- the curve is resampled on a uniform step grid, smoothed with a centred moving average
  ``smooth`` steps wide (SGD noise must not split a plateau), then logged: the loss is averaged
  before the log, because at high sparsity single windows of the training loss can dip by
  orders of magnitude (hardly any active feature in them) and would dominate an average of logs;
- a point is *flat* when the smoothed log-loss changes by less than ``flat_tol`` over the
  ``window`` steps around it, i.e. the loss moves by less than about ``flat_tol`` (relative) per
  ``window`` steps;
- a *plateau* is a run of flat points at least ``min_plateau`` steps long whose smoothed
  log-loss spans less than ``span_tol`` (a long slow decline is cut into pieces of that span, so
  it never passes for a drop);
- an *event* is a plateau followed by a *drop*: the log-loss falls by at least ``min_drop`` from
  the plateau's level to the next plateau's level (or to the curve's end); the fall happens in
  the non-flat stretch between the two plateaus; the drop's step is where the curve first
  crosses the midpoint (in log-loss) between the two levels.

The initial descent from the random init is not an event unless the curve starts on a plateau.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Plateau", "Regimes", "detect_regimes"]


@dataclass(frozen=True)
class Plateau:
    """A flat stretch of the curve: ``start``..``end`` (steps) at loss ``level`` (geometric mean),
    followed by a fall to ``next_level`` (the next plateau's level, or the final loss)."""

    start: float
    end: float
    level: float
    next_level: float

    @property
    def drop(self) -> float:
        """log(level / next_level): the fall after this plateau, in log-loss (>= 0 if it falls)."""
        return float(np.log(self.level) - np.log(self.next_level))


@dataclass(frozen=True)
class Regimes:
    """All plateaus of a curve, in order, and the events among them.

    ``events`` are the plateaus followed by a drop of at least ``min_drop`` (log-loss), i.e. the
    plateau-then-drop stages; ``drop_steps`` are the steps where each of those drops crosses the
    midpoint between its two levels.
    """

    plateaus: tuple[Plateau, ...]
    events: tuple[Plateau, ...]
    drop_steps: tuple[float, ...]

    @property
    def count(self) -> int:
        """Number of plateau-then-drop events."""
        return len(self.events)

    def describe(self) -> str:
        """One line per plateau, for failure messages and reports."""
        return (
            "; ".join(
                f"[{p.start:.0f}-{p.end:.0f}] {p.level:.4g} -> {p.next_level:.4g}"
                f"{' DROP' if p in self.events else ''}"
                for p in self.plateaus
            )
            or "no plateau"
        )


def _moving_average(y: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of odd ``width`` points, shrinking at the edges (no padding bias)."""
    if width <= 1:
        return y.copy()
    half = width // 2
    c = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(y.size)
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, y.size)
    return (c[hi] - c[lo]) / (hi - lo)


def detect_regimes(
    steps: ArrayLike,
    loss: ArrayLike,
    *,
    smooth: float = 300.0,
    window: float = 500.0,
    flat_tol: float = 0.02,
    span_tol: float = 0.05,
    min_plateau: float = 1000.0,
    min_drop: float = 0.1,
) -> Regimes:
    """Plateaus and plateau-then-drop events of one loss curve (see the module docstring).

    Args:
        steps: (K,) increasing steps at which the loss was logged (e.g. ``result.loss_steps``).
        loss: (K,) positive training losses (one instance's row of ``result.loss_curve``).
        smooth: width (steps) of the moving average applied to the log-loss.
        window: the span (steps) over which a flat point's log-loss changes by < ``flat_tol``.
        flat_tol: the largest log-loss change over ``window`` steps that still counts as flat.
        span_tol: the largest log-loss range inside one plateau.
        min_plateau: the shortest plateau (steps).
        min_drop: the smallest fall (log-loss) after a plateau that makes an event; 0.1 is a 10%
            lower loss.
    Returns:
        :class:`Regimes`.
    """
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"steps and loss must be 1-D of one length; got shapes {x.shape}, {y.shape}")
    if x.size < 3:
        raise ValueError(f"a loss curve needs at least 3 points; got {x.size}")
    if np.any(np.diff(x) <= 0):
        raise ValueError("steps must be strictly increasing")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("loss must be finite and positive (regimes are found in log-loss)")
    for name, value in (("smooth", smooth), ("window", window), ("min_plateau", min_plateau)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0 steps; got {value}")
    for name, value in (("flat_tol", flat_tol), ("span_tol", span_tol), ("min_drop", min_drop)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0 (log-loss); got {value}")

    dx = float(np.median(np.diff(x)))
    grid = np.arange(x[0], x[-1] + 0.5 * dx, dx)
    z = np.log(_moving_average(np.interp(grid, x, y), int(2 * round(smooth / dx / 2) + 1)))
    h = max(1, round(window / dx / 2))
    ahead, behind = np.minimum(np.arange(z.size) + h, z.size - 1), np.maximum(np.arange(z.size) - h, 0)
    flat = np.abs(z[ahead] - z[behind]) < flat_tol * (ahead - behind) / (2 * h)

    # plateaus: flat runs, cut where the range would exceed span_tol, kept if long enough
    runs: list[tuple[int, int]] = []
    i = 0
    while i < z.size:
        if not flat[i]:
            i += 1
            continue
        j, lo, hi = i, z[i], z[i]
        while j + 1 < z.size and flat[j + 1] and max(hi, z[j + 1]) - min(lo, z[j + 1]) < span_tol:
            j += 1
            lo, hi = min(lo, z[j]), max(hi, z[j])
        if (j - i) * dx >= min_plateau:
            runs.append((i, j))
        i = j + 1

    plateaus: list[Plateau] = []
    events: list[Plateau] = []
    drop_steps: list[float] = []
    for k, (i, j) in enumerate(runs):
        level = float(np.mean(z[i : j + 1]))
        if k + 1 < len(runs):
            ni, nj = runs[k + 1]
            nxt, stop = float(np.mean(z[ni : nj + 1])), ni
        else:
            nxt, stop = float(z[-1]), z.size - 1
        p = Plateau(
            start=float(grid[i]),
            end=float(grid[j]),
            level=float(np.exp(level)),
            next_level=float(np.exp(nxt)),
        )
        plateaus.append(p)
        if level - nxt >= min_drop:
            events.append(p)
            below = np.flatnonzero(z[j : stop + 1] <= 0.5 * (level + nxt))
            drop_steps.append(float(grid[j + int(below[0])]) if below.size else float(grid[stop]))
    return Regimes(plateaus=tuple(plateaus), events=tuple(events), drop_steps=tuple(drop_steps))
