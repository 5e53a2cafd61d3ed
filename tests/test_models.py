"""The numpy models: forward pass, loss and eval loss agree with hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from toymodel import models
from toymodel.data import eval_batch
from toymodel.spec import Spec


def test_forward_of_each_kind_by_hand() -> None:
    W = np.array([[[1.0, -1.0]]])  # m=1, n=2
    b = np.array([[0.1, -0.2]])
    x = np.array([[[0.5, 0.2]]])
    h = 0.5 - 0.2
    lin, hid = models.forward("linear", {"W": W, "b": b}, x)
    np.testing.assert_allclose(lin[0, 0], [h + 0.1, -h - 0.2])
    np.testing.assert_allclose(hid[0, 0], [h])
    relu, _ = models.forward("relu_output", {"W": W, "b": b}, x)
    np.testing.assert_allclose(relu[0, 0], [h + 0.1, 0.0])
    xr = np.array([[[0.2, 0.5]]])  # negative pre-activation: ReLU-hidden passes nothing
    rh, hr = models.forward("relu_hidden", {"W": W, "b": b}, xr)
    np.testing.assert_allclose(hr[0, 0], [0.0])
    np.testing.assert_allclose(rh[0, 0], [0.1, 0.0])
    W2 = np.array([[[2.0], [3.0]]])
    ab, _ = models.forward("abs", {"W": W, "b": b, "W2": W2}, x)
    np.testing.assert_allclose(ab[0, 0], [2 * h + 0.1, 3 * h - 0.2])
    with pytest.raises(ValueError, match="unknown model kind"):
        models.forward("quadratic", {"W": W, "b": b}, x)


def test_loss_weights_importance_and_l1() -> None:
    W = np.zeros((1, 1, 2))
    b = np.zeros((1, 2))
    x = np.array([[[1.0, 0.5], [0.0, 1.0]]])
    imp = np.array([[2.0, 1.0]])
    expected = ((2 * 1.0 + 0.25) + (0 + 1.0)) / 2
    assert models.loss("linear", {"W": W, "b": b}, x, imp)[0] == pytest.approx(expected)
    W1 = np.ones((1, 1, 2))
    with_l1 = models.loss("relu_output", {"W": W1, "b": b}, x, imp, hidden_l1=np.array([0.5]))
    no_l1 = models.loss("relu_output", {"W": W1, "b": b}, x, imp)
    assert with_l1[0] - no_l1[0] == pytest.approx(0.5 * (1.5 + 1.0) / 2)
    assert models.target("abs", np.array([-0.3]))[0] == pytest.approx(0.3)


def test_eval_loss_uses_the_shared_sample() -> None:
    spec = Spec(
        model="relu_output",
        n=4,
        m=2,
        importance=[1, 0.5, 0.25, 0.1],
        density=[[0.3] * 4, [0.9] * 4],
        restarts=2,
        eval_samples=5000,
        seed=1,
    )
    params = models.initial_weights(spec)
    got = models.eval_loss(spec, params)
    for k in range(spec.instances):
        s = k // spec.restarts
        x = eval_batch(spec, s)[None]
        one = {n: v[k : k + 1] for n, v in params.items()}
        ref = models.loss(spec.model, one, x, spec.importance_array()[s : s + 1])[0]
        assert got[k] == pytest.approx(ref, rel=1e-12)


def test_initial_weights_are_per_instance_streams() -> None:
    spec = Spec(model="abs", n=3, m=4, importance=[1] * 3, density=[1] * 3, restarts=3, seed=2)
    p = models.initial_weights(spec)
    assert p["W"].shape == (3, 4, 3) and p["W2"].shape == (3, 3, 4) and not p["b"].any()
    more = models.initial_weights(spec.replace(restarts=5))
    # instance k starts from stream k: adding restarts keeps the first ones (up to the std)
    ratio = more["W"][:3] / p["W"]
    np.testing.assert_allclose(ratio, ratio.flat[0])
    assert np.std(p["W"]) == pytest.approx(spec.resolved_init_std(), rel=0.5)
