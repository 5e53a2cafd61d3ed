"""The pentagon → digon phase change (section "nonuniform superposition") from the exact expected
loss: its minima from a pentagon and from a square start at each relative density of the varied
feature (:mod:`toymodel.experiments.nonuniform`), and the relative density where they cross. No
training and no sampling noise: the claims check the trained transition beside it."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import optimize

from ..experiments import nonuniform
from .expected import minimise_expected_loss
from .optimised import digon_square, regular_polygon

__all__ = ["PentagonMinima", "pentagon_crossover", "pentagon_minima"]


class PentagonMinima(NamedTuple):
    """Minima of the exact expected loss at one relative density, from each start (the one from
    the pentagon start may have collapsed into another geometry:
    :func:`toymodel.analysis.pentagon.label_restarts` says which)."""

    pentagon_loss: float
    square_loss: float
    W_pentagon: np.ndarray
    b_pentagon: np.ndarray
    W_square: np.ndarray
    b_square: np.ndarray


def _densities(rel: float) -> np.ndarray:
    d = np.full(nonuniform.N, nonuniform.BASE_DENSITY)
    d[nonuniform.VARIED] = nonuniform.BASE_DENSITY * rel
    return d


@functools.lru_cache(maxsize=256)
def pentagon_minima(rel: float) -> PentagonMinima:
    """Minimise :func:`~toymodel.theory.expected.expected_loss` (deterministic, no SGD) from a
    regular pentagon (radius 1.1, biases -0.05) and from a square of digons (0, 1), (2, 3) with the
    varied feature off (its bias at its mean), at relative density ``rel``."""
    n, varied = nonuniform.N, nonuniform.VARIED
    d = _densities(rel)
    w_p, b_p, l_p = minimise_expected_loss(regular_polygon(5, n, radius=1.1), np.full(n, -0.05), 1.0, d)
    b0 = np.zeros(n)
    b0[varied] = d[varied] / 2
    w_s, b_s, l_s = minimise_expected_loss(digon_square(n, [(0, 1), (2, 3)]), b0, 1.0, d)
    return PentagonMinima(l_p, l_s, w_p, b_p, w_s, b_s)


@functools.lru_cache(maxsize=4)
def pentagon_crossover(lo: float = 0.15, hi: float = 0.6, xtol: float = 1e-4) -> float:
    """Relative density where the square's minimum overtakes the pentagon's (Brent's method on
    log rel of the loss difference, between ``lo`` and ``hi``, where both minima exist)."""

    def gap(log_rel: float) -> float:
        t = pentagon_minima(math.exp(log_rel))
        return t.square_loss - t.pentagon_loss

    return math.exp(optimize.brentq(gap, math.log(lo), math.log(hi), xtol=xtol))
