"""The canonical numpy sampler: marginals, co-occurrence and group rules within binomial bounds."""

from __future__ import annotations

import numpy as np
import pytest

from toymodel.data import EVAL_CHUNK, eval_batch, eval_chunks, sample, seed_sequence
from toymodel.spec import FeatureGroup, Spec


def _within(rate: float, p: float, count: int, z: float = 5.0) -> bool:
    return abs(rate - p) <= z * np.sqrt(max(p * (1 - p), 1e-12) / count) + 1e-12


@pytest.mark.parametrize("p", [0.0, 0.003, 0.05, 0.5, 1.0])
def test_independent_marginals(p: float) -> None:
    x = sample(np.full((2, 3), p), 100_000, np.random.default_rng(0))
    rate = float((x != 0).mean())
    assert _within(rate, p, x.size), (rate, p)
    nz = x[x != 0]
    if nz.size > 1000:
        assert abs(nz.mean() - 0.5) < 5 * np.sqrt(1 / 12 / nz.size)
        assert nz.min() >= 0 and nz.max() <= 1
    # independence: co-activity of two features is p^2
    both = float(((x[..., 0] != 0) & (x[..., 1] != 0)).mean())
    assert _within(both, p * p, x[..., 0].size)


def test_pm1_values_are_symmetric() -> None:
    x = sample(np.full((1, 4), 0.5), 100_000, np.random.default_rng(1), values="uniform_pm1")
    nz = x[x != 0]
    assert nz.min() >= -1 and nz.max() <= 1
    assert abs(nz.mean()) < 5 * np.sqrt(1 / 3 / nz.size)
    with pytest.raises(ValueError, match="values"):
        sample(np.full((1, 4), 0.5), 10, np.random.default_rng(1), values="normal")


def test_correlated_sets_share_their_zero_mask() -> None:
    groups = (FeatureGroup("correlated", (0, 1, 2)),)
    x = sample(np.full((1, 5), 0.3), 50_000, np.random.default_rng(2), groups=groups)
    act = x[0] != 0
    assert np.array_equal(act[:, 0], act[:, 1]) and np.array_equal(act[:, 0], act[:, 2])
    assert _within(float(act[:, 0].mean()), 0.3, act.shape[0])
    # magnitudes within the set are independent
    both = act[:, 0]
    corr = np.corrcoef(x[0, both, 0], x[0, both, 1])[0, 1]
    assert abs(corr) < 5 / np.sqrt(both.sum())
    # the set is independent of the other features
    assert _within(float((act[:, 0] & act[:, 3]).mean()), 0.09, act.shape[0])


def test_anticorrelated_sets_have_one_member_active() -> None:
    groups = (FeatureGroup("anticorrelated", (1, 3)), FeatureGroup("anticorrelated", (0, 2, 4)))
    x = sample(np.full((1, 5), 0.6), 60_000, np.random.default_rng(3), groups=groups)
    act = x[0] != 0
    assert not np.any(act[:, 1] & act[:, 3])
    assert np.all(act[:, [0, 2, 4]].sum(axis=1) <= 1)
    assert _within(float((act[:, 1] | act[:, 3]).mean()), 0.6, act.shape[0])
    assert _within(float(act[:, 1].mean()), 0.3, act.shape[0])
    assert _within(float(act[:, 4].mean()), 0.2, act.shape[0])


def test_eval_sample_is_fixed_chunked_and_per_setting() -> None:
    spec = Spec(
        model="relu_output",
        n=3,
        m=2,
        importance=[1.0] * 3,
        density=[[0.5] * 3, [0.1] * 3],
        eval_samples=EVAL_CHUNK + 100,
        seed=4,
    )
    a, b = eval_batch(spec, 0), eval_batch(spec, 0)
    assert a.shape == (EVAL_CHUNK + 100, 3) and np.array_equal(a, b)
    assert [c.shape[0] for c in eval_chunks(spec, 1)] == [EVAL_CHUNK, 100]
    assert (eval_batch(spec, 1) != 0).mean() < (a != 0).mean()
    assert not np.array_equal(eval_batch(spec.replace(seed=5), 0), a)
    # more restarts do not change the held-out sample (common random numbers)
    assert np.array_equal(eval_batch(spec.replace(restarts=4), 0), a)


def test_seed_sequence_is_stable_and_distinct() -> None:
    a = seed_sequence(1, "eval", 0).generate_state(2)
    assert np.array_equal(a, seed_sequence(1, "eval", 0).generate_state(2))
    assert not np.array_equal(a, seed_sequence(1, "eval", 1).generate_state(2))
    assert not np.array_equal(a, seed_sequence(2, "eval", 0).generate_state(2))
