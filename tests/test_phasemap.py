"""Tests of toymodel.analysis.phasemap: labels of the theory's candidates, boundary masks, agreement,
slopes, and selection by the deterministic expected loss."""

from __future__ import annotations

import numpy as np
import pytest

from toymodel import theory as T
from toymodel.analysis import phasemap as P
from toymodel.experiments import phase as ex
from toymodel.result import expected_loss_steps, validate


def test_extra_feature_labels_of_the_n2_candidates_match_their_theory_index() -> None:
    cands = T.candidate_params_n2(0.3)
    W = np.stack([cands[k][0] for k in T.N2_CANDIDATES])
    np.testing.assert_array_equal(P.extra_feature_labels(W), [0, 1, 2])
    # the continuous "confused feature" solution: both on one direction, norms 1/sqrt(2)
    confused = np.array([[1.0, 1.0]]) / np.sqrt(2)
    assert P.extra_feature_labels(confused) == 3
    # a weak, positively aligned extra (the wrong-sign local minimum) is not represented
    assert P.extra_feature_labels(np.array([[1.04, 0.15]])) == 0
    # labels broadcast over leading axes and are invariant to the sign of the hidden direction
    assert P.extra_feature_labels(-W[None]).shape == (1, 3)
    np.testing.assert_array_equal(P.extra_feature_labels(-W), [0, 1, 2])


def test_configurations_of_the_n3_candidates_and_the_triangle() -> None:
    cands = T.candidate_params_n3(0.1)
    W = np.stack([cands[k][0] for k in T.N3_CANDIDATES])
    np.testing.assert_array_equal(P.configuration_n3(W), [0, 1, 2, 3])
    # features 0 and 1 are interchangeable: swap them, rotate the plane
    rot = np.array([[0.6, -0.8], [0.8, 0.6]])
    swapped = rot @ W[:, :, [1, 0, 2]]
    np.testing.assert_array_equal(P.configuration_n3(swapped), [0, 1, 2, 3])
    assert P.configuration_n3(T.regular_polygon(3, 3)) == 4
    assert P.configuration_n3(np.array([[1.0, 0.7, 0.0], [0.0, 0.7, 1.0]])) == 5
    np.testing.assert_array_equal(P.extra_label_of_n3(np.arange(6)), [0, 1, 1, 2, 2, 3])


def test_theory_maps_label_like_their_candidates() -> None:
    r, s = ex.grid("fast")
    lab2 = T.phase_map_n2(r[:, None], s[None, :])
    W2 = np.stack([T.candidate_params_n2(0.5)[T.N2_CANDIDATES[i]][0] for i in lab2.ravel()])
    np.testing.assert_array_equal(P.extra_feature_labels(W2).reshape(lab2.shape), lab2)


def test_away_from_boundary_and_agreement() -> None:
    lab = np.zeros((6, 6), dtype=int)
    lab[:, 3:] = 1
    away = P.away_from_boundary(lab)
    np.testing.assert_array_equal(away[0], [True, True, False, False, True, True])
    assert away.sum() == 24
    far = P.away_from_boundary(lab, cells=3)
    np.testing.assert_array_equal(far[0], [True, False, False, False, False, True])
    assert P.away_from_boundary(lab, cells=1).all()
    trained = lab.copy()
    trained[0, 0] = 1  # a miss away from the boundary
    trained[0, 2] = 1  # a miss next to it
    assert P.agreement(trained, lab) == pytest.approx(34 / 36)
    assert P.agreement(trained, lab, away) == pytest.approx(23 / 24)
    with pytest.raises(ValueError, match="shape"):
        P.agreement(trained, lab[:3])
    with pytest.raises(ValueError, match="2-D"):
        P.away_from_boundary(lab[0])


def test_loglog_slopes_of_the_closed_forms() -> None:
    s = np.geomspace(0.1, 0.01, 5)
    anti = T.closed_form_losses_n2(0.5, s)[2]
    np.testing.assert_allclose(P.loglog_slopes(s, anti), 2.0, rtol=1e-12)
    ignored = T.closed_form_losses_n2(0.5, s)[0]
    assert np.all(np.abs(P.loglog_slopes(s, ignored) - 1.0) < 0.1)


def test_best_by_expected_loss_picks_the_exact_optimum() -> None:
    spec = ex.phase_grid(2, restarts=3).replace(importance=[[1.0, 0.5]], density=[[0.1, 0.1]])
    cands = T.candidate_params_n2(0.1)
    order = ["not_represented", "antipodal", "dedicated"]  # the antipodal pair wins at r=0.5, s=0.1
    W = np.stack([cands[k][0] for k in order])
    b = np.stack([cands[k][1] for k in order])
    steps = expected_loss_steps(spec)
    raw = {
        "W": W,
        "b": b,
        "loss_steps": steps,
        "loss_curve": np.zeros((3, steps.size)),
        "eval_loss": [0.0, 1.0, 2.0],
    }
    result = validate(raw, spec, "test")
    pick, Wb, loss = P.best_by_expected_loss(result)
    np.testing.assert_array_equal(pick, [1])
    np.testing.assert_allclose(Wb[0], cands["antipodal"][0])
    assert loss[0] == pytest.approx(float(T.closed_form_losses_n2(0.5, 0.1)[2]), rel=1e-9)
    np.testing.assert_allclose(
        P.expected_losses(result), T.closed_form_losses_n2(0.5, 0.1)[[0, 2, 1]], rtol=1e-9
    )
    with pytest.raises(ValueError, match="relu_output"):
        P.expected_losses(validate(raw, spec.replace(model="linear"), "test"))
