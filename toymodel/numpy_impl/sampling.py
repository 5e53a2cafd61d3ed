"""The numpy implementation's sampler: batches with the distribution of
:func:`toymodel.data.sample`, one uniform per entry, feature-major."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..spec import FeatureGroup

__all__ = ["Sampler"]


class Sampler:
    """Batches with the distribution of :func:`toymodel.data.sample`, one uniform per entry.

    For a feature of density p and u ~ U[0, 1), ``v = 1 - u / p`` is positive with probability
    p and then uniform on (0, 1]: ``max(v, 0)`` is "0 with probability 1 - p, else U[0, 1]".
    Correlated group: the first member's v sets the shared mask (and its value), the other
    members' uniforms are their values. Anticorrelated group: the first member's v sets whether
    the group fires and the value, the second member's uniform picks the carrier.
    ``uniform_pm1`` maps an active value a to 2a - 1. In float32, u is a multiple of 2^-24, so
    values at density p take about p * 2^24 distinct levels (16 000 at p = 0.001).

    Batches are feature-major, (instances, n, batch): the layout :class:`Trainer` works in.
    """

    def __init__(
        self,
        density: np.ndarray,
        batch: int,
        rng: np.random.Generator,
        *,
        groups: Sequence[FeatureGroup] = (),
        values: str = "uniform01",
        dtype: type[np.floating] = np.float32,
    ) -> None:
        density = np.asarray(density, dtype=np.float64)
        if density.ndim != 2:
            raise ValueError(f"density must be (instances, n), got shape {density.shape}")
        if values not in ("uniform01", "uniform_pm1"):
            raise ValueError(f"values must be 'uniform01' or 'uniform_pm1', got {values!r}")
        inst, n = density.shape
        self.rng, self.groups, self.pm1 = rng, tuple(groups), values == "uniform_pm1"
        # -1/p; a zero density gets a finite stand-in and is masked explicitly (u = 0 can occur)
        self._neg_inv = (-1.0 / np.maximum(density, 1e-30)).astype(dtype)[:, :, None]
        self._never = [(int(i), int(f)) for i, f in np.argwhere(density == 0.0)]
        self.u = np.empty((inst, n, batch), dtype=dtype)
        self.x = np.empty_like(self.u)
        self._zeros = np.zeros_like(self.u)
        self._mask = np.empty(self.u.shape, dtype=bool)

    def draw(self) -> np.ndarray:
        """A fresh (instances, n, batch) batch; the buffer is overwritten by the next call."""
        u, x = self.u, self.x
        self.rng.random(out=u, dtype=u.dtype)
        np.multiply(u, self._neg_inv, out=x)
        x += 1.0
        for g in self.groups:  # before the ReLU: a lead's v > 0 is its group's activity
            self._group(g)
        if self.pm1:
            np.greater(x, 0.0, out=self._mask)
            x *= 2.0
            x -= 1.0
            x *= self._mask
        else:
            np.maximum(x, self._zeros, out=x)  # an array operand is ~3x faster than a scalar here
        for i, f in self._never:
            x[i, f] = 0.0
        return x

    def _group(self, g: FeatureGroup) -> None:
        u, x = self.u, self.x
        lead, rest = g.features[0], list(g.features[1:])
        if g.kind == "correlated":
            # the others: their own uniform where the group is active, else 0 (i.e. <= 0 pre-ReLU)
            x[:, rest] = np.where(x[:, lead : lead + 1] > 0.0, u[:, rest], 0.0)
        else:
            k = len(g.features)
            pick = np.minimum((u[:, rest[0]] * k).astype(np.intp), k - 1)
            v = x[:, lead].copy()
            for j, f in enumerate(g.features):
                x[:, f] = np.where(pick == j, v, 0.0)
