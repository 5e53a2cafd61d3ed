"""The uniform-superposition sweep specs (toymodel.experiments.geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from toymodel.experiments import geometry as ex


@pytest.mark.parametrize("tier", ["fast", "paper"])
def test_inverse_densities_log_spaced_from_1(tier: ex.Tier) -> None:
    cfg = ex.TIERS[tier]
    inv = ex.inverse_densities(tier)
    assert inv[0] == 1.0
    assert inv[-1] == pytest.approx(cfg.max_inverse_density)
    assert np.allclose(np.diff(np.log(inv)), np.log(cfg.max_inverse_density) / (cfg.levels - 1))


@pytest.mark.parametrize("tier", ["fast", "paper"])
def test_uniform_sweep_spec(tier: ex.Tier) -> None:
    cfg = ex.TIERS[tier]
    spec = ex.uniform_sweep(tier, seed=3)
    assert (spec.model, spec.n, spec.m) == ("relu_output", cfg.n, cfg.m)
    assert (spec.restarts, spec.seed) == (cfg.restarts, 3)
    assert spec.train.steps == cfg.steps
    recipe = (spec.train.batch_size, spec.train.lr, spec.train.schedule)
    assert recipe == (cfg.batch_size, cfg.lr, cfg.schedule)
    assert np.all(spec.importance_array() == 1.0)
    dens = spec.density_array()
    assert dens.shape == (cfg.levels, cfg.n)
    assert np.allclose(1 / dens[:, 0], ex.inverse_densities(tier))
    assert np.all(dens == dens[:, :1])  # every feature equally sparse at each level


def test_paper_tier_is_the_papers_sweep() -> None:
    paper = ex.TIERS["paper"]
    assert (paper.n, paper.m, paper.max_inverse_density) == (400, 30, 20.0)
    # the official notebook's recipe (the fast tier departs from it, see TIERS)
    assert (paper.batch_size, paper.lr, paper.schedule) == (1024, 1e-3, "constant")
