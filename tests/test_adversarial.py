"""Tests of toymodel.analysis.adversarial: attack directions, budget, and the vulnerability metric on
models whose value is known by hand (1 for the ideal model, 2 for an antipodal pair)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toymodel.analysis import adversarial, metrics


def sparse_inputs(rng: np.random.Generator, n: int, batch: int, density: float) -> np.ndarray:
    return np.where(rng.random((batch, n)) < density, rng.random((batch, n)), 0.0)


@given(st.integers(1, 8), st.integers(1, 8), st.integers(0, 2**32 - 1), st.sampled_from([1.0, 0.3, 0.05]))
@settings(max_examples=30, deadline=None)
def test_ideal_model_has_vulnerability_one(n: int, m: int, seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    feats = rng.permutation(n)[: min(m, n)]
    W, b = adversarial.ideal_weights(n, m, feats)
    x = sparse_inputs(rng, n, 256, density)
    x[0, feats[0]] = 0.7  # at least one active input
    for model in ("linear", "relu_output"):
        assert adversarial.vulnerability(model, W, b, x) == pytest.approx(1.0, abs=1e-9)


@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_attack_directions_are_unit_rows_of_the_gram_matrix(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, n))
    W[:, rng.random(n) < 0.3] = 0.0
    d, ok = adversarial.attack_directions(W)
    G = metrics.gram(W)
    assert np.array_equal(ok, np.linalg.norm(G, axis=1) >= adversarial.MIN_ROW_NORM)
    np.testing.assert_allclose(np.linalg.norm(d[ok], axis=1), 1.0, rtol=1e-12)
    assert np.all(d[~ok] == 0)
    # the attack is the L2-optimal way to raise output i's pre-activation: (G d_i)_i = ||G_i||
    np.testing.assert_allclose(np.einsum("ij,ij->i", G, d)[ok], np.linalg.norm(G, axis=1)[ok], rtol=1e-10)


def test_antipodal_pair_doubles_the_damage() -> None:
    """n=2, m=1, W=[1, -1], b=0, inputs with one active feature t >= 0.5: attacking feature 0
    moves h by sqrt(2) ε, output 0 by sqrt(2) ε and output 1 is clipped by the ReLU: damage 2 ε²
    (4 ε² in the linear model, whose output 1 moves too)."""
    t = np.linspace(0.5, 1.0, 11)
    x = np.concatenate([np.stack([t, 0 * t], 1), np.stack([0 * t, t], 1)])
    W, b = np.array([[1.0, -1.0]]), np.zeros(2)
    assert adversarial.vulnerability("relu_output", W, b, x) == pytest.approx(2.0, rel=1e-12)
    eps = adversarial.attack_budget(x)
    damage = adversarial.attack_damage("relu_output", W, b, x, eps)
    np.testing.assert_allclose(damage, 2 * eps**2, rtol=1e-12)


def test_empty_inputs_are_left_out_and_budget_follows_the_active_ones() -> None:
    W, b = np.array([[1.0, -1.0]]), np.zeros(2)
    x = np.array([[0.8, 0.0], [0.0, 0.6]])
    padded = np.concatenate([x, np.zeros((50, 2))])
    assert adversarial.vulnerability("relu_output", W, b, padded) == adversarial.vulnerability(
        "relu_output", W, b, x
    )
    assert adversarial.attack_budget(x) == pytest.approx(0.1 * 0.7)


@given(st.integers(2, 6), st.integers(1, 4), st.integers(0, 2**32 - 1))
@settings(max_examples=20, deadline=None)
def test_vulnerability_ignores_feature_order_and_hidden_rotations(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(m, n)), rng.normal(0, 0.1, size=n)
    x = sparse_inputs(rng, n, 64, 0.3)
    x[0, 0] = 0.9
    perm = rng.permutation(n)
    q, _ = np.linalg.qr(rng.normal(size=(m, m)))
    v = adversarial.vulnerability("relu_output", W, b, x)
    assert adversarial.vulnerability("relu_output", (q @ W)[:, perm], b[perm], x[:, perm]) == pytest.approx(
        v, rel=1e-9
    )


def test_unattackable_model_and_bad_arguments() -> None:
    x = np.array([[0.5, 0.0]])
    assert np.isnan(adversarial.vulnerability("relu_output", np.zeros((1, 2)), np.zeros(2), x))
    with pytest.raises(ValueError, match="active feature"):
        adversarial.vulnerability("relu_output", np.ones((1, 2)), np.zeros(2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="relu_hidden"):
        adversarial.vulnerability("relu_hidden", np.ones((1, 2)), np.zeros(2), x)
    with pytest.raises(ValueError, match=r"\(batch, n\)"):
        adversarial.attack_budget(np.zeros(3))
    with pytest.raises(ValueError, match="at most m"):
        adversarial.ideal_weights(3, 1, np.array([0, 1]))
