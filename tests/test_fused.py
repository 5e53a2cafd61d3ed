"""The fused kernel (toymodel/reference/kernel/_fused.c): loss and gradients equal to autograd's, for
every model kind, both input kinds (sampler words, given floats), odd batch sizes and thread splits,
built with each of gcc and clang and as the scalar path; the words it consumes are the ones the unfused
sampler turns into inputs; its build is keyed by compiler, version and flags, loaded only from a
folder of our own, and recorded in results; and the fallback without it.

In CI (``$CI`` set) a kernel or a compiler (gcc, clang) that is missing fails rather than skips;
the CI job without a C compiler sets ``TOYMODEL_EXPECT_UNFUSED=1``, which asserts the opposite:
no kernel, and training on the unfused path."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from toymodel import plain as torch_plain
from toymodel.numpy_impl import training as numpy_training
from toymodel.reference import dense, pipeline, training
from toymodel.reference.kernel import builder, fused
from toymodel.spec import Spec, TrainConfig
from toymodel.suite import cache, implementations

pytest_plugins = ["pytester"]

#: set by the CI job that has no C compiler: there the kernel must be absent
EXPECT_UNFUSED = os.environ.get("TOYMODEL_EXPECT_UNFUSED") == "1"
#: CI machines have C compilers (gcc and clang): there every build must succeed
REQUIRED = bool(os.environ.get("CI")) and not EXPECT_UNFUSED
needs_kernel = pytest.mark.skipif(
    not fused.available() and not REQUIRED, reason=f"fused kernel: {fused.unavailable_reason()}"
)

MODELS = ["linear", "relu_output", "relu_hidden", "abs"]
#: the builds every kernel test runs on: this process's own, one per compiler, and the scalar path
BUILDS = ["default", "gcc", "clang", "scalar"]


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fused-build")


@pytest.fixture(scope="session")
def builds(build_dir: Path) -> dict[str, builder.Kernel | str]:
    """Each build of :data:`BUILDS` but the default, or why it is missing."""
    out: dict[str, builder.Kernel | str] = {}
    for name in BUILDS[1:]:
        cc = None if name == "scalar" else name
        if cc is not None and shutil.which(cc) is None:
            out[name] = f"{cc} is not on PATH"
            continue
        try:
            out[name] = builder.build(cc, scalar=name == "scalar", build_dir=build_dir)
        except builder.BuildError as err:
            out[name] = str(err)
    return out


@pytest.fixture(params=BUILDS)
def kernel(request: pytest.FixtureRequest, builds: dict[str, builder.Kernel | str]) -> builder.Kernel | None:
    """A build of the kernel (None: this process's own, :func:`fused.library`)."""
    if request.param == "default":
        if not fused.available():
            _missing(f"fused kernel: {fused.unavailable_reason()}")
        return None
    got = builds[request.param]
    if isinstance(got, str):
        _missing(f"{request.param} build: {got}")
    assert isinstance(got, builder.Kernel)
    return got


def _missing(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def fresh_kernel() -> Iterator[None]:
    """Forget this process's kernel before and after the test (which changes the environment)."""
    build = fused.kernel
    build.cache_clear()
    yield
    build.cache_clear()


def _x_from_words(words: np.ndarray, offset: torch.Tensor, slope: torch.Tensor, values: str) -> torch.Tensor:
    """What :func:`dense.dense_into` makes of the same words."""
    out = torch.empty(words.shape)
    out.copy_(torch.from_numpy(words))
    torch.addcmul(offset, out, slope, out=out)
    return out.clamp_(min=0.0) if values == "uniform01" else out.masked_fill_(out >= 1.0, 0.0)


def _autograd(
    model: str,
    W: torch.Tensor,
    b: torch.Tensor,
    W2: torch.Tensor | None,
    x: torch.Tensor,
    imp: torch.Tensor,
    l1: torch.Tensor,
    batch: int,
) -> dict[str, torch.Tensor]:
    params = {"W": W.clone().requires_grad_(True), "b": b.clone().requires_grad_(True)}
    if W2 is not None:
        params["W2"] = W2.clone().requires_grad_(True)
    # the plain loop's loss is a mean over the rows given; rescale to a mean over ``batch``
    loss = torch_plain.forward_loss(model, params, x, imp, l1) * (x.shape[1] / batch)
    loss.sum().backward()
    out = {f"g{k}": v.grad for k, v in params.items() if v.grad is not None}
    out["loss"] = loss.detach()
    return out


@pytest.mark.parametrize("values", ["uniform01", "uniform_pm1"])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("inst", "rows", "n", "m", "threads"),
    [
        (3, 37, 7, 3, 1),
        (4, 64, 5, 2, 2),
        (2, 9, 1, 1, 1),
        # n >= 8: whole 8x8 transposes plus a feature tail; several 64-sample
        # blocks with a partial last sub-block; odd m for the 3-row tiles
        (2, 150, 21, 5, 1),
        (1, 71, 16, 7, 2),
    ],
)
def test_kernel_equals_autograd(
    kernel: builder.Kernel | None, model: str, values: str, inst: int, rows: int, n: int, m: int, threads: int
) -> None:
    rng = np.random.default_rng(inst * 100 + rows)
    gen = torch.Generator().manual_seed(rows)
    dens = rng.uniform(0.05, 1.0, (inst, n))
    offset, slope = dense.dense_coefficients(dens, values)
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
        src = (
            {
                "words": words,
                "offset": offset[:, 0].contiguous().numpy(),
                "slope": slope[:, 0].contiguous().numpy(),
            }
            if kind == "words"
            else {"x": x.numpy()}
        )
        fused.step(
            model,
            values,
            batch,
            W.numpy(),
            None if W2 is None else W2.numpy(),
            b.numpy(),
            imp.numpy(),
            l1.numpy(),
            gW,
            gW2,
            gb,
            loss,
            threads=threads,
            kernel=kernel,
            **src,
        )
        np.testing.assert_allclose(loss, want["loss"].numpy(), rtol=1e-5, atol=1e-7, err_msg=kind)
        np.testing.assert_allclose(gW, want["gW"].numpy(), rtol=1e-4, atol=1e-6, err_msg=kind)
        np.testing.assert_allclose(gb, want["gb"].numpy(), rtol=1e-4, atol=1e-6, err_msg=kind)
        if gW2 is not None:
            np.testing.assert_allclose(gW2, want["gW2"].numpy(), rtol=1e-4, atol=1e-6, err_msg=kind)


def test_split_over_threads_is_bitwise_the_same(kernel: builder.Kernel | None) -> None:
    """Each instance is summed by one call in a fixed order: results do not depend on the split."""
    rng = np.random.default_rng(3)
    inst, rows, n, m = 16, 1024, 20, 5
    x = rng.random((inst, rows, n), dtype=np.float32)
    W = rng.standard_normal((inst, m, n)).astype(np.float32)
    b, imp = np.zeros((inst, n), np.float32), np.ones((inst, n), np.float32)
    outs = []
    for threads in (1, 2, 3):
        gW, gb, loss = np.empty_like(W), np.empty_like(b), np.empty(inst, np.float32)
        fused.step(
            "relu_output",
            "uniform01",
            rows,
            W,
            None,
            b,
            imp,
            None,
            gW,
            None,
            gb,
            loss,
            x=x,
            threads=threads,
            kernel=kernel,
        )
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
    offset, slope = dense.dense_coefficients(dens, "uniform01")
    a, c = np.random.SFC64(5), np.random.SFC64(5)
    want = dense.dense_into(torch.empty(inst, batch, n), offset, slope, a, "uniform01")
    got = _x_from_words(dense.instance_words(c, inst, batch, n), offset, slope, "uniform01")
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
    np.testing.assert_array_equal(sa.pop("state")["state"], sc.pop("state")["state"])  # type: ignore[misc]
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
    small = Spec(
        model="relu_output",
        n=20,
        m=5,
        importance=np.ones(20),
        density=[[1.0] * 20, [0.005] * 20],
        train=TrainConfig(steps=60, batch_size=128, lr=1e-2, log_every=20),
    )
    large = Spec(model="relu_output", n=1000, m=20, importance=np.ones(1000), density=[1.0] * 1000)
    assert pipeline.use_fused_kernel(small) and not pipeline.use_fused_kernel(large)
    with_kernel, _, curve_k = training.fit(small)
    monkeypatch.setattr(pipeline, "use_fused_kernel", lambda spec: False)
    without, _, curve_u = training.fit(small)
    np.testing.assert_allclose(curve_k, curve_u, rtol=1e-4)
    torch.testing.assert_close(with_kernel.W, without.W, rtol=1e-3, atol=1e-4)


@needs_kernel
def test_fit_keeps_torch_ops_on_one_thread_and_restores_the_count() -> None:
    """While the kernel trains on its own threads, torch's ops run on one (its OpenMP workers
    would otherwise spin after each AdamW step and take a core from the kernel); the caller's
    thread count is restored afterwards."""
    spec = Spec(
        model="relu_output",
        n=20,
        m=5,
        importance=np.ones(20),
        density=[1.0] * 20,
        train=TrainConfig(steps=5, batch_size=64, log_every=5),
    )
    before = torch.get_num_threads()
    seen: list[int] = []
    training.fit(spec, on_step=lambda t, p: seen.append(torch.get_num_threads()))
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
def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch, fresh_kernel: None) -> None:
    monkeypatch.setenv("TOYMODEL_FUSED", "0")
    assert not fused.available()
    assert "TOYMODEL_FUSED=0" in (fused.unavailable_reason() or "")
    assert fused.build_info() == {
        "kernel": "unfused",
        "variant": None,
        "compiler": None,
        "compiler_version": None,
        "flags": None,
    }
    monkeypatch.delenv("TOYMODEL_FUSED")
    fused.kernel.cache_clear()
    assert fused.available()


@needs_kernel
def test_scalar_path_by_environment(
    monkeypatch: pytest.MonkeyPatch, fresh_kernel: None, build_dir: Path
) -> None:
    """``TOYMODEL_FUSED=scalar`` builds the plain-C path, which trains like the vector one."""
    spec = Spec(
        model="relu_hidden",
        n=12,
        m=3,
        importance=np.ones(12),
        density=[[1.0] * 12, [0.3] * 12],
        train=TrainConfig(steps=40, batch_size=64, lr=1e-2, log_every=20),
    )
    vector = training.fit(spec)
    monkeypatch.setenv("TOYMODEL_BUILD_DIR", str(build_dir))
    monkeypatch.setenv("TOYMODEL_FUSED", "scalar")
    fused.kernel.cache_clear()
    info = fused.build_info()
    assert info["variant"] == "scalar" and builder.SCALAR_MACRO in info["flags"], info
    scalar = training.fit(spec)
    np.testing.assert_allclose(scalar[2], vector[2], rtol=1e-4)
    torch.testing.assert_close(scalar[0].W, vector[0].W, rtol=1e-3, atol=1e-4)


def test_a_compiler_without_vector_extensions_trains_unfused(
    monkeypatch: pytest.MonkeyPatch, fresh_kernel: None, builds: dict[str, builder.Kernel | str]
) -> None:
    """A build that is only the scalar path (no faster than the unfused step) is not trained with
    unless asked for; its library still serves the SFC64 stream."""
    scalar = builds["scalar"]
    if isinstance(scalar, str):
        _missing(f"scalar build: {scalar}")
    monkeypatch.setattr(builder, "build", lambda *args, **kwargs: scalar)
    assert fused.library() is not None and not fused.available()
    assert "only the kernel's scalar path" in (fused.unavailable_reason() or "")
    assert fused.build_info()["kernel"] == "unfused"
    assert fused.sfc64_raw(np.random.SFC64(3), 5) is not None


def test_kernel_is_built_where_a_compiler_is() -> None:
    """Without the kernel the reference silently runs its slower unfused step: say why, and fail
    in CI (whose machines have a compiler) rather than skip."""
    if EXPECT_UNFUSED:
        pytest.skip("this machine has no C compiler on purpose (TOYMODEL_EXPECT_UNFUSED=1)")
    if fused.available():
        return
    reason = fused.unavailable_reason()
    assert reason
    if REQUIRED:
        pytest.fail(f"the fused kernel did not build in CI: {reason}")
    pytest.skip(f"fused kernel unavailable: {reason}")


def test_a_failing_compiler_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_kernel: None
) -> None:
    monkeypatch.setenv("CC", "false")  # a "compiler" that fails
    monkeypatch.setenv("TOYMODEL_BUILD_DIR", str(tmp_path))
    assert fused.library() is None
    reason = fused.unavailable_reason() or ""
    assert "could not build _fused.c" in reason and "false failed" in reason, reason
    assert "\n" not in reason
    spec = Spec(
        model="relu_output",
        n=4,
        m=2,
        importance=np.ones(4),
        density=[1.0] * 4,
        train=TrainConfig(steps=5, batch_size=32),
    )
    assert not pipeline.use_fused_kernel(spec)
    meta = implementations.run("torch", spec).meta  # the unfused step trains, and says so
    assert meta["training_path"] == "unfused" and meta["kernel"]["kernel"] == "unfused", meta


def test_without_a_compiler_training_takes_the_unfused_path(
    monkeypatch: pytest.MonkeyPatch, fresh_kernel: None
) -> None:
    """No compiler (``$CC`` names a missing program, as in the CI job without one): no kernel, a
    one-line reason, and results trained on the unfused path that say so."""
    if not EXPECT_UNFUSED:
        monkeypatch.setenv("CC", "/nonexistent/cc")
    assert not fused.available()
    reason = fused.unavailable_reason() or ""
    assert "no C compiler" in reason and "\n" not in reason, reason
    spec = Spec(
        model="relu_output",
        n=6,
        m=2,
        importance=np.ones(6),
        density=[1.0] * 6,
        train=TrainConfig(steps=5, batch_size=32),
    )
    meta = implementations.run("torch", spec).meta
    assert meta["training_path"] == "unfused" and not meta["fused_kernel"], meta
    assert meta["kernel"] == fused.build_info() and meta["kernel"]["kernel"] == "unfused"


@needs_kernel
def test_results_record_the_kernel_compiler_version_and_flags() -> None:
    """A result names its training path and the build behind it; the version is the compiler's own
    ``--version`` line."""
    spec = Spec(
        model="relu_output",
        n=6,
        m=2,
        importance=np.ones(6),
        density=[1.0] * 6,
        train=TrainConfig(steps=5, batch_size=32),
    )
    meta = implementations.run("torch", spec).meta
    info = meta["kernel"]
    assert meta["training_path"] == "fused" and info == fused.build_info(), meta
    assert info["kernel"] == "fused" and info["variant"].startswith("vector"), info
    assert "-O3" in info["flags"] and os.path.isabs(info["compiler"].split()[0]), info
    first = (
        subprocess.run([info["compiler"].split()[0], "--version"], capture_output=True, text=True, check=True)
        .stdout.splitlines()[0]
        .strip()
    )
    assert info["compiler_version"] == first


@needs_kernel
def test_build_is_keyed_by_compiler_version_and_flags(
    monkeypatch: pytest.MonkeyPatch, build_dir: Path, builds: dict[str, builder.Kernel | str]
) -> None:
    """Another compiler, another version of one, or other flags build another library."""
    paths = {name: k.path for name, k in builds.items() if isinstance(k, builder.Kernel)}
    assert len(set(paths.values())) == len(paths), paths
    default = builder.build(build_dir=build_dir)
    monkeypatch.setattr(builder, "_version", lambda cc: "cc (Imaginary) 99.1")
    upgraded = builder.build(build_dir=build_dir)
    assert upgraded.path != default.path and upgraded.compiler_version == "cc (Imaginary) 99.1"


def _stat_mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@needs_kernel
def test_loads_only_from_a_folder_of_its_own(tmp_path: Path) -> None:
    """A build folder that others can write into, a link, or a file is refused (a library planted
    there is never loaded): the kernel is built in a fresh private folder instead. A folder of
    ours that only we can write into is tightened to mode 0700 and used."""
    target_name = builder.build(build_dir=tmp_path / "ours").path.name
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    (open_dir / target_name).write_bytes(b"planted")  # would fail to load if it were tried
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "ours")
    a_file = tmp_path / "file"
    a_file.write_text("")
    for folder in (open_dir, link, a_file):
        k = builder.build(build_dir=folder)
        assert k.path.parent != folder and k.path.parent.resolve() != (tmp_path / "ours").resolve(), folder
        assert _stat_mode(k.path.parent) == 0o700 and k.path.parent.stat().st_uid == os.getuid()
    assert _stat_mode(open_dir) == 0o777  # refused, not "fixed"
    shared = tmp_path / "readable"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert builder.build(build_dir=shared).path.parent == shared and _stat_mode(shared) == 0o700
    fresh = tmp_path / "new" / "build"
    assert builder.build(build_dir=fresh).path.parent == fresh and _stat_mode(fresh) == 0o700
    if os.getuid() == 0:  # only root can give a folder away
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)
        assert builder.build(build_dir=theirs).path.parent != theirs


@needs_kernel
def test_the_cache_key_names_the_build(monkeypatch: pytest.MonkeyPatch, fresh_kernel: None) -> None:
    """A result cached from the kernel is not served for a run on the unfused path (or another
    build); implementations that do not use the kernel do not build it."""
    fused_key = cache.fingerprint(training.train)
    monkeypatch.setenv("TOYMODEL_FUSED", "0")
    fused.kernel.cache_clear()
    assert cache.fingerprint(training.train) != fused_key
    monkeypatch.setattr(fused, "kernel", lambda: pytest.fail("the numpy implementation built the kernel"))
    assert cache.fingerprint(numpy_training.train) == cache.fingerprint(numpy_training.train)


def test_a_missing_kernel_is_said_once_in_the_report_header(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fresh_kernel: None
) -> None:
    """One line, with the reason and the cost, at the start of a run of the reference; a run of
    another implementation neither says it nor builds the kernel."""
    pytester.makepyfile("def test_nothing():\n    pass\n")
    monkeypatch.setenv("CC", "/nonexistent/cc")
    out = pytester.runpytest("--impl", "torch", "-p", "no:cacheprovider").stdout.lines
    lines = [line for line in out if line.startswith("toymodel: fused kernel")]
    assert len(lines) == 1 and "no C compiler" in lines[0], out
    assert lines[0].endswith("training takes the unfused path, ~2-5x slower"), lines
    calls: list[int] = []
    monkeypatch.setattr(fused, "kernel", lambda: calls.append(1))
    out = pytester.runpytest("--impl", "numpy", "-p", "no:cacheprovider").stdout.lines
    assert not [line for line in out if line.startswith("toymodel: fused kernel")] and not calls, out
