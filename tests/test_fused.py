"""The fused kernel (toymodel/_fused.c): loss and gradients equal to autograd's, for every model
kind, both input kinds (sampler words, given floats), odd batch sizes and thread splits; the words
it consumes are the ones the unfused sampler turns into inputs; and the fallback without it."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from toymodel import fused, impl_torch, impl_torch_plain, sparse_step
from toymodel.spec import Spec, TrainConfig

REQUIRED = bool(os.environ.get("CI"))  # CI machines have a C compiler: there the kernel must build
needs_kernel = pytest.mark.skipif(not fused.available() and not REQUIRED,
                                  reason=f"fused kernel: {fused.unavailable_reason()}")

MODELS = ["linear", "relu_output", "relu_hidden", "abs"]


def _x_from_words(words: np.ndarray, offset: torch.Tensor, slope: torch.Tensor, values: str) -> torch.Tensor:
    """What :func:`sparse_step.dense_into` makes of the same words."""
    out = torch.empty(words.shape)
    out.copy_(torch.from_numpy(words))
    torch.addcmul(offset, out, slope, out=out)
    return out.clamp_(min=0.0) if values == "uniform01" else out.masked_fill_(out >= 1.0, 0.0)


def _autograd(model: str, W: torch.Tensor, b: torch.Tensor, W2: torch.Tensor | None, x: torch.Tensor,
              imp: torch.Tensor, l1: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
    params = {"W": W.clone().requires_grad_(True), "b": b.clone().requires_grad_(True)}
    if W2 is not None:
        params["W2"] = W2.clone().requires_grad_(True)
    # the plain loop's loss is a mean over the rows given; rescale to a mean over ``batch``
    loss = impl_torch_plain.forward_loss(model, params, x, imp, l1) * (x.shape[1] / batch)
    loss.sum().backward()
    out = {f"g{k}": v.grad for k, v in params.items() if v.grad is not None}
    out["loss"] = loss.detach()
    return out


@needs_kernel
@pytest.mark.parametrize("values", ["uniform01", "uniform_pm1"])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("inst", "rows", "n", "m", "threads"),
                         [(3, 37, 7, 3, 1), (4, 64, 5, 2, 2), (2, 9, 1, 1, 1),
                          # n >= 8: whole 8x8 transposes plus a feature tail; several 64-sample
                          # blocks with a partial last sub-block; odd m for the 3-row tiles
                          (2, 150, 21, 5, 1), (1, 71, 16, 7, 2)])
def test_kernel_equals_autograd(model: str, values: str, inst: int, rows: int, n: int, m: int,
                                threads: int) -> None:
    rng = np.random.default_rng(inst * 100 + rows)
    gen = torch.Generator().manual_seed(rows)
    dens = rng.uniform(0.05, 1.0, (inst, n))
    offset, slope = sparse_step.dense_coefficients(dens, values)
    words = rng.integers(-(2**31), 2**31, (inst, rows, n), dtype=np.int64).astype(np.int32)
    x = _x_from_words(words, offset, slope, values)
    W = torch.randn(inst, m, n, generator=gen) * 0.5
    W2 = torch.randn(inst, n, m, generator=gen) * 0.5 if model == "abs" else None
    b = torch.randn(inst, n, generator=gen) * 0.2
    imp = torch.rand(inst, n, generator=gen)
    l1 = torch.rand(inst, generator=gen) * 0.05
    batch = rows + 5  # the mean's divisor may exceed the rows given (the sparse step's zero rows)
    want = _autograd(model, W, b, W2, x, imp, l1, batch)
    for kind in ("words", "x"):
        gW, gb = np.full((inst, m, n), np.nan, np.float32), np.full((inst, n), np.nan, np.float32)
        gW2 = np.full((inst, n, m), np.nan, np.float32) if W2 is not None else None
        loss = np.full(inst, np.nan, np.float32)
        src = {"words": words, "offset": offset[:, 0].contiguous().numpy(),
               "slope": slope[:, 0].contiguous().numpy()} if kind == "words" else {"x": x.numpy()}
        fused.step(model, values, batch, W.numpy(), None if W2 is None else W2.numpy(), b.numpy(),
                   imp.numpy(), l1.numpy(), gW, gW2, gb, loss, threads=threads, **src)
        np.testing.assert_allclose(loss, want["loss"].numpy(), rtol=1e-5, atol=1e-7, err_msg=kind)
        np.testing.assert_allclose(gW, want["gW"].numpy(), rtol=1e-4, atol=1e-6, err_msg=kind)
        np.testing.assert_allclose(gb, want["gb"].numpy(), rtol=1e-4, atol=1e-6, err_msg=kind)
        if gW2 is not None:
            np.testing.assert_allclose(gW2, want["gW2"].numpy(), rtol=1e-4, atol=1e-6, err_msg=kind)


@needs_kernel
def test_split_over_threads_is_bitwise_the_same() -> None:
    """Each instance is summed by one call in a fixed order: results do not depend on the split."""
    rng = np.random.default_rng(3)
    inst, rows, n, m = 16, 1024, 20, 5
    x = rng.random((inst, rows, n), dtype=np.float32)
    W = rng.standard_normal((inst, m, n)).astype(np.float32)
    b, imp = np.zeros((inst, n), np.float32), np.ones((inst, n), np.float32)
    outs = []
    for threads in (1, 2, 3):
        gW, gb, loss = np.empty_like(W), np.empty_like(b), np.empty(inst, np.float32)
        fused.step("relu_output", "uniform01", rows, W, None, b, imp, None, gW, None, gb, loss, x=x,
                   threads=threads)
        outs.append((gW, gb, loss))
    for other in outs[1:]:
        for a, c in zip(outs[0], other, strict=True):
            np.testing.assert_array_equal(a, c)


@needs_kernel
@pytest.mark.parametrize(("inst", "n"), [(40, 20), (3, 700)])
def test_instance_words_are_what_dense_into_consumes(inst: int, n: int) -> None:
    """For runs too large for one draw, the fused path reads the words the unfused sampler would,
    in the same order (so the two paths see the same inputs)."""
    batch = 1024 if n < 700 else 1023  # odd batch * n: the per-chunk draws drop a word each
    dens = np.full((inst, n), 0.3)
    offset, slope = sparse_step.dense_coefficients(dens, "uniform01")
    a, c = np.random.SFC64(5), np.random.SFC64(5)
    want = sparse_step.dense_into(torch.empty(inst, batch, n), offset, slope, a, "uniform01")
    got = _x_from_words(sparse_step.instance_words(c, inst, batch, n), offset, slope, "uniform01")
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert a.random_raw() == c.random_raw()  # and leave the stream at the same place


@needs_kernel
@pytest.mark.parametrize("count", [0, 1, 2, 3, 1001, 1 << 17])
def test_compiled_sfc64_is_numpys_stream(count: int) -> None:
    """The compiled SFC64 returns numpy's own outputs bit for bit, mid-stream and with a buffered
    32-bit half pending, and leaves the generator where numpy's random_raw would."""
    a, c = np.random.SFC64(11), np.random.SFC64(11)
    ga, gc = np.random.Generator(a), np.random.Generator(c)

    def halves(gen: np.random.Generator, k: int) -> list[int]:  # 32-bit draws: one half is buffered
        return gen.integers(0, 2**32, k, dtype=np.uint32).tolist()

    assert halves(ga, 3) == halves(gc, 3)
    got = fused.sfc64_raw(a, count)
    assert got is not None
    np.testing.assert_array_equal(got, c.random_raw(count))
    sa, sc = a.state, c.state
    np.testing.assert_array_equal(sa.pop("state")["state"], sc.pop("state")["state"])
    assert sa == sc  # the buffered half and its flag untouched
    assert halves(ga, 5) == halves(gc, 5)
    assert ga.random(4).tolist() == gc.random(4).tolist()
    assert fused.sfc64_raw(np.random.PCG64(1), 4) is None  # other generators: numpy's own path
    buf = np.full(count + 3, 7, np.uint64)  # into reused memory: the same values, the rest untouched
    np.testing.assert_array_equal(fused.sfc64_raw(a, count, buf), c.random_raw(count))
    assert buf[count:].tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match="uint64 vector"):
        fused.sfc64_raw(a, count + 4, buf)


@needs_kernel
def test_fit_uses_the_kernel_only_for_small_models_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    small = Spec(model="relu_output", n=20, m=5, importance=np.ones(20), density=[[1.0] * 20, [0.005] * 20],
                 train=TrainConfig(steps=60, batch_size=128, lr=1e-2, log_every=20))
    large = Spec(model="relu_output", n=1000, m=20, importance=np.ones(1000), density=[1.0] * 1000)
    assert impl_torch.use_fused_kernel(small) and not impl_torch.use_fused_kernel(large)
    with_kernel, _, curve_k = impl_torch.fit(small)
    monkeypatch.setattr(impl_torch, "use_fused_kernel", lambda spec: False)
    without, _, curve_u = impl_torch.fit(small)
    np.testing.assert_allclose(curve_k, curve_u, rtol=1e-4)
    torch.testing.assert_close(with_kernel.W, without.W, rtol=1e-3, atol=1e-4)


@needs_kernel
def test_fit_keeps_torch_ops_on_one_thread_and_restores_the_count() -> None:
    """While the kernel trains on its own threads, torch's ops run on one (its OpenMP workers
    would otherwise spin after each AdamW step and take a core from the kernel); the caller's
    thread count is restored afterwards."""
    spec = Spec(model="relu_output", n=20, m=5, importance=np.ones(20), density=[1.0] * 20,
                train=TrainConfig(steps=5, batch_size=64, log_every=5))
    before = torch.get_num_threads()
    seen: list[int] = []
    impl_torch.fit(spec, on_step=lambda t, p: seen.append(torch.get_num_threads()))
    assert seen == [1] * 5
    assert torch.get_num_threads() == before


@needs_kernel
def test_bad_arguments_are_named() -> None:
    W = np.zeros((2, 3, 4), np.float32)
    b = np.zeros((2, 4), np.float32)
    out = (W.copy(), None, b.copy(), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="needs words"):
        fused.step("linear", "uniform01", 8, W, None, b, b, None, *out)
    x = np.zeros((2, 8, 4), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        fused.step("linear", "uniform01", 8, W, None, b, b, None, *out, x=x)


@needs_kernel
def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOYMODEL_FUSED", "0")
    fused.library.cache_clear()
    try:
        assert not fused.available()
        assert "TOYMODEL_FUSED=0" in (fused.unavailable_reason() or "")
    finally:
        monkeypatch.delenv("TOYMODEL_FUSED")
        fused.library.cache_clear()
    assert fused.available()


def test_kernel_is_built_where_a_compiler_is() -> None:
    """Without the kernel the reference silently runs its slower unfused step: say why, and fail
    in CI (whose machines have a compiler) rather than skip."""
    if fused.available():
        return
    reason = fused.unavailable_reason()
    assert reason
    if REQUIRED:
        pytest.fail(f"the fused kernel did not build in CI: {reason}")
    pytest.skip(f"fused kernel unavailable: {reason}")


def test_a_failing_compiler_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("CC", "false")  # a "compiler" that fails
    monkeypatch.setenv("TOYMODEL_BUILD_DIR", str(tmp_path))
    fused.library.cache_clear()
    try:
        assert fused.library() is None
        reason = fused.unavailable_reason() or ""
        assert "could not build _fused.c" in reason and "false failed" in reason, reason
        spec = Spec(model="relu_output", n=4, m=2, importance=np.ones(4), density=[1.0] * 4,
                    train=TrainConfig(steps=5, batch_size=32))
        assert not impl_torch.use_fused_kernel(spec)
        impl_torch.fit(spec)  # the unfused step trains
    finally:
        monkeypatch.delenv("CC")
        monkeypatch.delenv("TOYMODEL_BUILD_DIR")
        fused.library.cache_clear()
