"""The reference implementation's fast path equals autograd + torch.optim.AdamW, its samplers
match the canonical numpy sampler in distribution, and its runs are deterministic."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from toymodel import models
from toymodel import plain as torch_plain
from toymodel.data import sample as np_sample
from toymodel.reference import dense, gradients, optimiser, pipeline, sampling, sparse, training
from toymodel.spec import FeatureGroup, Schedule, Spec, TrainConfig

MODELS = ["linear", "relu_output", "relu_hidden", "abs"]


def small_spec(model: str = "relu_output", **kw: object) -> Spec:
    base: dict[str, object] = dict(
        model=model,
        n=6,
        m=3,
        importance=[0.9**i for i in range(6)],
        density=[[0.3] * 6, [0.7] * 6],
        restarts=2,
        seed=3,
        train=TrainConfig(steps=50, batch_size=64, lr=1e-2, log_every=10),
    )
    base.update(kw)
    return Spec(**base)  # type: ignore[arg-type]


def _random_params(spec: Spec, seed: int) -> gradients.Params:
    gen = torch.Generator().manual_seed(seed)
    p = gradients.Params.allocate(spec.model, spec.instances, spec.m, spec.n, torch.device("cpu"))
    p.flat.copy_(torch.randn(p.flat.shape, generator=gen) * 0.5)
    return p


@pytest.mark.parametrize("fused_ok", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("l1", [0.0, 0.05])
def test_gradients_equal_autograd(model: str, l1: float, fused_ok: bool) -> None:
    """Both steps of the reference: the fused kernel (where built) and the unfused torch step."""
    spec = small_spec(model, hidden_l1=[l1, 2 * l1])
    p = _random_params(spec, 1)
    g = gradients.Params.allocate(spec.model, spec.instances, spec.m, spec.n, torch.device("cpu"))
    gen = torch.Generator().manual_seed(2)
    x = sampling.sample(torch.full((spec.instances, spec.n), 0.6), 64, gen, values=str(spec.values))[0]
    imp = torch.tensor(spec.importance_array(per_instance=True), dtype=torch.float32)
    l1t = torch.tensor(spec.hidden_l1_array(per_instance=True), dtype=torch.float32) if l1 else None
    loss = gradients.loss_and_grads(model, p, g, x, imp, l1t, fused_ok=fused_ok)

    ref = {k: v.detach().clone().requires_grad_(True) for k, v in p.as_dict().items()}
    ref_loss = torch_plain.forward_loss(model, ref, x, imp, l1t)
    ref_loss.sum().backward()
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-5, atol=1e-6)
    for name, view in g.as_dict().items():
        grad = ref[name].grad
        assert grad is not None
        torch.testing.assert_close(view, grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {name} ({model})")


def test_flat_adamw_equals_torch_adamw() -> None:
    gen = torch.Generator().manual_seed(0)
    p_ref = torch.randn(50, generator=gen).requires_grad_(True)
    p_fast = p_ref.detach().clone()
    opt_ref = torch.optim.AdamW([p_ref], lr=3e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.05)
    opt_fast = optimiser.FlatAdamW(p_fast, (0.8, 0.99), 1e-7, 0.05)
    for _ in range(200):
        grad = torch.randn(50, generator=gen)
        p_ref.grad = grad.clone()
        opt_ref.step()
        opt_fast.step(grad, 3e-3)
    torch.testing.assert_close(p_fast, p_ref.detach(), rtol=1e-6, atol=1e-7)


def _shared_stream(spec: Spec, seed: int) -> tuple[Iterator[torch.Tensor], Iterator[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    dens = torch.tensor(spec.density_array(per_instance=True), dtype=torch.float32)
    batches = [
        sampling.sample(dens, spec.train.batch_size, gen, groups=spec.groups, values=str(spec.values))[0]
        for _ in range(spec.train.steps)
    ]
    return iter([b.clone() for b in batches]), iter(batches)


@pytest.mark.parametrize(
    ("model", "schedule"),
    [("relu_output", "constant"), ("linear", "cosine"), ("relu_hidden", "linear"), ("abs", "constant")],
)
def test_trajectory_equals_autograd_adamw(model: str, schedule: Schedule) -> None:
    """300 steps of the fast path against autograd + torch.optim.AdamW on the same batches."""
    spec = small_spec(
        model,
        train=TrainConfig(steps=300, batch_size=128, lr=5e-3, schedule=schedule, log_every=50),
        hidden_l1=[0.0, 0.01],
    )
    a, b = _shared_stream(spec, 5)
    fast, steps_f, curve_f = training.fit(spec, data=a)
    plain, steps_p, curve_p = torch_plain.fit(spec, data=b)
    np.testing.assert_array_equal(steps_f, steps_p)
    np.testing.assert_allclose(curve_f, curve_p, rtol=2e-4, atol=1e-7)
    for name, view in fast.as_dict().items():
        # float32 rounding differs in summation order; 300 Adam steps amplify it only mildly
        torch.testing.assert_close(view, plain[name].detach(), rtol=1e-3, atol=2e-4, msg=name)


def test_joint_training_equals_separate() -> None:
    """Instances are independent: training two settings together equals training each alone."""
    joint = small_spec(restarts=1, train=TrainConfig(steps=100, batch_size=64, lr=1e-2, init_std=0.3))
    a, _ = _shared_stream(joint, 7)
    batches = list(a)
    p_joint, _, curve_joint = training.fit(joint, data=iter(batches))
    for s in range(joint.settings):
        alone = joint.replace(density=joint.density[s : s + 1], importance=joint.importance[s : s + 1])
        # instance s of the joint spec starts from init stream k=s; align the seed streams
        init = models.initial_weights(joint)
        p_alone = gradients.Params.allocate(alone.model, 1, alone.m, alone.n, torch.device("cpu"))
        g = gradients.Params.allocate(alone.model, 1, alone.m, alone.n, torch.device("cpu"))
        p_alone.W.copy_(torch.from_numpy(init["W"][s : s + 1]))
        opt = optimiser.FlatAdamW(p_alone.flat, alone.train.betas, alone.train.eps, alone.train.weight_decay)
        imp = torch.tensor(alone.importance_array(per_instance=True), dtype=torch.float32)
        with torch.inference_mode():
            for x in batches:
                gradients.loss_and_grads(alone.model, p_alone, g, x[s : s + 1].clone(), imp, None)
                opt.step(g.flat, alone.train.lr)
        torch.testing.assert_close(p_alone.W[0], p_joint.W[s], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(p_alone.b[0], p_joint.b[s], rtol=1e-5, atol=1e-6)
    assert curve_joint.shape == (2, 1)  # 100 steps, log_every 100


def test_same_seed_same_result_and_other_seed_differs() -> None:
    spec = small_spec()
    r1, r2 = training.train(spec), training.train(spec)
    np.testing.assert_array_equal(r1["W"], r2["W"])
    np.testing.assert_array_equal(r1["loss_curve"], r2["loss_curve"])
    r3 = training.train(spec.replace(seed=4))
    assert not np.allclose(r1["W"], r3["W"])


def _marginals(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nz = x != 0
    return nz.mean(axis=(0, 1)), np.where(nz, x, np.nan)


@pytest.mark.parametrize("values", ["uniform01", "uniform_pm1"])
def test_fast_sampler_matches_numpy_sampler(values: str) -> None:
    """Activity rate within a binomial 5-sigma bound; value distribution by a KS test."""
    from scipy.stats import ks_2samp

    dens = np.array([[0.003, 0.05, 0.3, 0.9, 1.0, 0.0]])
    B = 200_000
    fast = sampling.sample(
        torch.tensor(dens, dtype=torch.float32), B, torch.Generator().manual_seed(1), values=values
    )[0].numpy()
    ref = np_sample(dens, B, np.random.default_rng(1), values=values)
    for i, p in enumerate(dens[0]):
        rate = float((fast[0, :, i] != 0).mean())
        sd = np.sqrt(p * (1 - p) / B)
        assert abs(rate - p) <= 5 * sd + 1e-12, f"feature {i}: active rate {rate} vs density {p}"
        if p >= 0.05:
            a, b = fast[0, :, i], ref[0, :, i]
            pval = ks_2samp(a[a != 0], b[b != 0]).pvalue
            assert pval > 1e-4, f"feature {i}: value distribution differs (KS p={pval:.2g})"
    assert np.all(fast[0, :, 5] == 0)
    lo, hi = (0.0, 1.0) if values == "uniform01" else (-1.0, 1.0)
    assert fast.min() >= lo
    assert fast.max() <= hi


def _grouped_reference(dens: torch.Tensor, batch: int, gen: torch.Generator, groups: tuple) -> np.ndarray:
    return sampling.sample(dens, batch, gen, groups=groups, steps=2).numpy()


def _grouped_plain(dens: torch.Tensor, batch: int, gen: torch.Generator, groups: tuple) -> np.ndarray:
    return np.stack([torch_plain.notebook_batch(dens, batch, gen, groups=groups).numpy() for _ in range(2)])


@pytest.mark.parametrize("draw", [_grouped_reference, _grouped_plain], ids=["reference", "plain"])
def test_grouped_sampler_rules(draw: Callable[..., np.ndarray]) -> None:
    groups = (FeatureGroup("correlated", (0, 1, 2)), FeatureGroup("anticorrelated", (3, 4, 6)))
    dens = torch.full((2, 7), 0.4)
    x = draw(dens, 50_000, torch.Generator().manual_seed(2), groups)
    act = x != 0
    size = act[..., 0].size
    # correlated members share their zero mask, and the set fires with its density
    assert np.all(act[..., 0] == act[..., 1])
    assert np.all(act[..., 0] == act[..., 2])
    assert abs(act[..., 0].mean() - 0.4) < 5 * np.sqrt(0.24 / size)
    # anticorrelated members are never active together; the set fires with its density, each
    # member a third of the time
    anti = act[..., [3, 4, 6]]
    assert not np.any(anti.sum(-1) > 1)
    assert abs(anti.any(-1).mean() - 0.4) < 5 * np.sqrt(0.24 / size)
    for j in range(3):
        p = 0.4 / 3
        assert abs(anti[..., j].mean() - p) < 5 * np.sqrt(p * (1 - p) / size), f"member {j}"
    # the independent feature is independent of the correlated set
    both = (act[..., 0] & act[..., 5]).mean()
    assert abs(both - 0.16) < 5 * np.sqrt(0.16 * 0.84 / size)
    # values are uniform on [0, 1] where active
    vals = x[act]
    assert vals.min() >= 0.0 and vals.max() <= 1.0
    assert abs(vals.mean() - 0.5) < 5 * np.sqrt(1 / 12 / vals.size)


def test_lr_factor_schedules() -> None:
    assert optimiser.lr_factor("constant", 5, 10) == 1.0
    assert optimiser.lr_factor("linear", 5, 10) == pytest.approx(0.5)
    assert optimiser.lr_factor("cosine", 0, 10) == 1.0
    assert optimiser.lr_factor("cosine", 9, 10) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="unknown schedule"):
        optimiser.lr_factor("step", 1, 2)


def test_cuda_device_without_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        training.train(small_spec(device="cuda"))


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    spec = small_spec(train=TrainConfig(steps=100, batch_size=128, lr=5e-3))
    batches = list(itertools.islice(_shared_stream(spec, 9)[0], spec.train.steps))
    cpu, _, _ = training.fit(spec, data=iter(batches))
    gpu, _, _ = training.fit(spec.replace(device="cuda"), data=iter(b.cuda() for b in batches))
    torch.testing.assert_close(gpu.W.cpu(), cpu.W, rtol=1e-3, atol=1e-4)


def test_training_learns_top_features() -> None:
    """A linear n=5, m=2 model learns the two most important features (sanity of the loop)."""
    spec = Spec(
        model="linear",
        n=5,
        m=2,
        importance=[0.7**i for i in range(5)],
        density=[1.0] * 5,
        train=TrainConfig(steps=1500, batch_size=256, lr=1e-2),
    )
    res = training.train(spec)
    norms = np.linalg.norm(res["W"][0], axis=0)
    assert np.all(np.abs(norms[:2] - 1) < 0.1), norms
    assert np.all(norms[2:] < 0.1), norms
    assert res["loss_curve"][0, -1] < res["loss_curve"][0, 0]


def _replay_fast_stream(spec: Spec) -> Iterator[torch.Tensor]:
    """The dense batches the fast path draws for ``spec`` (same stream, same order), with each
    sparse run's non-zero samples first: the loss is a mean over samples, order-free."""
    from toymodel.data import seed_sequence

    B, values = spec.train.batch_size, str(spec.values)
    dens = spec.density_array(per_instance=True)
    bits = np.random.SFC64(seed_sequence(spec.seed, "torch-train-sfc64"))
    rng = np.random.Generator(bits)
    runs = pipeline.plan(dens, B, sparse_ok=True)
    draws = {r.start: sparse.Draws(dens[r.start : r.stop], B, rng, values) for r in runs if r.sparse}
    coefs = {r.start: dense.dense_coefficients(dens[r.start : r.stop], values) for r in runs if not r.sparse}
    while True:
        x = torch.zeros(spec.instances, B, spec.n)
        for r in runs:
            if r.sparse:
                xs, R = draws[r.start].next()
                x[r.start : r.stop, :R] = xs
            else:
                dense.dense_into(x[r.start : r.stop], *coefs[r.start], bits, values)
        yield x


def _assert_fast_path_equals_autograd_on_replay(spec: Spec) -> None:
    """``fit``'s default path equals autograd + torch.optim.AdamW fed the batches it drew."""
    fast, _, curve_f = training.fit(spec)
    plain, _, curve_p = torch_plain.fit(spec, data=_replay_fast_stream(spec))
    np.testing.assert_allclose(curve_f, curve_p, rtol=2e-4, atol=1e-7)
    for name, view in fast.as_dict().items():
        torch.testing.assert_close(view, plain[name].detach(), rtol=1e-3, atol=2e-4, msg=name)


@pytest.mark.parametrize(
    ("model", "density"),
    [
        ("relu_output", [[1.0] * 6, [0.1] * 6]),
        ("relu_hidden", [[0.01] * 6, [0.003] * 6]),
        ("abs", [[0.9] * 6, [0.005] * 6]),
        ("linear", [[0.02] * 6, [0.5] * 6]),
    ],
)
def test_fast_path_equals_autograd_adamw_on_its_own_samples(model: str, density: list[list[float]]) -> None:
    """The default (fast) path of ``fit`` — its own sampler, sparse runs with closed-form zero
    samples, runs split by density — equals autograd + torch.optim.AdamW fed the batches it drew."""
    spec = small_spec(
        model,
        density=density,
        hidden_l1=[0.0, 0.01],
        train=TrainConfig(steps=150, batch_size=256, lr=5e-3, log_every=50),
    )
    _assert_fast_path_equals_autograd_on_replay(spec)


@pytest.mark.parametrize(("inst", "rows", "k", "cols"), [(3, 64, 5, 2), (2, 1024, 300, 30)])
def test_numpy_and_torch_batched_products_agree(inst: int, rows: int, k: int, cols: int) -> None:
    """Both routes of the batched product (numpy matmul for small, torch.bmm for large)."""
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(inst, rows, k, generator=gen), torch.randn(inst, cols, k, generator=gen)
    out = torch.empty(inst, rows, cols)
    gradients.bmm(a, b.transpose(1, 2), out)
    torch.testing.assert_close(out, torch.bmm(a, b.transpose(1, 2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["torch", "numpy"])
def test_shorter_run_is_a_prefix_of_a_longer_one(impl: str) -> None:
    """The dynamics claims read trajectories from runs that differ only in ``steps``."""
    from toymodel.suite.implementations import run

    spec = small_spec(train=TrainConfig(steps=60, batch_size=64, lr=1e-2, log_every=20))
    short = run(impl, spec)
    long = run(impl, spec.replace(train={"steps": 120}))
    np.testing.assert_array_equal(short.loss_curve, long.loss_curve[:, :3])
    if impl == "torch":
        seen: dict[int, np.ndarray] = {}

        def grab(t: int, p: gradients.Params) -> None:
            if t == 59:
                seen[t] = p.W.detach().double().numpy().copy()

        training.fit(spec.replace(train={"steps": 120}), on_step=grab)
        np.testing.assert_array_equal(seen[59], short.W)


@pytest.mark.parametrize("sparse_half", [False, True], ids=["one-dense-run", "dense-and-sparse-runs"])
def test_fast_path_with_several_blocks_equals_autograd(
    sparse_half: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dense run too large for one draw (several blocks of instances, the next block's words
    drawn while the kernel trains on this one into the other of two reused buffers, across steps
    when it is the only run) sees the batches the replayed stream gives, and trains as autograd
    does on them."""
    n, inst = 20, 30  # 30 x 1024 x 20 words > WORDS_PER_CALL
    monkeypatch.setattr(pipeline, "FUSED_BLOCK_WORDS", 4 * 1024 * n)  # blocks of 4 instances, then 2
    density = [[1.0] * n] * inst
    if sparse_half:
        density = [[1.0] * n] * (inst // 2) + [[0.005] * n] * (inst // 2)
    spec = Spec(
        model="relu_output",
        n=n,
        m=5,
        importance=[0.9**i for i in range(n)],
        density=density,
        train=TrainConfig(steps=12, batch_size=1024, lr=5e-3, log_every=4),
    )
    _assert_fast_path_equals_autograd_on_replay(spec)
