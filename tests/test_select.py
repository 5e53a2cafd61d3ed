"""Tests of toymodel.analysis.select: lowest held-out loss per setting, best weights, best loss per label."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from toymodel.analysis import select
from toymodel.result import Result, expected_loss_steps, validate
from toymodel.spec import ModelKind, Spec

# settings x restarts held-out losses; the best restarts are 2, 0, 3 (setting 1 has a tie 0/1).
LOSSES = np.array(
    [
        [0.30, 0.20, 0.10, 0.40],
        [0.05, 0.05, 0.50, 0.60],
        [0.90, 0.80, 0.70, 0.01],
    ]
)


def synthetic_result(model: ModelKind = "relu_output") -> Result:
    """3 settings x 4 restarts whose weights are filled with their instance index."""
    n, m, settings, restarts = 3, 2, 3, 4
    spec = Spec(
        model=model,
        n=n,
        m=m,
        importance=((1.0,) * n,),
        density=((1.0,) * n, (0.5,) * n, (0.1,) * n),
        restarts=restarts,
    )
    inst = np.arange(settings * restarts, dtype=float)
    raw = {
        "W": np.broadcast_to(inst[:, None, None], (spec.instances, m, n)),
        "b": np.broadcast_to(-inst[:, None], (spec.instances, n)),
        "loss_steps": expected_loss_steps(spec),
        "loss_curve": np.ones((spec.instances, expected_loss_steps(spec).size)),
    }
    if model == "abs":
        raw["W2"] = np.broadcast_to(10 * inst[:, None, None], (spec.instances, n, m))
    # the suite ranks by its own held-out losses: give them directly
    return dataclasses.replace(validate(raw, spec, "synthetic"), eval_loss=LOSSES.reshape(-1))


def test_lowest_loss_flat_and_by_setting() -> None:
    np.testing.assert_array_equal(select.lowest_loss(LOSSES.reshape(-1), settings=3, restarts=4), [2, 0, 3])
    np.testing.assert_array_equal(select.lowest_loss(LOSSES), [2, 0, 3])
    np.testing.assert_array_equal(select.lowest_loss(LOSSES, 3, 4), [2, 0, 3])


def test_lowest_loss_nan_ranks_last() -> None:
    losses = np.array([[np.nan, 0.5, 0.4], [np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(select.lowest_loss(losses), [2, 0])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((LOSSES.reshape(-1),), r"eval_loss must have shape \(settings, restarts\)"),
        ((LOSSES.reshape(-1), 3, None), "give both settings and restarts"),
        ((LOSSES.reshape(-1), 5, 4), "eval_loss must hold settings x restarts = 5 x 4"),
        ((LOSSES, 4, 3), r"eval_loss has shape \(3, 4\), expected \(4, 3\)"),
        ((LOSSES.reshape(-1), 0, 12), "settings and restarts must be >= 1"),
    ],
)
def test_lowest_loss_errors(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        select.lowest_loss(*args)  # type: ignore[arg-type]


def test_best_of_picks_whole_instances() -> None:
    result = synthetic_result()
    best = select.best_of(result)
    np.testing.assert_array_equal(best.restart, [2, 0, 3])
    np.testing.assert_array_equal(best.instance, [2, 4, 11])
    np.testing.assert_array_equal(best.eval_loss, [0.10, 0.05, 0.01])
    assert best.W.shape == (3, 2, 3)
    assert best.b.shape == (3, 3)
    # Every chosen array is one instance's, never a mixture: W is constant at the instance index.
    for s, i in enumerate(best.instance):
        np.testing.assert_array_equal(best.W[s], result.W[i])
        np.testing.assert_array_equal(best.b[s], result.b[i])
        assert np.all(best.W[s] == i)
    assert best.W2 is None


def test_best_of_abs_model_carries_W2() -> None:
    best = select.best_of(synthetic_result("abs"))
    assert best.W2 is not None
    assert best.W2.shape == (3, 3, 2)
    np.testing.assert_array_equal(best.W2[:, 0, 0], 10 * best.instance)


def test_best_by_label() -> None:
    labels = np.array(
        [
            ["pentagon", "square", "pentagon", "other"],
            ["square", "square", "square", "pentagon"],
            ["pentagon", "pentagon", "square", "pentagon"],
        ]
    )
    best = select.best_by_label(LOSSES, labels)
    assert list(best) == ["other", "pentagon", "square"]
    np.testing.assert_array_equal(best["pentagon"], [0.10, 0.60, 0.01])
    np.testing.assert_array_equal(best["square"], [0.20, 0.05, 0.70])
    np.testing.assert_array_equal(best["other"], [0.40, np.nan, np.nan])
    # The overall best of each setting is the best of its label's curve.
    overall = np.min(LOSSES, axis=1)
    np.testing.assert_array_equal(np.fmin(best["pentagon"], best["square"]), overall)


def test_best_by_label_skips_nan_losses_and_takes_any_leading_shape() -> None:
    losses = np.array([[[np.nan, 0.3]], [[0.2, 0.1]]])  # (2, 1, 2)
    labels = np.array([[["a", "a"]], [["b", "a"]]])
    best = select.best_by_label(losses, labels)
    np.testing.assert_array_equal(best["a"], [[0.3], [0.1]])
    np.testing.assert_array_equal(best["b"], [[np.nan], [0.2]])


def test_best_by_label_errors() -> None:
    with pytest.raises(ValueError, match="labels must have the shape of losses"):
        select.best_by_label(LOSSES, np.array(["a"] * 12))
    with pytest.raises(ValueError, match="losses is empty"):
        select.best_by_label(np.zeros((2, 0)), np.zeros((2, 0), dtype=str))
