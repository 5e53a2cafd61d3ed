"""The nonuniform section's spec builder, geometry labels and theory helpers."""

from __future__ import annotations

import numpy as np
import pytest

from toymodel import theory
from toymodel.analysis.pentagon import label_restarts
from toymodel.experiments import nonuniform as ex


@pytest.mark.parametrize("tier", ["fast", "paper"])
def test_sweep_densities(tier: ex.Tier) -> None:
    spec = ex.pentagon_sweep(tier)
    rel = ex.relative_density(spec)
    d = spec.density_array()
    assert np.allclose(d[:, : ex.VARIED], ex.BASE_DENSITY)
    assert np.allclose(rel, [ex.LEVELS[k] for k in ex.TIERS[tier].levels])
    assert np.isclose(rel, 1.0).sum() == 1  # the uniform baseline is one of the levels
    assert spec.restarts == ex.TIERS[tier].restarts


def test_labels() -> None:
    n = ex.N
    pentagon = theory.regular_polygon(5, n, radius=1.1, phase=0.3)
    square = theory.digon_square(n, [(0, 1), (2, 3)], phase=0.2)
    square_other = theory.digon_square(n, [(4, 1), (2, 3)])
    triangle = theory.regular_polygon(3, n, features=[0, 2, 4])
    labels = label_restarts(np.stack([pentagon, square, square_other, triangle, np.zeros((2, n))]))
    assert labels.tolist() == ["pentagon", "square", "other", "triangle", "other"]


def test_theory_minima_at_baseline() -> None:
    t = theory.pentagon_minima(1.0)
    assert str(label_restarts(t.W_pentagon)) == "pentagon"
    assert str(label_restarts(t.W_square)) == "square"
    assert t.pentagon_loss < t.square_loss
    assert np.allclose(np.linalg.norm(t.W_pentagon, axis=0), np.linalg.norm(t.W_pentagon[:, 0]))
