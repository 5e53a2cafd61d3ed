"""Tests of toymodel.analysis.geometry: angles, gaps, labels, antipodal pairs, octahedra, ideal polytopes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import ArrayLike

from toymodel.analysis import geometry, metrics


def polygon(degrees: ArrayLike, norms: ArrayLike = 1.0) -> np.ndarray:
    """W (2, k) with columns at the given angles and norms."""
    t = np.radians(np.asarray(degrees, dtype=float))
    return np.asarray(norms) * np.stack([np.cos(t), np.sin(t)])


def rotation(deg: float) -> np.ndarray:
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def random_orthogonal(rng: np.random.Generator, m: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(m, m)))
    return q * np.sign(np.diag(r))


def with_off(w: np.ndarray, extra: int, norm: float = 0.05, seed: int = 0) -> np.ndarray:
    """Append ``extra`` weak (unrepresented) features in random directions."""
    rng = np.random.default_rng(seed)
    cols = rng.normal(size=(w.shape[0], extra))
    cols *= norm / np.linalg.norm(cols, axis=0)
    return np.hstack([w, cols])


# ----- angles and gaps -------------------------------------------------------------------------


def test_angles_2d() -> None:
    w = np.array([[1.0, 0.0, -2.0, 0.0, 0.0], [0.0, 3.0, 0.0, -0.5, 0.0]])
    np.testing.assert_allclose(geometry.angles_2d(w)[:4], [0.0, 90.0, 180.0, 270.0], atol=1e-12)
    assert np.isnan(geometry.angles_2d(w)[4])
    assert geometry.angles_2d(np.stack([w, w])).shape == (2, 5)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_angular_gaps_regular(k: int) -> None:
    w = with_off(rotation(17.0) @ polygon(list(np.arange(k) * 360 / k), 1.3), 2)
    gaps = geometry.angular_gaps(w)
    np.testing.assert_allclose(gaps[:k], 360 / k, atol=1e-9)
    assert np.all(np.isnan(gaps[k:]))
    error = float(geometry.regular_polygon_error(w))
    if k >= 2:
        assert error == pytest.approx(0.0, abs=1e-9)
    else:
        assert np.isnan(error)  # no polygon to speak of


def test_angular_gaps_sorted_sum_and_mask() -> None:
    w = polygon([0, 10, 100, 250])
    gaps = geometry.angular_gaps(w)
    np.testing.assert_allclose(gaps, [10, 90, 110, 150], atol=1e-9)
    assert gaps.sum() == pytest.approx(360.0)
    masked = geometry.angular_gaps(w, represented_mask=np.array([True, False, True, True]))
    np.testing.assert_allclose(masked[:3], [100, 110, 150], atol=1e-9)
    assert np.isnan(masked[3])
    assert np.all(np.isnan(geometry.angular_gaps(np.zeros((2, 3)))))
    with pytest.raises(ValueError, match="represented_mask must be a boolean array of shape"):
        geometry.angular_gaps(w, represented_mask=np.ones(3, dtype=bool))


def test_regular_polygon_error_reports_the_worst_gap() -> None:
    angles = [0.0, 72.0, 144.0, 216.0, 288.0]
    angles[1] += 10.0  # gaps 82 and 62
    assert geometry.regular_polygon_error(polygon(angles)) == pytest.approx(10.0)
    batch = np.stack([polygon(angles), geometry.ideal_polytope("pentagon")])
    np.testing.assert_allclose(geometry.regular_polygon_error(batch), [10.0, 0.0], atol=1e-9)


# ----- labels ----------------------------------------------------------------------------------


IDEAL_2D = {
    "digon": polygon([0, 180]),
    "orthogonal_pair": polygon([0, 90], [1.0, 0.8]),
    "triangle": geometry.ideal_polytope("triangle"),
    "square": geometry.ideal_polytope("square"),
    "pentagon": geometry.ideal_polytope("pentagon"),
    "hexagon": geometry.ideal_polytope("hexagon"),
    "7-gon": polygon(list(np.arange(7) * 360 / 7)),
    "single": polygon([40]),
}


@pytest.mark.parametrize("label", IDEAL_2D)
def test_classify_ideal(label: str) -> None:
    w = IDEAL_2D[label]
    assert str(geometry.classify_2d(w)) == label
    assert geometry.classify_2d(w).shape == ()
    assert str(geometry.classify_2d(with_off(w, 3))) == label  # weak features do not count


@given(
    label=st.sampled_from(sorted(IDEAL_2D)),
    angle=st.floats(0, 360),
    reflect=st.booleans(),
    scale=st.floats(0.7, 2.0),  # keeps the 0.8-norm feature above 0.5
    seed=st.integers(0, 2**32 - 1),
)
def test_classify_invariant_under_rotation_reflection_permutation(
    label: str, angle: float, reflect: bool, scale: float, seed: int
) -> None:
    w = with_off(IDEAL_2D[label], 2, seed=seed)
    q = rotation(angle) @ (np.diag([1.0, -1.0]) if reflect else np.eye(2))
    perm = np.random.default_rng(seed).permutation(w.shape[1])
    assert str(geometry.classify_2d(scale * q @ w[:, perm])) == label


@given(
    label=st.sampled_from(["digon", "triangle", "square", "pentagon", "hexagon"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_classify_survives_small_perturbations(label: str, seed: int) -> None:
    """Jitter every vertex by up to 4 deg (gaps move by up to 8 < 15) and its norm by 20 %."""
    rng = np.random.default_rng(seed)
    k = IDEAL_2D[label].shape[1]
    angles = np.arange(k) * 360 / k + rng.uniform(-4, 4, size=k)
    w = polygon(angles, rng.uniform(0.8, 1.2, size=k))
    assert str(geometry.classify_2d(w)) == label


def test_classify_irregular_and_degenerate() -> None:
    assert str(geometry.classify_2d(polygon([0, 72, 144, 216, 250]))) == "other"
    assert str(geometry.classify_2d(polygon([0, 50]))) == "other"
    assert str(geometry.classify_2d(polygon([0, 60, 180, 240]))) == "two_digons"
    assert str(geometry.classify_2d(np.zeros((2, 4)))) == "empty"
    # Tolerance is the knob: 10 deg off is a pentagon at 15 deg tolerance, not at 5.
    near = polygon([0, 82, 144, 216, 288])
    assert str(geometry.classify_2d(near)) == "pentagon"
    assert str(geometry.classify_2d(near, gap_tol_deg=5)) == "other"


def test_classify_batch_shape_and_values() -> None:
    w = np.zeros((2, 3, 2, 5))
    w[0, 0] = geometry.ideal_polytope("pentagon")
    w[0, 1, :, :4] = geometry.ideal_polytope("square")
    w[1, 2][:, [1, 3]] = polygon([30, 120])
    labels = geometry.classify_2d(w)
    assert labels.shape == (2, 3)
    assert labels.tolist() == [["pentagon", "square", "empty"], ["empty", "empty", "orthogonal_pair"]]
    assert (labels == "square").sum() == 1


def test_describe_square_reports_the_dropped_feature() -> None:
    """intro_pentagon at density 0.2: features 0-3 as two orthogonal digons, feature 4 at 0."""
    w = np.zeros((2, 5))
    w[:, [0, 2, 1, 3]] = rotation(33) @ geometry.ideal_polytope("square") * 1.1
    w[:, 4] = [0.1, -0.05]
    shape = geometry.describe_2d(w)
    assert shape.label == "square"
    assert shape.off == (4,)
    assert shape.represented == (0, 1, 2, 3)
    assert shape.pairs == ((0, 1), (2, 3))
    assert shape.gap_error == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="describe_2d takes one instance"):
        geometry.describe_2d(np.stack([w, w]))


def test_classify_argument_errors() -> None:
    with pytest.raises(ValueError, match="m = 2"):
        geometry.classify_2d(np.ones((3, 4)))
    with pytest.raises(ValueError, match="gap_tol_deg"):
        geometry.classify_2d(np.ones((2, 4)), gap_tol_deg=45)
    with pytest.raises(ValueError, match=r"W must have shape \(\.\.\., m, n\)"):
        geometry.classify_2d(np.ones(4))


# ----- antipodal pairs -------------------------------------------------------------------------


def test_antipodal_pairs_greedy_by_most_negative() -> None:
    # 0 at 0 deg; 1 at 176 deg (cos -0.9976); 2 at 180.5 deg (cos -0.99996): 0 pairs with 2.
    # 3 at 90 deg, 4 at 268 deg (cos -0.9994): paired; 5 weak at 0 deg is ignored.
    w = polygon([0, 176, 180.5, 90, 268, 0], [1, 1, 1, 1, 1, 0.2])
    assert geometry.antipodal_pairs(w) == [(0, 2), (3, 4)]
    np.testing.assert_array_equal(geometry.antipodal_partners(w), [2, -1, 0, 4, 3, -1])
    # Without 2, 1 is 0's partner; with a strict cos_max it is not.
    assert geometry.antipodal_pairs(w[:, [0, 1]]) == [(0, 1)]
    assert geometry.antipodal_pairs(w[:, [0, 1]], cos_max=-0.999) == []
    # With the weak feature 5 counted, it ties with 0 for partner 2 (same direction): the lower
    # index wins the tie and 5 takes the next best partner, 1.
    assert geometry.antipodal_pairs(w, threshold=0.1) == [(0, 2), (1, 5), (3, 4)]


def test_antipodal_partners_batched_any_m() -> None:
    octa = geometry.ideal_polytope("octahedron")
    partners = geometry.antipodal_partners(np.stack([octa, np.eye(3, 6)]))
    np.testing.assert_array_equal(partners, [[1, 0, 3, 2, 5, 4], [-1] * 6])
    assert geometry.pairs_of(partners[0]) == [(0, 1), (2, 3), (4, 5)]
    with pytest.raises(ValueError, match="antipodal_pairs takes one instance"):
        geometry.antipodal_pairs(np.stack([octa, octa]))
    with pytest.raises(ValueError, match="partner must be one instance"):
        geometry.pairs_of(partners)
    with pytest.raises(ValueError, match="cos_max"):
        geometry.antipodal_partners(octa, cos_max=-2)


# ----- neighbours ------------------------------------------------------------------------------


def test_neighbours_in_angular_order() -> None:
    # Three correlated pairs side by side: (0, 1), (2, 3), (4, 5) at 0/50, 120/170, 240/290 deg.
    w = polygon([0, 50, 120, 170, 240, 290])
    for a, b in [(0, 1), (2, 3), (4, 5), (1, 2), (5, 0)]:
        assert geometry.neighbours_in_angular_order(w, a, b), (a, b)
        assert geometry.neighbours_in_angular_order(w, b, a), (b, a)
    for a, b in [(0, 2), (0, 3), (1, 4)]:
        assert not geometry.neighbours_in_angular_order(w, a, b), (a, b)
    # An interleaved arrangement (how independent features would sit) separates the partners.
    inter = polygon([0, 180, 60, 240, 120, 300])
    assert not any(bool(geometry.neighbours_in_angular_order(inter, 2 * s, 2 * s + 1)) for s in range(3))


def test_neighbours_respect_representation_and_batches() -> None:
    w = polygon([0, 50, 120, 170], [1, 1, 0.1, 1])
    assert geometry.neighbours_in_angular_order(w, 1, 3)  # the weak feature 2 does not separate them
    assert not geometry.neighbours_in_angular_order(w, 1, 2)  # 2 is not represented
    assert geometry.neighbours_in_angular_order(polygon([0, 180]), 0, 1)
    batch = np.stack([w, rotation(200) @ w[:, [3, 2, 1, 0]]])
    np.testing.assert_array_equal(geometry.neighbours_in_angular_order(batch, 0, 2), [False, True])
    with pytest.raises(ValueError, match="a and b must be different"):
        geometry.neighbours_in_angular_order(w, 1, 1)
    with pytest.raises(ValueError, match="b = 7 is not a feature index"):
        geometry.neighbours_in_angular_order(w, 1, 7)


# ----- octahedron ------------------------------------------------------------------------------


def test_octahedron_ideal_rotated_and_permuted() -> None:
    rng = np.random.default_rng(0)
    octa = geometry.ideal_polytope("octahedron")
    perm = np.array([3, 0, 5, 2, 1, 4])  # columns -e2, e1, -e3, e2, -e1, e3
    w = 1.2 * random_orthogonal(rng, 3) @ octa[:, perm]
    partners, axis_cos = geometry.octahedron_pairs(w)
    assert geometry.pairs_of(partners) == [(0, 3), (1, 4), (2, 5)]
    assert float(axis_cos) == pytest.approx(0.0, abs=1e-12)
    assert geometry.is_octahedron(w)


def test_octahedron_rejects_tilted_axes_and_other_shapes() -> None:
    octa = geometry.ideal_polytope("octahedron")
    t = np.radians(60)
    tilted = octa.copy()
    tilted[:, 2:4] = np.array([[np.cos(t), -np.cos(t)], [np.sin(t), -np.sin(t)], [0, 0]])  # 60 deg from e_1
    batch = np.stack([octa, tilted, geometry.ideal_polytope("tetrahedron")[:, [0, 1, 2, 3, 0, 1]]])
    _, axis_cos = geometry.octahedron_pairs(batch)
    assert axis_cos[0] == pytest.approx(0.0, abs=1e-12)
    assert axis_cos[1] == pytest.approx(0.5)
    assert np.isnan(axis_cos[2])
    np.testing.assert_array_equal(geometry.is_octahedron(batch), [True, False, False])
    with pytest.raises(ValueError, match="m = 3"):
        geometry.octahedron_pairs(np.ones((2, 6)))


def test_octahedron_tolerates_noise() -> None:
    rng = np.random.default_rng(1)
    w = geometry.ideal_polytope("octahedron") + rng.normal(scale=0.02, size=(3, 6))
    _, axis_cos = geometry.octahedron_pairs(w)
    assert 0 < float(axis_cos) < 0.1
    assert geometry.is_octahedron(w)


# ----- ideal polytopes -------------------------------------------------------------------------


AMBIENT = {
    "digon": 1,
    "triangle": 2,
    "square": 2,
    "pentagon": 2,
    "hexagon": 2,
    "tetrahedron": 3,
    "octahedron": 3,
    "square_antiprism": 3,
    "triangular_bipyramid": 3,
    "pentagonal_bipyramid": 3,
}
VERTICES = {
    "digon": 2,
    "triangle": 3,
    "square": 4,
    "pentagon": 5,
    "hexagon": 6,
    "tetrahedron": 4,
    "octahedron": 6,
    "square_antiprism": 8,
    "triangular_bipyramid": 5,
    "pentagonal_bipyramid": 7,
}


@pytest.mark.parametrize("name", geometry.POLYTOPES)
def test_ideal_polytope_shape_and_unit_norm(name: str) -> None:
    v = geometry.ideal_polytope(name)
    assert v.shape == (AMBIENT[name], VERTICES[name])
    np.testing.assert_allclose(metrics.feature_norms(v), 1.0, rtol=0, atol=1e-12)
    assert np.linalg.matrix_rank(v) == AMBIENT[name]  # spans its ambient space


@pytest.mark.parametrize("name", [p for p in geometry.POLYTOPES if "bipyramid" not in p])
def test_vertex_transitive_polytopes_are_tight_frames(name: str) -> None:
    """V Vᵀ = (N/m) I, so every vertex has D = m/N exactly."""
    v = geometry.ideal_polytope(name)
    m, n = v.shape
    np.testing.assert_allclose(v @ v.T, n / m * np.eye(m), rtol=0, atol=1e-12)
    np.testing.assert_allclose(metrics.feature_dimensionality(v), m / n, rtol=0, atol=1e-12)


def test_square_antiprism_is_an_antiprism() -> None:
    """Two parallel squares rotated 45 deg, and no vertex is antipodal to another."""
    v = geometry.ideal_polytope("square_antiprism")
    top, bottom = v[:, v[2] > 0], v[:, v[2] < 0]
    assert top.shape == bottom.shape == (3, 4)
    np.testing.assert_allclose(top[2], 1 / np.sqrt(3), atol=1e-15)
    offsets = (np.degrees(np.arctan2(bottom[1], bottom[0])) - np.degrees(np.arctan2(top[1], top[0]))) % 90
    np.testing.assert_allclose(offsets, 45.0, atol=1e-9)
    assert geometry.antipodal_pairs(v, cos_max=-0.99) == []


def test_bipyramid_dimensionalities_split() -> None:
    tri = metrics.feature_dimensionality(geometry.ideal_polytope("triangular_bipyramid"))
    pent = metrics.feature_dimensionality(geometry.ideal_polytope("pentagonal_bipyramid"))
    np.testing.assert_allclose(np.sort(tri), [1 / 2] * 2 + [2 / 3] * 3, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.sort(pent), [2 / 5] * 5 + [1 / 2] * 2, rtol=0, atol=1e-12)


def test_ideal_polytope_unknown_name() -> None:
    with pytest.raises(ValueError, match="name must be one of"):
        geometry.ideal_polytope("dodecahedron")
