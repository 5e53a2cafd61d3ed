"""The pentagon sweep (:mod:`toymodel.experiments.nonuniform`) measured: the geometry label and the
exact expected loss of every trained instance (n=5, m=2, I=1)."""

from __future__ import annotations

import numpy as np

from .. import theory
from ..experiments.nonuniform import VARIED, M, N
from . import geometry

__all__ = ["LABELS", "exact_losses", "label_restarts"]


LABELS: tuple[str, ...] = ("pentagon", "square", "triangle", "other")


def exact_losses(W: np.ndarray, b: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Exact expected loss (:func:`toymodel.theory.expected_loss`, I=1) of each instance: W
    (..., 2, 5), b and density (..., 5). The limit of common random numbers: no sampling noise."""
    w = np.asarray(W).reshape(-1, M, N)
    bb, dd = np.asarray(b).reshape(-1, N), np.broadcast_to(density, np.shape(b)).reshape(-1, N)
    out = [theory.expected_loss(w[k], bb[k], 1.0, dd[k])[0] for k in range(w.shape[0])]
    return np.array(out).reshape(np.shape(b)[:-1])


def label_restarts(W: np.ndarray) -> np.ndarray:
    """Geometry label per instance of W (..., 2, 5), one of :data:`LABELS`: ``pentagon`` (5
    represented, gaps 72° ± 15°), ``square`` (two orthogonal digons with the *varied* feature off),
    ``triangle``, else ``other`` (including a square that drops a different feature)."""
    flat = np.asarray(W).reshape(-1, M, N)
    out = []
    for w in flat:
        shape = geometry.describe_2d(w)
        if shape.label == "square":
            out.append("square" if shape.off == (VARIED,) else "other")
        else:
            out.append(shape.label if shape.label in LABELS else "other")
    return np.array(out, dtype=str).reshape(np.shape(W)[:-2])
