"""Tests of toymodel.analysis.metrics: exact values, invariances, zero columns, neuron metrics, peaks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from toymodel.analysis import geometry, metrics

PER_FEATURE = {
    "norms": metrics.feature_norms,
    "superposition": metrics.superposition,
    "dimensionality": metrics.feature_dimensionality,
}
PER_PAIR = {"gram": metrics.gram, "cosines": metrics.cosines, "interference": metrics.interference}
PER_INSTANCE = {"frobenius_sq": metrics.frobenius_sq, "dims_per_feature": metrics.dims_per_feature}


def random_orthogonal(rng: np.random.Generator, m: int) -> np.ndarray:
    """A Haar-random element of O(m) (rotations and reflections)."""
    q, r = np.linalg.qr(rng.normal(size=(m, m)))
    return q * np.sign(np.diag(r))


@st.composite
def weights(draw: st.DrawFn) -> np.ndarray:
    """Random W (m, n) with some exactly-zero columns and a random overall scale."""
    m = draw(st.integers(1, 5))
    n = draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    zero = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    scale = draw(st.sampled_from([1e-3, 0.3, 1.0, 5.0]))
    w = np.random.default_rng(seed).normal(size=(m, n)) * scale
    w[:, zero] = 0.0
    return w


# ----- invariances ---------------------------------------------------------------------------


@given(w=weights(), seed=st.integers(0, 2**32 - 1))
def test_metrics_invariant_under_rotations_and_reflections(w: np.ndarray, seed: int) -> None:
    q = random_orthogonal(np.random.default_rng(seed), w.shape[0])
    for name, f in {**PER_FEATURE, **PER_PAIR, **PER_INSTANCE}.items():
        np.testing.assert_allclose(f(q @ w), f(w), rtol=1e-9, atol=1e-12, err_msg=name)


@given(w=weights(), seed=st.integers(0, 2**32 - 1))
def test_metrics_equivariant_under_feature_permutations(w: np.ndarray, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(w.shape[1])
    for name, f in PER_FEATURE.items():
        np.testing.assert_allclose(f(w[:, perm]), f(w)[perm], rtol=1e-12, atol=1e-15, err_msg=name)
    for name, f in PER_PAIR.items():
        np.testing.assert_allclose(
            f(w[:, perm]), f(w)[np.ix_(perm, perm)], rtol=1e-12, atol=1e-15, err_msg=name
        )


@given(w=weights(), c=st.floats(0.1, 10.0))
def test_scaling(w: np.ndarray, c: float) -> None:
    """Cosines and D_i are scale-free; superposition and ||W||_F^2 scale with c^2."""
    np.testing.assert_allclose(metrics.cosines(c * w), metrics.cosines(w), atol=1e-12)
    np.testing.assert_allclose(
        metrics.feature_dimensionality(c * w), metrics.feature_dimensionality(w), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        metrics.superposition(c * w), c**2 * metrics.superposition(w), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(metrics.frobenius_sq(c * w), c**2 * metrics.frobenius_sq(w), rtol=1e-12)


@given(w=weights())
def test_dimensionality_bounds(w: np.ndarray) -> None:
    """0 <= D_i <= 1, D_i = 0 exactly for absent features, and sum_i D_i <= rank(W) <= m."""
    d = metrics.feature_dimensionality(w)
    absent = metrics.feature_norms(w) < metrics.ZERO_NORM
    assert np.all(d >= 0), d
    assert np.all(d <= 1 + 1e-12), d
    assert np.all(d[absent] == 0), d
    assert np.all(d[~absent] > 0), d
    assert d.sum() <= np.linalg.matrix_rank(w) + 1e-9, (d.sum(), w)


def test_batch_axes_match_per_instance_calls() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4, 2, 5))
    w[1, 2, :, 3] = 0.0
    for name, f in {**PER_FEATURE, **PER_PAIR, **PER_INSTANCE}.items():
        batched = f(w)
        for idx in np.ndindex(3, 4):
            np.testing.assert_allclose(batched[idx], f(w[idx]), rtol=1e-12, err_msg=f"{name} {idx}")


# ----- exact values ----------------------------------------------------------------------------


def test_hand_computed_example() -> None:
    """W_0 = (1, 0), W_1 = (0.5, 0): superposition (0.25, 1), D = (1/1.25, 0.25/1.25), D* = 2/1.25."""
    w = np.array([[1.0, 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(metrics.gram(w), [[1.0, 0.5], [0.5, 0.25]], atol=1e-15)
    np.testing.assert_allclose(metrics.interference(w), [[0.0, 0.5], [0.5, 0.0]], atol=1e-15)
    np.testing.assert_allclose(metrics.cosines(w), [[1.0, 1.0], [1.0, 1.0]], atol=1e-15)
    np.testing.assert_allclose(metrics.superposition(w), [0.25, 1.0], atol=1e-15)
    np.testing.assert_allclose(metrics.feature_dimensionality(w), [0.8, 0.2], atol=1e-15)
    np.testing.assert_allclose(metrics.dims_per_feature(w), 2 / 1.25, atol=1e-15)
    np.testing.assert_array_equal(metrics.represented(w), [True, False])
    np.testing.assert_array_equal(metrics.represented(w, threshold=0.4), [True, True])


EXPECTED_D = {
    "digon": [1 / 2] * 2,
    "triangle": [2 / 3] * 3,
    "square": [1 / 2] * 4,
    "pentagon": [2 / 5] * 5,
    "hexagon": [1 / 3] * 6,
    "tetrahedron": [3 / 4] * 4,
    "octahedron": [1 / 2] * 6,
    "square_antiprism": [3 / 8] * 8,
    "triangular_bipyramid": [2 / 3] * 3 + [1 / 2] * 2,
    "pentagonal_bipyramid": [2 / 5] * 5 + [1 / 2] * 2,
}


@pytest.mark.parametrize("name", geometry.POLYTOPES)
def test_ideal_polytope_metrics_exact(name: str) -> None:
    v = geometry.ideal_polytope(name)
    m, n = v.shape
    d = np.array(EXPECTED_D[name])
    np.testing.assert_allclose(metrics.feature_dimensionality(v), d, rtol=0, atol=1e-12, err_msg=name)
    # Unit vertices: sum_j (v_i . v_j)^2 = 1 / D_i, so superposition = 1/D_i - 1.
    np.testing.assert_allclose(metrics.superposition(v), 1 / d - 1, rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(metrics.dims_per_feature(v), m / n, rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(metrics.feature_dimensionality(v).sum(), m, atol=1e-12, err_msg=name)


def test_orthonormal_columns_have_no_superposition() -> None:
    rng = np.random.default_rng(1)
    for m, n in [(1, 1), (3, 2), (5, 5), (7, 3)]:
        w = random_orthogonal(rng, m)[:, :n]
        np.testing.assert_allclose(metrics.superposition(w), 0.0, atol=1e-12)
        np.testing.assert_allclose(metrics.feature_dimensionality(w), 1.0, atol=1e-12)
        np.testing.assert_allclose(metrics.cosines(w), np.eye(n), atol=1e-12)
        np.testing.assert_allclose(metrics.interference(w), 0.0, atol=1e-12)
        np.testing.assert_allclose(metrics.dims_per_feature(w), m / n, atol=1e-12)


def test_antipodal_pair_superposition_is_one() -> None:
    """The paper's reading: superposition >= 1 when another feature drives i's direction fully."""
    w = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(metrics.superposition(w), [1.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(metrics.feature_dimensionality(w), [0.5, 0.5, 1.0], atol=1e-15)


# ----- zero columns ----------------------------------------------------------------------------


def test_all_zero_weights() -> None:
    w = np.zeros((2, 3))
    np.testing.assert_array_equal(metrics.feature_norms(w), 0.0)
    np.testing.assert_array_equal(metrics.superposition(w), 0.0)
    np.testing.assert_array_equal(metrics.feature_dimensionality(w), 0.0)
    np.testing.assert_array_equal(metrics.cosines(w), 0.0)
    np.testing.assert_array_equal(metrics.represented(w), False)
    assert metrics.dims_per_feature(w) == np.inf
    assert metrics.frobenius_sq(w) == 0.0


def test_zero_column_does_not_change_the_others() -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 4))
    wz = np.insert(w, 2, 0.0, axis=1)
    keep = [0, 1, 3, 4]
    for name, f in PER_FEATURE.items():
        np.testing.assert_allclose(f(wz)[keep], f(w), rtol=1e-12, err_msg=name)
        assert f(wz)[2] == 0.0, name
    c = metrics.cosines(wz)
    assert np.all(c[2] == 0)
    assert np.all(c[:, 2] == 0)
    np.testing.assert_allclose(c[np.ix_(keep, keep)], metrics.cosines(w), atol=1e-15)


def test_column_below_zero_norm_counts_as_absent() -> None:
    tiny = metrics.ZERO_NORM / 10
    w = np.array([[1.0, tiny, 1e-4], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(metrics.cosines(w)[1], 0.0)
    assert metrics.feature_dimensionality(w)[1] == 0.0
    assert metrics.superposition(w)[1] == 0.0
    # A small but genuine column still has a direction: cos 1 with feature 0.
    assert metrics.cosines(w)[0, 2] == pytest.approx(1.0)
    assert 0 < metrics.feature_dimensionality(w)[2] < 1e-7


# ----- neuron-basis metrics ------------------------------------------------------------------------


def test_monosemantic_neurons() -> None:
    w = np.array(
        [
            [1.0, 0.0, 0.0],  # one-hot: monosemantic
            [2.0, 0.2, 0.0],  # 2/sqrt(4.04) = 0.995 >= 0.9: monosemantic
            [3.0, 4.0, 0.0],  # 4/5 = 0.8 < 0.9: polysemantic
            [0.0, 0.0, 0.05],  # one-hot but dead (0.05 < 0.1 x the largest row norm, 5)
            [0.0, 0.0, 0.0],  # dead
        ]
    )
    np.testing.assert_array_equal(metrics.monosemantic_neurons(w), [True, True, False, False, False])
    np.testing.assert_array_equal(metrics.dead_neurons(w), [False, False, False, True, True])
    np.testing.assert_array_equal(
        metrics.monosemantic_neurons(w, frac=0.75), [True, True, True, False, False]
    )
    np.testing.assert_array_equal(
        metrics.monosemantic_neurons(w, min_norm=0.0), [True, True, False, True, False]
    )
    batched = metrics.monosemantic_neurons(np.stack([w, w[::-1]]))
    assert batched.shape == (2, 5)
    np.testing.assert_array_equal(batched.sum(-1), [2, 2])


def test_monosemantic_identity_and_rotated() -> None:
    eye = np.eye(5)
    assert metrics.monosemantic_neurons(eye).sum() == 5
    q = random_orthogonal(np.random.default_rng(3), 5)
    assert metrics.monosemantic_neurons(q).sum() < 5  # a generic rotation is polysemantic


def test_dominant_feature_abs_value_neurons() -> None:
    """Abs-value model: a ReLU(x) and a ReLU(-x) neuron per feature."""
    w = np.array([[1.0, 0.1], [-0.9, 0.0], [0.05, 1.2], [0.0, -1.1]])
    idx, weight = metrics.dominant_feature(w)
    np.testing.assert_array_equal(idx, [0, 0, 1, 1])
    np.testing.assert_array_equal(np.sign(weight), [1, -1, 1, -1])
    np.testing.assert_allclose(weight, [1.0, -0.9, 1.2, -1.1])


def test_neurons_per_feature() -> None:
    w = np.array(
        [
            [0.7, 0.0, 0.0, -0.9],
            [0.7, 0.0, 0.1, 0.0],
            [0.1, 1.0, 0.1, 0.0],
            [0.0, 0.2, 0.1, 0.5],
        ]
    )
    # f0: two equal neurons, leak 0.1 < 0.35; f1: one (0.2 < 0.5); f2: norm 0.17 < 0.5 -> 0;
    # f3: |-0.9| and 0.5 >= 0.45 -> 2, but only one excitatory neuron.
    np.testing.assert_array_equal(metrics.neurons_per_feature(w), [2, 1, 0, 2])
    np.testing.assert_array_equal(metrics.neurons_per_feature(w, sign="positive"), [2, 1, 0, 1])
    np.testing.assert_array_equal(metrics.neurons_per_feature(w, rel=0.1), [3, 2, 0, 2])
    np.testing.assert_array_equal(metrics.neurons_per_feature(w, min_norm=0.0), [2, 1, 3, 2])
    assert metrics.neurons_per_feature(np.stack([w, w])).shape == (2, 4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: metrics.monosemantic_neurons(np.eye(2), frac=1.5), "frac"),
        (lambda: metrics.monosemantic_neurons(np.eye(2), frac=0.0), "frac"),
        (lambda: metrics.dead_neurons(np.eye(2), min_norm=-1), "min_norm"),
        (lambda: metrics.neurons_per_feature(np.eye(2), rel=2.0), "rel"),
        (lambda: metrics.neurons_per_feature(np.eye(2), sign="neg"), "sign"),
    ],
)
def test_neuron_metric_argument_errors(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


# ----- collapsed pairs -----------------------------------------------------------------------------


def _unit(deg: float) -> np.ndarray:
    return np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))])


def test_collapsed_pairs() -> None:
    s = 1 / np.sqrt(2)
    cols = [
        s * _unit(10),
        s * _unit(12),  # pair 0: collapsed onto one direction, norms 1/sqrt(2)
        _unit(100),
        _unit(160),  # pair 1: side by side at 60 deg, unit norms
        np.zeros(2),
        np.zeros(2),  # pair 2: both absent
        _unit(200),
        _unit(200),  # pair 3: same direction but unit norms (two copies)
        s * _unit(250),
        np.zeros(2),  # pair 4: one member absent
    ]
    w = np.stack(cols, axis=1)
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    np.testing.assert_array_equal(metrics.collapsed_pairs(w, pairs), [True, False, False, False, False])
    np.testing.assert_array_equal(
        metrics.collapsed_pairs(w, pairs, norm_tol=0.3), [True, False, False, True, False]
    )
    q = random_orthogonal(np.random.default_rng(4), 2)
    np.testing.assert_array_equal(metrics.collapsed_pairs(np.stack([w, q @ w]), pairs).sum(-1), [1, 1])


@pytest.mark.parametrize(
    ("pairs", "match"),
    [
        ([0, 1], "pairs must be an integer array of shape"),
        ([(0, 1, 2)], "pairs must be"),
        ([(0.0, 1.0)], "pairs must be"),
        ([(0, 9)], "outside"),
    ],
)
def test_collapsed_pairs_bad_pairs(pairs: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        metrics.collapsed_pairs(np.ones((2, 4)), pairs)  # type: ignore[arg-type]


# ----- histogram peaks -----------------------------------------------------------------------------


def test_histogram_peaks_synthetic() -> None:
    rng = np.random.default_rng(5)
    background = rng.uniform(0, 1, size=2000)  # ~20 values per 0.01-wide window
    at_half = 0.5 + rng.uniform(-0.002, 0.002, size=60)
    at_two_fifths = 0.4 + rng.uniform(-0.002, 0.002, size=60)
    values = np.concatenate([background, at_half, at_two_fifths])
    centres = [0.5, 0.4, 0.75, 3 / 8]
    peaks = metrics.histogram_peaks(values, centres)
    np.testing.assert_array_equal(peaks.is_peak, [True, True, False, False], err_msg=peaks.table())
    assert peaks.at_centre[0] >= 60, peaks.table()
    assert peaks.left[0] < 40, peaks.table()
    assert "PEAK" in peaks.table()
    # Exact counts on a small sample, window edges inclusive.
    small = metrics.histogram_peaks([0.5, 0.5, 0.503, 0.4875, 0.5125, 0.516, 0.9], [0.5], min_count=1)
    assert (small.at_centre[0], small.left[0], small.right[0]) == (3, 1, 2)
    assert bool(small.is_peak[0]) is False  # 3 < 2 x 2


def test_histogram_peaks_needs_min_count_and_ignores_nan() -> None:
    peaks = metrics.histogram_peaks([0.5, np.nan, 0.5], [0.5])
    assert peaks.at_centre[0] == 2
    assert not peaks.is_peak[0]
    assert metrics.histogram_peaks([0.5, 0.5, 0.5], [0.5]).is_peak[0]


def test_histogram_peaks_on_batched_dimensionalities() -> None:
    """Values of any shape are flattened: D_i of a batch of digons and pentagons."""
    w = np.zeros((10, 2, 5))
    w[:4] = geometry.ideal_polytope("pentagon")
    w[4:, :, :2] = geometry.ideal_polytope("square")[:, [0, 2]]
    peaks = metrics.histogram_peaks(metrics.feature_dimensionality(w), [0.5, 0.4, 2 / 3])
    np.testing.assert_array_equal(peaks.at_centre, [12, 20, 0])
    np.testing.assert_array_equal(peaks.is_peak, [True, True, False])


def test_histogram_peaks_argument_errors() -> None:
    with pytest.raises(ValueError, match="half_width and flank_offset"):
        metrics.histogram_peaks([0.5], [0.5], half_width=0.0)
    with pytest.raises(ValueError, match="flank_offset"):
        metrics.histogram_peaks([0.5], [0.5], half_width=0.01, flank_offset=0.015)
    with pytest.raises(ValueError, match="ratio"):
        metrics.histogram_peaks([0.5], [0.5], ratio=0.5)


# ----- shapes and errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "f",
    [
        *PER_FEATURE.values(),
        *PER_PAIR.values(),
        *PER_INSTANCE.values(),
        metrics.represented,
        metrics.monosemantic_neurons,
    ],
)
@pytest.mark.parametrize("bad", [np.ones(3), np.ones((0, 3)), np.ones((2, 0)), 1.0])
def test_bad_weight_shapes(f: object, bad: object) -> None:
    with pytest.raises(ValueError, match=r"W must have shape \(\.\.\., m, n\)"):
        f(bad)  # type: ignore[operator]


def test_non_numeric_and_non_finite_weights() -> None:
    with pytest.raises(ValueError, match="W must be a numeric array"):
        metrics.gram([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match="W holds non-finite"):
        metrics.superposition(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="threshold"):
        metrics.represented(np.eye(2), threshold=-1)


def test_output_shapes() -> None:
    w = np.ones((4, 3, 2, 5))
    assert metrics.gram(w).shape == (4, 3, 5, 5)
    assert metrics.cosines(w).shape == (4, 3, 5, 5)
    assert metrics.superposition(w).shape == (4, 3, 5)
    assert metrics.feature_dimensionality(w).shape == (4, 3, 5)
    assert metrics.dims_per_feature(w).shape == (4, 3)
    assert metrics.monosemantic_neurons(w).shape == (4, 3, 2)
    assert metrics.neurons_per_feature(w).shape == (4, 3, 5)
