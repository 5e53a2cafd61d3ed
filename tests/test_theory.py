"""Tests of toymodel.theory: closed forms, boundaries, Monte Carlo, the deterministic expected
loss (value, gradient, accuracy) and its minimisation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toymodel import theory as T
from toymodel.data import sample
from toymodel.models import forward
from toymodel.models import loss as model_loss


def _stack(cands: dict[str, tuple[np.ndarray, np.ndarray]], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {"W": np.stack([cands[k][0] for k in names]), "b": np.stack([cands[k][1] for k in names])}


def _random_model(rng: np.random.Generator, n: int, m: int = 2) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(m, n)), 0.3 * rng.normal(size=n)


def _grid_loss(W: np.ndarray, b: np.ndarray, imp: np.ndarray, active: tuple[int, ...], points: int) -> float:
    """Brute-force midpoint-grid loss conditional on exactly ``active`` firing (1 or 2 features)."""
    u = (np.arange(points) + 0.5) / points
    grids = np.meshgrid(*([u] * len(active)), indexing="ij")
    x = np.zeros((grids[0].size, W.shape[1]))
    for f, g in zip(active, grids, strict=True):
        x[:, f] = g.ravel()
    out = np.maximum(x @ (W.T @ W).T + b, 0.0)
    return float((((x - out) ** 2) @ imp).mean())


# ----- closed forms ---------------------------------------------------------------------------

RS_POINTS = [(0.3, 0.2), (3.0, 0.7), (1.0, 0.05), (0.1, 1.0)]


@pytest.mark.parametrize(("r", "s"), RS_POINTS)
def test_closed_forms_equal_monte_carlo_of_the_configurations(r: float, s: float) -> None:
    rng = np.random.default_rng(12)
    for n, cands, closed, names in [
        (2, T.candidate_params_n2(s), T.closed_form_losses_n2(r, s), T.N2_CANDIDATES),
        (3, T.candidate_params_n3(s), T.closed_form_losses_n3(r, s), T.N3_CANDIDATES),
    ]:
        imp = np.ones((len(names), n))
        imp[:, -1] = r
        mean, se = T.mc_loss(
            "relu_output", _stack(cands, names), imp, np.full((len(names), n), s), 100_000, rng
        )
        assert np.all(se > 0)
        z = (mean - closed) / se
        assert np.all(np.abs(z) < 4.0), (n, names, mean, closed, z)


@pytest.mark.parametrize(("r", "s"), [*RS_POINTS, (7.0, 0.013)])
def test_closed_forms_equal_deterministic_expected_loss(r: float, s: float) -> None:
    """The candidates' kinks lie on lines the exact inner integration handles: equality to 1e-12."""
    for n, cands, closed, names in [
        (2, T.candidate_params_n2(s), T.closed_form_losses_n2(r, s), T.N2_CANDIDATES),
        (3, T.candidate_params_n3(s), T.closed_form_losses_n3(r, s), T.N3_CANDIDATES),
    ]:
        imp = np.ones(n)
        imp[-1] = r
        for q, name in enumerate(names):
            W, b = cands[name]
            assert T.expected_loss(W, b, imp, s)[0] == pytest.approx(closed[q], rel=1e-12, abs=1e-15), name


def test_closed_form_values_and_broadcasting() -> None:
    r = np.array([[0.5], [2.0]])
    s = np.array([0.1, 0.4, 1.0])
    got = T.closed_form_losses_n2(r, s)
    assert got.shape == (3, 2, 3)
    np.testing.assert_allclose(got[:, 1, 2], [2.0 / 12.0, 1.0 / 12.0, 0.5], rtol=1e-14)
    got3 = T.closed_form_losses_n3(r, s)
    assert got3.shape == (4, 2, 3)
    var = 0.1 / 3 - 0.0025
    np.testing.assert_allclose(got3[:, 0, 0], [0.5 * var, var, 0.01 / 3, 0.015 / 6])


def test_boundaries_are_where_the_candidate_losses_cross() -> None:
    for r in np.concatenate([np.geomspace(0.1, 0.99, 9), np.geomspace(1.0, 10.0, 9)]):
        sb = float(T.boundary_n2(r))
        lo2 = T.closed_form_losses_n2(r, sb)
        rival = 0 if r < 1 else 1
        assert lo2[2] == pytest.approx(lo2[rival], rel=1e-12)
        assert min(lo2[2], lo2[rival]) <= lo2[1 - rival] * (1 + 1e-12)
        sb3 = float(T.boundary_n3(r))
        lo3 = T.closed_form_losses_n3(r, sb3)
        pair, rival3 = (3, 0) if r < 1 else (2, 1)
        assert lo3[pair] == pytest.approx(lo3[rival3], rel=1e-12)
        assert lo3[pair] <= lo3.min() * (1 + 1e-12)


def test_triple_point_and_derived_boundary_values() -> None:
    r0, s0 = T.TRIPLE_POINT
    assert (r0, s0) == (1.0, 4.0 / 7.0)
    assert float(T.boundary_n2(r0)) == pytest.approx(s0, rel=1e-15)
    assert float(T.boundary_n2(np.nextafter(1.0, 0.0))) == pytest.approx(s0, rel=1e-12)
    lo = T.closed_form_losses_n2(r0, s0)
    np.testing.assert_allclose(lo, lo[0], rtol=1e-12)
    lo3 = T.closed_form_losses_n3(r0, s0)
    np.testing.assert_allclose(lo3, lo3[0], rtol=1e-12)
    np.testing.assert_allclose(T.boundary_n2([0.1, 10.0]), [0.16, 0.16], rtol=1e-14)
    np.testing.assert_allclose(T.boundary_n3([0.1, 2.0, 10.0]), [0.16, 4 / 7, 4 / 7], rtol=1e-14)


def test_phase_maps_in_clear_regions() -> None:
    names2, names3 = T.N2_CANDIDATES, T.N3_CANDIDATES
    assert names2[int(T.phase_map_n2(0.1, 0.5))] == "not_represented"
    assert names2[int(T.phase_map_n2(10.0, 0.5))] == "dedicated"
    assert names2[int(T.phase_map_n2(0.3, 0.02))] == "antipodal"
    assert names2[int(T.phase_map_n2(5.0, 0.05))] == "antipodal"
    assert names3[int(T.phase_map_n3(0.1, 0.5))] == "perp_001"
    assert names3[int(T.phase_map_n3(5.0, 0.8))] == "perp_100"
    assert names3[int(T.phase_map_n3(5.0, 0.3))] == "perp_110"
    assert names3[int(T.phase_map_n3(0.3, 0.05))] == "perp_011"
    r, s = np.geomspace(0.1, 10, 21)[:, None], np.geomspace(0.01, 1, 31)[None, :]
    assert T.phase_map_n2(r, s).shape == (21, 31)
    assert set(np.unique(T.phase_map_n2(r, s))) == {0, 1, 2}
    assert set(np.unique(T.phase_map_n3(r, s))) == {0, 1, 2, 3}


@settings(max_examples=200, deadline=None)
@given(log_r=st.floats(math.log(0.1), math.log(10.0)), log_s=st.floats(math.log(0.01), 0.0))
def test_phase_map_agrees_with_boundaries(log_r: float, log_s: float) -> None:
    r, s = math.exp(log_r), math.exp(log_s)
    b2, b3 = float(T.boundary_n2(r)), float(T.boundary_n3(r))
    if abs(s / b2 - 1) > 1e-9 and abs(r - 1) > 1e-9:
        want = 2 if s < b2 else (0 if r < 1 else 1)
        assert int(T.phase_map_n2(r, s)) == want
    if abs(s / b3 - 1) > 1e-9 and abs(r - 1) > 1e-9:
        want3 = (3 if r < 1 else 2) if s < b3 else (0 if r < 1 else 1)
        assert int(T.phase_map_n3(r, s)) == want3


def test_candidate_params_have_the_stated_patterns() -> None:
    for name, (W, _) in T.candidate_params_n3(0.3).items():
        perp = np.array([int(c) for c in name[-3:]], dtype=float)
        np.testing.assert_array_equal(W @ perp, 0.0)
        assert W.shape == (2, 3)
    c2 = T.candidate_params_n2(0.3)
    np.testing.assert_array_equal(c2["not_represented"][1], [0.0, 0.15])


# ----- Monte Carlo ----------------------------------------------------------------------------


def test_mc_loss_is_the_models_loss_on_the_same_sample() -> None:
    rng = np.random.default_rng(3)
    W = rng.normal(size=(2, 2, 4))
    b = rng.normal(size=(2, 4)) * 0.2
    imp = rng.random((2, 4)) + 0.5
    den = rng.random((2, 4))
    mean, se = T.mc_loss("relu_output", {"W": W, "b": b}, imp, den, 1000, np.random.default_rng(9))
    x = sample(den, 1000, np.random.default_rng(9))
    np.testing.assert_allclose(mean, model_loss("relu_output", {"W": W, "b": b}, x, imp), rtol=1e-12)
    per = (((x - forward("relu_output", {"W": W, "b": b}, x)[0]) ** 2) * imp[:, None, :]).sum(-1)
    np.testing.assert_allclose(se, per.std(axis=1, ddof=1) / math.sqrt(1000), rtol=1e-9)


def test_mc_loss_over_several_chunks_and_validation() -> None:
    W, b = T.candidate_params_n2(0.5)["antipodal"]
    mean, se = T.mc_loss(
        "relu_output", {"W": W[None], "b": b[None]}, [1.0, 1.0], [0.5, 0.5], 150_000, np.random.default_rng(1)
    )
    assert abs(mean[0] - 2 * 0.25 / 6) < 4 * se[0]
    with pytest.raises(ValueError, match="2 samples"):
        T.mc_loss(
            "relu_output", {"W": W[None], "b": b[None]}, [1.0, 1.0], [0.5, 0.5], 1, np.random.default_rng(1)
        )


# ----- deterministic expected loss ------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 5])
def test_expected_loss_matches_monte_carlo_on_random_models(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    cases = 4
    Ws, bs = zip(*(_random_model(rng, n) for _ in range(cases)), strict=True)
    W, b = np.stack(Ws), np.stack(bs)
    imp = rng.random((cases, n)) + 0.2
    den = rng.uniform(0.05, 1.0, size=(cases, n))
    mean, se = T.mc_loss("relu_output", {"W": W, "b": b}, imp, den, 150_000, rng)
    exact = np.array([T.expected_loss(W[k], b[k], imp[k], den[k])[0] for k in range(cases)])
    z = (mean - exact) / se
    assert np.all(np.abs(z) < 4.0), z


def test_expected_loss_conditional_on_one_or_two_features_matches_a_fine_grid() -> None:
    """Densities 0/1 select one active subset: sharper than Monte Carlo (1e-9 / 1e-5 relative)."""
    rng = np.random.default_rng(7)
    W, b = _random_model(rng, 5)
    imp = rng.random(5) + 0.5
    for active, points, tol in [((2,), 400_000, 1e-9), ((0, 3), 700, 1e-5), ((1, 4), 700, 1e-5)]:
        den = np.zeros(5)
        den[list(active)] = 1.0
        got = T.expected_loss(W, b, imp, den)[0]
        assert got == pytest.approx(_grid_loss(W, b, imp, active, points), rel=tol), active


def test_expected_loss_of_the_linear_model_equals_the_moment_formula() -> None:
    rng = np.random.default_rng(5)
    for n in (2, 4, 6):
        W, b = _random_model(rng, n, m=3)
        imp, p = rng.random(n) + 0.5, rng.random(n)
        A = np.eye(n) - W.T @ W  # error = A x - b
        exx = np.outer(p, p) / 4.0
        np.fill_diagonal(exx, p / 3.0)
        want = imp @ (np.einsum("ia,ab,ib->i", A, exx, A) - 2.0 * b * (A @ (p / 2.0)) + b**2)
        assert T.expected_loss(W, b, imp, p, model="linear")[0] == pytest.approx(want, rel=1e-12)


def test_expected_loss_edge_cases() -> None:
    rng = np.random.default_rng(2)
    W, b = _random_model(rng, 4)
    imp = rng.random(4) + 0.5
    loss0, dW0, db0 = T.expected_loss(W, b, imp, 0.0)
    assert loss0 == pytest.approx(float(imp @ np.maximum(b, 0) ** 2), rel=1e-14)
    np.testing.assert_array_equal(dW0, 0.0)
    np.testing.assert_allclose(db0, 2 * imp * np.maximum(b, 0), rtol=1e-14)
    # W = 0: outputs relu(b), loss = sum_i I_i E[(x_i - relu(b_i))^2]
    p = rng.random(4)
    want = imp @ (p / 3 - p * np.maximum(b, 0) + np.maximum(b, 0) ** 2)
    assert T.expected_loss(np.zeros((2, 4)), b, imp, p)[0] == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="shape"):
        T.expected_loss(W, b[:3], imp, 0.1)
    with pytest.raises(ValueError, match="supports"):
        T.expected_loss(W, b, imp, 0.1, model="relu_hidden")
    with pytest.raises(ValueError, match="density"):
        T.expected_loss(W, b, imp, 1.5)


def test_expected_loss_is_invariant_under_rotation_and_equivariant_under_permutation() -> None:
    rng = np.random.default_rng(11)
    W, b = _random_model(rng, 5)
    imp, p = rng.random(5) + 0.5, rng.uniform(0.1, 0.9, 5)
    loss, dW, db = T.expected_loss(W, b, imp, p)
    th = 0.7
    R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    assert T.expected_loss(R @ W, b, imp, p)[0] == pytest.approx(loss, rel=1e-12)
    perm = np.array([3, 0, 4, 1, 2])
    lp, dWp, dbp = T.expected_loss(W[:, perm], b[perm], imp[perm], p[perm])
    assert lp == pytest.approx(loss, rel=1e-10)
    np.testing.assert_allclose(dWp, dW[:, perm], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(dbp, db[perm], rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(("model", "n"), [("relu_output", 3), ("relu_output", 5), ("linear", 4)])
def test_expected_loss_gradient_matches_central_differences(model: str, n: int) -> None:
    rng = np.random.default_rng(20 + n)
    W, b = _random_model(rng, n)
    imp, p = rng.random(n) + 0.5, rng.uniform(0.1, 0.9, n)
    _, dW, db = T.expected_loss(W, b, imp, p, model=model)
    h = 1e-6

    def f(Wx: np.ndarray, bx: np.ndarray) -> float:
        return T.expected_loss(Wx, bx, imp, p, model)[0]

    num_W = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        e = np.zeros_like(W)
        e[idx] = h
        num_W[idx] = (f(W + e, b) - f(W - e, b)) / (2 * h)
    num_b = np.zeros(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        num_b[i] = (f(W, b + e) - f(W, b - e)) / (2 * h)
    scale = max(np.abs(dW).max(), np.abs(db).max())
    np.testing.assert_allclose(dW, num_W, atol=1e-7 * scale)
    np.testing.assert_allclose(db, num_b, atol=1e-7 * scale)


def test_expected_loss_default_panels_agree_with_a_finer_rule() -> None:
    rng = np.random.default_rng(4)
    fine = {2: 64, 3: 24, 4: 8, 5: 6}
    for density in (0.05, 0.5, 1.0):
        W, b = _random_model(rng, 5)
        imp = rng.random(5) + 0.5
        assert T.expected_loss(W, b, imp, density)[0] == pytest.approx(
            T.expected_loss(W, b, imp, density, panels=fine)[0], rel=2e-5
        )


# ----- minimisation and geometry --------------------------------------------------------------


def _angles(W: np.ndarray) -> np.ndarray:
    return np.sort(np.mod(np.arctan2(W[1], W[0]), 2 * math.pi))


def test_minimisation_keeps_a_perturbed_pentagon_a_pentagon() -> None:
    rng = np.random.default_rng(0)
    W0 = T.regular_polygon(5, 5, 1.0) + 0.05 * rng.normal(size=(2, 5))
    b0 = 0.02 * rng.normal(size=5)
    start = T.expected_loss(W0, b0, 1.0, 0.05)[0]
    W, b, loss = T.minimise_expected_loss(W0, b0, 1.0, 0.05)
    assert loss == pytest.approx(T.expected_loss(W, b, 1.0, 0.05)[0], rel=1e-12)
    assert loss < 0.7 * start
    norms = np.linalg.norm(W, axis=0)
    assert np.all(norms > 1.0)  # vertices outside the unit circle
    assert np.all(b < 0)  # negative biases
    ang = _angles(W)
    gaps = np.degrees(np.diff(np.concatenate([ang, [ang[0] + 2 * math.pi]])))
    np.testing.assert_allclose(gaps, 72.0, atol=1.0)
    np.testing.assert_allclose(np.linalg.eigvalsh(W @ W.T), 2.5 * norms.mean() ** 2, rtol=1e-3)  # tight frame


def test_pentagon_and_square_minima_cross_as_one_feature_becomes_rarer() -> None:
    """Uniform density 0.05: the pentagon's minimum is far lower (the square ignores a feature).
    Feature 4 at 0.5x density: still the pentagon; at 0.2x: the two-digon square (feature 4
    ignored) wins while the pentagon is still a local minimum (measured crossover ~0.27x)."""
    gaps = {}
    for rel in (1.0, 0.5, 0.2):
        den = np.full(5, 0.05)
        den[4] *= rel
        Wp, _, pent = T.minimise_expected_loss(T.regular_polygon(5, 5, 1.1), np.full(5, -0.1), 1.0, den)
        Ws, _, square = T.minimise_expected_loss(
            T.digon_square(5, [(0, 2), (1, 3)], 1.1), np.full(5, -0.1), 1.0, den
        )
        assert np.linalg.norm(Wp, axis=0).min() > 1.0  # stayed a pentagon
        assert np.linalg.norm(Ws[:, 4]) < 1e-3  # stayed a square
        gaps[rel] = (pent - square) / square
    assert gaps[1.0] < -0.4
    assert gaps[0.5] < -0.1
    assert gaps[0.2] > 0.05


def test_geometry_builders() -> None:
    W = T.regular_polygon(5, 7, 2.0, features=[6, 0, 1, 2, 3], phase=0.1)
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), [2, 2, 2, 2, 0, 0, 2], atol=1e-14)
    np.testing.assert_allclose(math.atan2(W[1, 6], W[0, 6]), 0.1)
    np.testing.assert_allclose(W[:, 6] @ W[:, 0], 4 * math.cos(2 * math.pi / 5), rtol=1e-12)
    S = T.digon_square(5, [(0, 2), (1, 3)])
    G = S.T @ S
    np.testing.assert_allclose(G[[0, 1], [2, 3]], -1.0, atol=1e-14)
    np.testing.assert_allclose(G[0, 1], 0.0, atol=1e-14)
    np.testing.assert_array_equal(S[:, 4], 0.0)
    with pytest.raises(ValueError, match="distinct"):
        T.regular_polygon(3, 5, features=[0, 0, 1])
    with pytest.raises(ValueError, match="two pairs"):
        T.digon_square(5, [(0, 1)])


def test_optimise_candidate() -> None:
    s, r = 0.3, 0.3
    cands = T.candidate_params_n2(s)
    closed = T.closed_form_losses_n2(r, s)
    fits = [T.optimise_candidate(*cands[name], [1.0, r], s) for name in T.N2_CANDIDATES]
    # ignoring a feature at its mean and representing the other exactly is already optimal
    assert fits[0].loss == pytest.approx(closed[0], rel=1e-9)
    assert fits[1].loss == pytest.approx(closed[1], rel=1e-9)
    assert fits[2].loss < closed[2] * 0.99
    assert not fits[2].collapsed
    assert np.sign(fits[2].W[0, 0]) == -np.sign(fits[2].W[0, 1])
    # far above the boundary at small r the antipodal pattern slides into ignoring the extra feature
    assert T.optimise_candidate(*T.candidate_params_n2(0.6)["antipodal"], [1.0, 0.1], 0.6).collapsed


def test_optimised_phase_map_and_boundary() -> None:
    r, s = np.array([0.1, 10.0]), np.array([0.02, 0.8])
    pm = T.optimised_phase_map(2, r, s)
    assert pm.losses.shape == pm.closed_form.shape == pm.collapsed.shape == (3, 2, 2)
    assert np.all(pm.losses <= pm.closed_form * (1 + 1e-9))
    np.testing.assert_array_equal(pm.labels, pm.closed_form_labels)
    np.testing.assert_array_equal(pm.labels, [[2, 0], [2, 1]])
    pm3 = T.optimised_phase_map(3, [0.2], [0.03, 0.8])
    assert [pm3.names[k] for k in pm3.labels[0]] == ["perp_011", "perp_001"]
    # optimising the norms and biases enlarges the superposition region (0.16 -> about 0.18)
    sb = T.optimised_boundary(2, 0.1)
    assert float(T.boundary_n2(0.1)) < sb < 0.2
    with pytest.raises(ValueError, match="n=4"):
        T.optimised_phase_map(4, [1.0], [0.5])


def test_candidate_enumeration_covers_every_subset_once() -> None:
    """The block structure behind expected_loss: subset probabilities sum to 1."""
    p = np.array([0.1, 0.5, 0.9, 0.3])
    total = math.prod(1 - p)
    for k in range(1, 5):
        for A in itertools.combinations(range(4), k):
            total += math.prod(p[i] if i in A else 1 - p[i] for i in range(4))
    assert total == pytest.approx(1.0)
    # and expected_loss weights them that way: constant-output model W=0, b=0 gives sum I p / 3
    assert T.expected_loss(np.zeros((1, 4)), np.zeros(4), 1.0, p)[0] == pytest.approx(p.sum() / 3, rel=1e-14)
