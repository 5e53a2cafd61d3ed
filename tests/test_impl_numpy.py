"""The numpy implementation: its gradients, optimiser, sampler and training loop, checked
against first principles (finite differences of toymodel.models.loss, the AdamW formula,
toymodel.data.sample), never against torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from toymodel import data, models
from toymodel.numpy_impl import gradients, training
from toymodel.numpy_impl.gradients import Trainer, shard_bounds
from toymodel.numpy_impl.optimiser import AdamW, lr_factor
from toymodel.numpy_impl.sampling import Sampler
from toymodel.numpy_impl.training import default_threads, train
from toymodel.result import Result
from toymodel.spec import FeatureGroup, Spec, TrainConfig, geometric_importance
from toymodel.suite.implementations import run

MODELS = ("linear", "relu_output", "relu_hidden", "abs")


def small_spec(model: str = "relu_output", **changes: object) -> Spec:
    base = {
        "model": model,
        "n": 5,
        "m": 2,
        "importance": geometric_importance(5, 0.8),
        "density": [[1.0] * 5, [0.3] * 5],
        "restarts": 2,
        "eval_samples": 512,
        "train": TrainConfig(steps=60, batch_size=64, log_every=25, lr=1e-2),
    }
    base.update(changes)
    return Spec(**base)  # type: ignore[arg-type]


def rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def feature_major(x: np.ndarray) -> np.ndarray:
    """data.sample's (I, batch, n) as the trainer's (I, n, batch)."""
    return np.ascontiguousarray(x.transpose(0, 2, 1))


# ----- gradients ----------------------------------------------------------------------------


def _problem(model: str, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    g = rng(seed)
    inst, m, n, batch = 3, 3, 5, 12
    params = {"W": g.normal(0, 0.7, (inst, m, n)), "b": g.normal(0, 0.3, (inst, n))}
    if model == "abs":
        params["W2"] = g.normal(0, 0.7, (inst, n, m))
    values = "uniform_pm1" if model == "abs" else "uniform01"
    x = data.sample(np.full((inst, n), 0.8), batch, g, values=values)
    return params, x, g.uniform(0.2, 1.0, (inst, n)), np.array([0.0, 0.3, 0.05])


def _kink_margin(model: str, params: dict[str, np.ndarray], x: np.ndarray) -> float:
    """Smallest |pre-activation| at a ReLU or |.| the loss passes through (all-zero samples,
    whose hidden vector is 0 whatever W is, excluded)."""
    h = np.matmul(x, np.swapaxes(params["W"], -1, -2))
    nonzero = np.any(x != 0, axis=-1)
    dec = np.swapaxes(params["W2"], -1, -2) if model == "abs" else params["W"]
    hh = np.maximum(h, 0) if model in ("relu_hidden", "abs") else h
    pre_out = np.matmul(hh, dec) + params["b"][:, None, :]
    margins = [np.abs(h[nonzero]).min()]
    if model != "linear":
        margins.append(np.abs(pre_out).min())
    return float(min(margins))


@pytest.mark.parametrize("with_l1", [False, True], ids=["plain", "hidden_l1"])
@pytest.mark.parametrize("model", MODELS)
def test_gradients_match_central_differences(model: str, with_l1: bool) -> None:
    params, x, imp, l1 = _problem(model, seed=3)
    l1_or_none = l1 if with_l1 else None
    assert _kink_margin(model, params, x) > 1e-4, "test data too close to a kink; pick another seed"
    trainer = Trainer(model, params, imp, l1_or_none, x.shape[1], dtype=np.float64)
    loss = trainer.loss_and_grads(feature_major(x))
    np.testing.assert_allclose(loss, models.loss(model, params, x, imp, l1_or_none), rtol=1e-12)

    eps = 1e-6
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            shifted = {k: v.copy() for k, v in params.items()}
            shifted[name][idx] = value[idx] + eps
            up = models.loss(model, shifted, x, imp, l1_or_none).sum()
            shifted[name][idx] = value[idx] - eps
            down = models.loss(model, shifted, x, imp, l1_or_none).sum()
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(
            trainer.grads[name],
            numeric,
            rtol=1e-5,
            atol=1e-8,
            err_msg=f"gradient of {name} ({model}, l1={with_l1})",
        )


def test_relu_gradients_are_zero_for_dead_units() -> None:
    """Outputs all clamped to 0 by the ReLU: the loss is sum_i I_i x_i^2 and nothing moves it."""
    params = {"W": np.zeros((1, 2, 4)), "b": np.full((1, 4), -1.0)}
    x = data.sample(np.ones((1, 4)), 32, rng(0))
    trainer = Trainer("relu_output", params, np.ones((1, 4)), None, 32, dtype=np.float64)
    loss = trainer.loss_and_grads(feature_major(x))
    np.testing.assert_allclose(loss, (x**2).sum(-1).mean(-1))
    assert not np.any(trainer.grad)


# ----- optimiser ----------------------------------------------------------------------------


def test_adamw_matches_the_reference_formula() -> None:
    g = rng(1)
    size, steps = 7, 6
    betas, eps, wd = (0.8, 0.95), 1e-3, 0.1
    theta0 = g.normal(size=size)
    grads = g.normal(size=(steps, size))
    lrs = [0.1 * lr_factor("cosine", t, steps) for t in range(steps)]

    theta = theta0.copy()
    opt = AdamW(size, betas, eps, wd, dtype=np.float64)
    for t in range(steps):
        opt.update(theta, grads[t].copy(), lrs[t])

    expected = []
    for i in range(size):  # one scalar at a time, straight from the torch.optim.AdamW docs
        p, m, v = theta0[i], 0.0, 0.0
        for t in range(1, steps + 1):
            grad, lr = grads[t - 1, i], lrs[t - 1]
            p = p - lr * wd * p
            m = betas[0] * m + (1 - betas[0]) * grad
            v = betas[1] * v + (1 - betas[1]) * grad**2
            m_hat = m / (1 - betas[0] ** t)
            v_hat = v / (1 - betas[1] ** t)
            p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
        expected.append(p)
    np.testing.assert_allclose(theta, expected, rtol=1e-12)


def test_lr_schedules() -> None:
    assert [lr_factor("constant", t, 4) for t in range(4)] == [1.0] * 4
    np.testing.assert_allclose([lr_factor("linear", t, 4) for t in range(4)], [1, 0.75, 0.5, 0.25])
    cosine = [lr_factor("cosine", t, 3) for t in range(3)]
    np.testing.assert_allclose(cosine, [1, math.sqrt(0.5), 0], atol=1e-15)
    assert lr_factor("cosine", 0, 1) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        lr_factor("step", 0, 1)


# ----- independence of instances ------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_joint_training_equals_separate_training(model: str) -> None:
    params, _, imp, l1 = _problem(model, seed=5)
    inst, batch = 3, 64
    values = "uniform_pm1" if model == "abs" else "uniform01"
    g = rng(9)
    batches = [
        feature_major(data.sample(np.full((inst, 5), 0.5), batch, g, values=values, dtype=np.float32))
        for _ in range(5)
    ]

    def fit(sl: slice) -> tuple[np.ndarray, np.ndarray]:
        trainer = Trainer(model, {k: v[sl] for k, v in params.items()}, imp[sl], l1[sl], batch)
        opt = AdamW(trainer.theta.size, weight_decay=0.01)
        losses = []
        for x in batches:
            losses.append(trainer.loss_and_grads(x[sl]))
            opt.update(trainer.theta, trainer.grad, 1e-2)
        flat = np.concatenate([v.reshape(v.shape[0], -1) for v in trainer.params.values()], 1)
        return flat, np.array(losses)

    joint_w, joint_loss = fit(slice(0, inst))
    for i in range(inst):
        alone_w, alone_loss = fit(slice(i, i + 1))
        np.testing.assert_allclose(joint_w[i : i + 1], alone_w, rtol=1e-6, atol=1e-7, err_msg=f"instance {i}")
        np.testing.assert_allclose(joint_loss[:, i : i + 1], alone_loss, rtol=1e-6, err_msg=f"instance {i}")
    assert not np.allclose(joint_w[0], joint_w[1]), "instances should differ"


# ----- sampler ------------------------------------------------------------------------------

SAMPLER_CASES = {
    "independent": ((), "uniform01"),
    "pm1": ((), "uniform_pm1"),
    "correlated": ((FeatureGroup("correlated", (1, 2, 3)),), "uniform01"),
    "anticorrelated": (
        (FeatureGroup("anticorrelated", (0, 2, 4)), FeatureGroup("correlated", (1, 3))),
        "uniform_pm1",
    ),
}


@pytest.mark.parametrize("case", SAMPLER_CASES)
def test_sampler_matches_data_sample(case: str) -> None:
    groups, values = SAMPLER_CASES[case]
    density = np.array([[0.5, 0.02, 0.02, 0.02, 1.0], [0.3, 0.7, 0.7, 0.7, 0.0]])
    if case == "anticorrelated":
        density = np.array([[0.6, 0.1, 0.6, 0.1, 0.6], [0.05, 1.0, 0.05, 1.0, 0.05]])
    batch = 40_000
    ours = Sampler(density, batch, rng(2), groups=groups, values=values).draw().transpose(0, 2, 1)
    ref = data.sample(density, batch, rng(3), groups=groups, values=values)
    assert ours.dtype == np.float32

    # marginals: activity rate, and the law of the non-zero values (KS)
    lo = -1.0 if values == "uniform_pm1" else 0.0
    assert ours.min() >= lo
    assert ours.max() <= 1.0
    act, act_ref = ours != 0, ref != 0
    se = np.sqrt(density * (1 - density) / batch) + 1e-9
    assert np.all(np.abs(act.mean(1) - act_ref.mean(1)) < 5 * np.sqrt(2) * se + 1e-4)
    for i, f in np.argwhere(density > 0):
        a, r = ours[i, :, f][act[i, :, f]], ref[i, :, f][act_ref[i, :, f]]
        p_value = stats.ks_2samp(a, r).pvalue
        assert p_value > 1e-4, f"values of feature {f}, instance {i}: KS p = {p_value:.2g}"
    # joint structure: co-activity of every pair of features
    co = np.einsum("ibn,ibk->ink", act.astype(float), act.astype(float)) / batch
    co_ref = np.einsum("ibn,ibk->ink", act_ref.astype(float), act_ref.astype(float)) / batch
    np.testing.assert_allclose(co, co_ref, atol=0.015)
    for g in groups:
        members = act[:, :, list(g.features)]
        if g.kind == "correlated":
            assert np.all(members == members[:, :, :1])
        else:
            assert members.sum(-1).max() <= 1


def test_sampler_density_zero_and_one() -> None:
    x = Sampler(np.array([[0.0, 1.0]]), 100_000, rng(0)).draw()
    assert not np.any(x[0, 0])
    assert np.all(x[0, 1] > 0)


# ----- training -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_result_passes_the_contract(model: str) -> None:
    spec = small_spec(model, hidden_l1=[0.0, 0.1])
    result = run("numpy", spec)
    assert isinstance(result, Result)
    assert result.implementation == "numpy"
    assert (result.W2 is not None) == (model == "abs")
    np.testing.assert_array_equal(result.loss_steps, [25, 50, 60])
    np.testing.assert_allclose(result.eval_loss, models.eval_loss(spec, result.params), rtol=1e-12)
    assert result.meta["steps_per_second"] > 0


def test_loss_curve_is_the_window_mean_of_step_losses() -> None:
    spec = small_spec(train=TrainConfig(steps=10, batch_size=32, log_every=1))
    every_step = train(spec)["loss_curve"]
    windows = train(spec.replace(train={"log_every": 3}))["loss_curve"]
    expected = np.stack([every_step[:, s : s + 3].mean(1) for s in (0, 3, 6, 9)], 1)
    np.testing.assert_allclose(windows, expected, rtol=1e-12)
    # the first point is the loss of the initial weights on the first batch of the documented stream
    stream = np.random.Generator(np.random.PCG64(data.seed_sequence(spec.seed, "numpy-train", 0)))
    x = Sampler(spec.density_array(per_instance=True), 32, stream).draw().transpose(0, 2, 1)
    start = models.initial_weights(spec, training.INIT_STREAM)
    first = models.loss("relu_output", start, x.astype(np.float64), spec.importance_array(per_instance=True))
    np.testing.assert_allclose(every_step[:, 0], first, rtol=1e-5)


def test_same_seed_same_result_other_seed_differs() -> None:
    spec = small_spec("relu_hidden")
    a, b, c = train(spec), train(spec), train(spec.replace(seed=1))
    for field in ("W", "b", "loss_curve"):
        np.testing.assert_array_equal(a[field], b[field], err_msg=field)
    assert not np.allclose(a["W"], c["W"])
    assert not np.allclose(a["loss_curve"], c["loss_curve"])


def test_loss_decreases() -> None:
    spec = small_spec(
        "relu_output",
        density=[0.1] * 5,
        restarts=3,
        train=TrainConfig(steps=400, batch_size=256, log_every=50, lr=1e-2),
    )
    curve = train(spec)["loss_curve"]
    assert np.all(curve[:, -1] < 0.7 * curve[:, 0]), curve


def test_linear_model_learns_the_top_two_features() -> None:
    """With dense features a linear model keeps the m most important ones, orthogonally."""
    spec = Spec(
        model="linear",
        n=5,
        m=2,
        importance=(geometric_importance(5, 0.7),),
        density=((1.0,) * 5,),
        restarts=2,
        eval_samples=1024,
        train=TrainConfig(steps=2000, batch_size=1024, lr=1e-2),
    )
    norms = np.linalg.norm(train(spec)["W"], axis=1)  # (instances, n)
    np.testing.assert_allclose(norms[:, :2], 1.0, atol=0.1)
    assert np.all(norms[:, 2:] < 0.15), norms


# ----- shards and threads -------------------------------------------------------------------


def test_shard_bounds() -> None:
    assert shard_bounds(10, 3, limit=7) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert shard_bounds(3, 100, limit=7) == [(0, 1), (1, 2), (2, 3)]  # at least one instance each
    assert shard_bounds(5, 1, limit=100) == [(0, 5)]
    with pytest.raises(ValueError, match="instances=0"):
        shard_bounds(0, 3)


@pytest.mark.parametrize("shards", [[(0, 2), (3, 4)], [(0, 2), (2, 3)], [(0, 0), (0, 4)], []])
def test_trainer_rejects_shards_that_do_not_tile_the_instances(shards: list[tuple[int, int]]) -> None:
    params, _, imp, l1 = _problem("relu_output", 0)
    params = {k: np.concatenate([v, v[:1]]) for k, v in params.items()}  # 4 instances
    with pytest.raises(ValueError, match="shards must be contiguous"):
        Trainer("relu_output", params, np.concatenate([imp, imp[:1]]), np.append(l1, 0.0), 12, shards=shards)


@pytest.mark.parametrize("model", MODELS)
def test_sharded_trainer_equals_one_block(model: str) -> None:
    params, x, imp, l1 = _problem(model, 4)
    x = feature_major(x).astype(np.float32)
    whole = Trainer(model, params, imp, l1, x.shape[-1])
    split = Trainer(model, params, imp, l1, x.shape[-1], shards=[(0, 1), (1, 3)])
    loss_whole, loss_split = whole.loss_and_grads(x), split.loss_and_grads(x)
    np.testing.assert_allclose(loss_split, loss_whole, rtol=1e-6)
    np.testing.assert_allclose(split.grad, whole.grad, rtol=1e-5, atol=1e-7)
    # a shard computed alone fills only its own instances' gradients
    split.grad[:] = 0.0
    split.shard_loss_and_grads(1, x[1:3])
    assert not np.any(split.grads["W"][0]) and np.all(np.any(split.grads["W"][1:] != 0, axis=(1, 2)))


@pytest.fixture
def tiny_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards of 64 entries: every instance of small_spec (n=5, batch 64) is a shard of its own."""
    monkeypatch.setattr(gradients, "SHARD_ENTRIES", 64)


@pytest.mark.usefixtures("tiny_shards")
@pytest.mark.parametrize("model", ["relu_output", "abs"])
def test_result_does_not_depend_on_the_thread_count(model: str) -> None:
    spec = small_spec(model, hidden_l1=[0.0, 0.1], restarts=3)
    one, three = train(spec, threads=1), train(spec, threads=3)
    assert one["meta"]["shards"] == spec.instances and three["meta"]["threads"] == 3
    for field in ("W", "b", "W2", "loss_curve"):
        np.testing.assert_array_equal(one[field], three[field], err_msg=field)


@pytest.mark.usefixtures("tiny_shards")
def test_each_shard_draws_from_its_own_documented_stream() -> None:
    spec = small_spec(train=TrainConfig(steps=1, batch_size=64, log_every=1))
    first = train(spec, threads=2)["loss_curve"][:, 0]
    density = spec.density_array(per_instance=True)
    weights = models.initial_weights(spec, training.INIT_STREAM)
    for k in range(spec.instances):
        stream = np.random.Generator(np.random.PCG64(data.seed_sequence(spec.seed, "numpy-train", k)))
        x = Sampler(density[k : k + 1], 64, stream).draw().transpose(0, 2, 1)
        expected = models.loss(
            "relu_output",
            {n: w[k : k + 1] for n, w in weights.items()},
            x.astype(np.float64),
            spec.importance_array(per_instance=True)[k : k + 1],
        )
        np.testing.assert_allclose(first[k], expected[0], rtol=1e-5, err_msg=f"instance {k}")


def test_bad_thread_counts_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    bad: object
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=f"threads must be a positive integer, got {bad!r}"):
            train(small_spec(), threads=bad)  # type: ignore[arg-type]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    for text in ("two", "0"):
        monkeypatch.setenv("OMP_NUM_THREADS", text)
        with pytest.raises(ValueError, match=f"OMP_NUM_THREADS must be a positive integer, got '{text}'"):
            default_threads()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() >= 1
