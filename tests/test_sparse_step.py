"""The fast samplers equal the canonical numpy sampler in distribution, and the sparse step
(non-zero samples densely, all-zero samples in closed form) equals the dense step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare, ks_2samp

from toymodel import models
from toymodel.data import sample as np_sample
from toymodel.reference import dense, gradients, pipeline, sparse, training
from toymodel.spec import Spec, TrainConfig

MODELS = ["linear", "relu_output", "relu_hidden", "abs"]


def _dense_from_sparse(xs: np.ndarray, batch: int) -> np.ndarray:
    x = np.zeros((xs.shape[0], batch, xs.shape[2]), np.float32)
    x[:, : xs.shape[1]] = xs
    return x


@pytest.mark.parametrize("model", MODELS)
def test_sparse_step_equals_dense_step(model: str) -> None:
    """Loss and every gradient of the packed sparse batch + closed-form zero samples equal the
    dense step on the same batch (R < B, padding rows, an instance with no non-zero at all)."""
    inst, B, n, m = 4, 256, 12, 4
    values = "uniform_pm1" if model == "abs" else "uniform01"
    dens = np.array([[0.01] * n, [0.02] * n, [0.004] * n, [0.0] * n])
    xs, R = sparse.sparse_rows(dens, B, np.random.default_rng(0), values)
    assert 0 < R < B
    x = torch.from_numpy(_dense_from_sparse(xs, B))
    spec = Spec(model=model, n=n, m=m, importance=[0.9**i for i in range(n)], density=dens)  # type: ignore[arg-type]
    cpu = torch.device("cpu")
    p = gradients.Params.allocate(model, inst, m, n, cpu)
    p.flat.copy_(torch.randn(p.flat.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    g_dense, g_sparse = (gradients.Params.allocate(model, inst, m, n, cpu) for _ in range(2))
    imp = torch.tensor(spec.importance_array(per_instance=True), dtype=torch.float32)
    l1 = torch.tensor([0.01, 0.0, 0.02, 0.03])
    loss_dense = gradients.loss_and_grads(model, p, g_dense, x, imp, l1)
    loss_sparse = gradients.unfused_loss_and_grads(
        model, p.W, p.b, p.W2, g_sparse.W, g_sparse.b, g_sparse.W2, torch.from_numpy(xs), imp, l1, B
    )
    loss_sparse += sparse.zero_rows_loss_and_grad(model, p.b, imp, B - R, B, g_sparse.b)
    torch.testing.assert_close(loss_sparse, loss_dense, rtol=1e-4, atol=1e-6)
    for name, view in g_sparse.as_dict().items():
        torch.testing.assert_close(view, g_dense.as_dict()[name], rtol=1e-4, atol=1e-6, msg=name)


DENS = np.array([[0.001, 0.003, 0.01, 0.02, 0.0], [0.02, 0.02, 0.02, 0.02, 0.02]])


@pytest.mark.parametrize("values", ["uniform01", "uniform_pm1"])
def test_sparse_sampler_matches_numpy_sampler(values: str) -> None:
    """Per-feature activity within a 5-sigma binomial bound (thinned and unthinned instances),
    values by a KS test against the canonical sampler, and samples independent of each other:
    the number of non-zeros per sample follows the binomial law (chi-square)."""
    B = 400_000
    xs, R = sparse.sparse_rows(DENS, B, np.random.default_rng(3), values)
    x = _dense_from_sparse(xs, B)
    ref = np_sample(DENS, B, np.random.default_rng(3), values=values)
    for k, row in enumerate(DENS):
        for i, p in enumerate(row):
            rate = float((x[k, :, i] != 0).mean())
            assert abs(rate - p) <= 5 * np.sqrt(p * (1 - p) / B) + 1e-12, (k, i, rate, p)
        a, b = x[k][x[k] != 0], ref[k][ref[k] != 0]
        assert ks_2samp(a, b).pvalue > 1e-4
    lo, hi = (0.0, 1.0) if values == "uniform01" else (-1.0, 1.0)
    assert x.min() >= lo
    assert x.max() <= hi
    # instance 1: 5 features at 0.02 -> non-zeros per sample ~ Binomial(5, 0.02)
    counts = np.bincount((x[1] != 0).sum(1), minlength=6)[:3]
    from scipy.stats import binom

    expect = binom.pmf(np.arange(3), 5, 0.02) * B
    obs = np.append(counts, B - counts.sum())
    exp = np.append(expect, B - expect.sum())
    assert chisquare(obs, exp).pvalue > 1e-4
    # packing: every instance's non-zero samples come first, in order, then zero padding
    nz = (xs != 0).any(axis=2)
    for k in range(len(DENS)):
        c = int(nz[k].sum())
        assert nz[k, :c].all()
        assert not nz[k, c:].any()
    assert nz.sum(axis=1).max() == R


@pytest.mark.parametrize("values", ["uniform01", "uniform_pm1"])
def test_dense_sampler_matches_numpy_sampler(values: str) -> None:
    """Activity within 5 sigma, values by KS against the canonical sampler, range respected."""
    dens = np.array([[0.003, 0.05, 0.3, 0.9, 1.0, 0.0]])
    B = 200_000
    offset, slope = dense.dense_coefficients(dens, values)
    out = torch.empty(1, B, dens.shape[1])
    x = dense.dense_into(out, offset, slope, np.random.SFC64(1), values).numpy()
    ref = np_sample(dens, B, np.random.default_rng(1), values=values)
    for i, p in enumerate(dens[0]):
        rate = float((x[0, :, i] != 0).mean())
        assert abs(rate - p) <= 5 * np.sqrt(p * (1 - p) / B) + 1e-12, (i, rate, p)
        if p >= 0.05:
            a, b = x[0, :, i], ref[0, :, i]
            assert ks_2samp(a[a != 0], b[b != 0]).pvalue > 1e-4, i
    lo, hi = (0.0, 1.0) if values == "uniform01" else (-1.0, 1.0)
    assert x.min() >= lo
    assert x.max() <= hi
    # neighbouring features and samples are uncorrelated (one 32-bit word each)
    full = x[0, :, 4]
    assert abs(np.corrcoef(full[:-1], full[1:])[0, 1]) < 5 / np.sqrt(B)
    assert abs(np.corrcoef(x[0, :, 3], x[0, :, 4])[0, 1]) < 5 / np.sqrt(B)


def test_dense_sampler_chunked_equals_distribution() -> None:
    """Large blocks are drawn in several numpy calls; the result is still fresh and uniform."""
    out = torch.empty(3, 2048, 400)
    offset, slope = dense.dense_coefficients(np.full((3, 400), 1.0), "uniform01")
    x = dense.dense_into(out, offset, slope, np.random.SFC64(2), "uniform01")
    assert abs(float(x.mean()) - 0.5) < 5 * np.sqrt(1 / 12 / x.numel())
    assert not torch.equal(x[0, :1024], x[0, 1024:])
    assert not torch.equal(x[0], x[1])


def test_plan_groups_by_density() -> None:
    dens = np.array([[1.0] * 4, [0.1] * 4, [0.001] * 4, [0.001] * 4, [0.0011] * 4, [0.01] * 4, [1.0] * 4])
    groups = pipeline.plan(dens, 1024, sparse_ok=True)
    assert [(g.start, g.stop, g.sparse) for g in groups] == [
        (0, 2, False),
        (2, 5, True),
        (5, 6, True),
        (6, 7, False),
    ]
    assert all(not g.sparse for g in pipeline.plan(dens, 1024, sparse_ok=False))


@pytest.mark.parametrize("model", ["relu_output", "abs"])
def test_mixed_density_run_learns_like_plain(model: str) -> None:
    """A run whose instances go through dense and sparse groups ends at the same held-out loss
    as the plain loop (different random streams, so compared in distribution, not bitwise)."""
    from toymodel import plain as torch_plain

    n = 8
    spec = Spec(
        model=model,  # type: ignore[arg-type]
        n=n,
        m=3,
        importance=[0.9**i for i in range(n)],
        density=[[1.0] * n, [0.3] * n, [0.01] * n, [0.003] * n],
        restarts=5,
        seed=1,
        train=TrainConfig(steps=300, batch_size=512, lr=1e-2, log_every=100),
    )

    def weights(raw: dict) -> dict:
        return {k: raw[k] for k in ("W", "b", "W2") if raw.get(k) is not None}

    fast, plain = (
        np.median(models.eval_loss(spec, weights(impl.train(spec))).reshape(4, 5), axis=1)
        for impl in (training, torch_plain)
    )
    np.testing.assert_allclose(fast, plain, rtol=0.1)


def test_fast_run_is_deterministic() -> None:
    n = 6
    spec = Spec(
        model="relu_output",
        n=n,
        m=2,
        importance=[1.0] * n,
        density=[[1.0] * n, [0.005] * n],
        seed=2,
        train=TrainConfig(steps=30, batch_size=128, lr=1e-2, log_every=10),
    )
    a, b = training.train(spec), training.train(spec)
    np.testing.assert_array_equal(a["W"], b["W"])
    np.testing.assert_array_equal(a["loss_curve"], b["loss_curve"])
