"""The reference implementation: every instance trained as one batched torch program.

Why it is fast (see PERF-NOTES and ``benchmarks/``: ``pytest benchmarks --benchmark-only``
prints the ratios to the plain loop), and why it is still faithful:

- **A fused C kernel** (:mod:`toymodel.fused`, ``_fused.c``) for models with m * n <= 16384 on CPU:
  forward pass, loss and gradients in one pass over the batch, eight samples per vector, the inputs
  made from the sampler's 32-bit words on the fly, instances split over the torch thread count.
  Every step of the unfused path below streams (instances, batch, n) tensors through memory 15-20
  times; the kernel reads each sample once. Built on first use with the machine's C compiler (gcc
  or clang); without one (or with ``TOYMODEL_FUSED=0``) the unfused step runs. A result's
  ``meta`` records the path taken (``training_path``) and the build (``kernel``: compiler, version,
  flags). ``tests/test_fused.py`` and ``tests/test_impl_torch.py`` prove both equal to autograd.
- **Hand-derived gradients** (:func:`loss_and_grads`) instead of autograd, into reused buffers;
  ``tests/test_impl_torch.py`` proves them equal to autograd to float32 rounding for every model
  kind. Small batched products go through numpy's matmul (:func:`_bmm`), several times faster
  than ``torch.bmm`` at these skinny shapes.
- **torch's fused AdamW kernel** on a single flat parameter buffer (:class:`FlatAdamW`), one call
  per step; trajectories over hundreds of steps are tested equal to ``torch.optim.AdamW``.
- **Fresh samples from numpy's SFC64 stream** (:mod:`toymodel.sparse_step`): one 32-bit word per
  input element, turned into "0 with probability 1 - p, else U[0, 1]" by one multiply-add and a
  clamp; at density <= 0.02 only the non-zeros are drawn, only the samples with a non-zero
  feature are computed, and the all-zero samples enter in closed form (their output is act(b),
  their gradient only on b). Instances are split into runs by density so that the densest one
  does not set the cost of all. Both samplers are tested equal in distribution to the canonical
  numpy sampler, and the sparse step equal to the dense one (``tests/test_sparse_step.py``).
  Correlated / anticorrelated groups, CUDA and caller-supplied ``data`` use :func:`sample`.

Determinism: one numpy SFC64 stream per run, seeded from ``(spec.seed, "torch-train-sfc64")``
(torch Generator ``"torch-train"`` on the general path); the init is
:func:`toymodel.models.initial_weights` (shared with every implementation). The same spec gives
the same result on the same platform, thread count and torch/numpy versions. Matrix products may
differ in the last bits across thread counts and devices (blocking order), which is why the
regression baselines carry measured tolerances. The fused kernel's sums run in a fixed order
whatever the thread count; its last bits depend on the compiled code (FMA on CPUs with AVX2+FMA).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import fused, models, sparse_step
from .data import seed_sequence
from .spec import FeatureGroup, Spec

__all__ = ["FlatAdamW", "loss_and_grads", "lr_factor", "sample", "torch_threads", "train", "use_fused_kernel"]

Tensor = torch.Tensor
#: upper bound on the bytes of random numbers drawn in one call (several steps at once)
RANDOM_CHUNK_BYTES = 16 * 2**20
#: largest per-matrix product (multiply-adds) done by numpy's matmul rather than torch.bmm
NUMPY_MATMUL_MAX = 2**18


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning-rate multiplier at 0-based ``step`` of ``steps`` (official notebook's)."""
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - step / steps
    if schedule == "cosine":
        return 1.0 if steps == 1 else math.cos(0.5 * math.pi * step / (steps - 1))
    raise ValueError(f"unknown schedule {schedule!r}")


def torch_generator(spec: Spec, stream: str, device: torch.device) -> torch.Generator:
    """A generator for the named stream of the spec's seed."""
    seed = int(seed_sequence(spec.seed, stream).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
def sample(
    density: Tensor,
    batch: int,
    gen: torch.Generator,
    *,
    groups: tuple[FeatureGroup, ...] = (),
    values: str = "uniform01",
    steps: int = 1,
) -> Tensor:
    """``steps`` batches of inputs, (steps, instances, batch, n), float32.

    Independent uniform01 features use one uniform r per element: relu(1 - r/p) is 0 with
    probability 1 - p and otherwise U[0, 1]. Groups and U[-1, 1] values use a magnitude draw and
    an activity draw per element, as :func:`toymodel.data.sample`.
    """
    inst, n = density.shape
    shape = (steps, inst, batch, n)
    dev = density.device
    if not groups and values == "uniform01":
        r = torch.rand(shape, generator=gen, device=dev)
        inv_p = torch.where(density > 0, 1.0 / density.clamp_min(1e-30), torch.zeros_like(density))
        x = r.mul_(inv_p[:, None, :].neg()).add_(1.0).clamp_(min=0.0)
        if bool((density == 0).any()):
            x.mul_((density > 0)[:, None, :])
        return x
    mag = torch.rand(shape, generator=gen, device=dev)
    if values == "uniform_pm1":
        mag.mul_(2.0).sub_(1.0)
    active = torch.rand(shape, generator=gen, device=dev) < density[:, None, :]
    for g in groups:
        idx = torch.tensor(g.features, device=dev)
        lead = active[..., g.features[0]]
        if g.kind == "correlated":
            active[..., idx] = lead[..., None].expand(*lead.shape, len(g.features))
        else:
            pick = torch.randint(0, len(g.features), lead.shape, generator=gen, device=dev)
            onehot = pick[..., None] == torch.arange(len(g.features), device=dev)
            active[..., idx] = lead[..., None] & onehot
    return mag.mul_(active)


def batches(spec: Spec, density: Tensor, gen: torch.Generator) -> Iterator[Tensor]:
    """Fresh (instances, batch, n) batches forever, drawn several steps per random call."""
    per_step = 4 * spec.instances * spec.train.batch_size * spec.n
    chunk = int(max(1, min(64, RANDOM_CHUNK_BYTES // max(per_step, 1))))
    while True:
        block = sample(density, spec.train.batch_size, gen, groups=spec.groups,
                       values=str(spec.values), steps=chunk)
        yield from block


# ------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------
@dataclass
class Params:
    """Views into one flat buffer: W (I, m, n), b (I, n), and W2 (I, n, m) for ``abs``."""

    flat: Tensor
    W: Tensor
    b: Tensor
    W2: Tensor | None

    @classmethod
    def allocate(cls, model: str, inst: int, m: int, n: int, device: torch.device) -> Params:
        sizes = [inst * m * n, inst * n] + ([inst * n * m] if model == "abs" else [])
        flat = torch.zeros(sum(sizes), device=device)
        parts = flat.split(sizes)
        W2 = parts[2].view(inst, n, m) if model == "abs" else None
        return cls(flat, parts[0].view(inst, m, n), parts[1].view(inst, n), W2)

    def as_dict(self) -> dict[str, Tensor]:
        d = {"W": self.W, "b": self.b}
        if self.W2 is not None:
            d["W2"] = self.W2
        return d


def loss_and_grads(
    model: str,
    p: Params,
    g: Params,
    x: Tensor,
    importance: Tensor,
    hidden_l1: Tensor | None,
    *,
    fused_ok: bool = True,
    threads: int | None = None,
) -> Tensor:
    """Write d(loss)/d(params) into ``g`` and return the per-instance loss, (I,).

    loss_k = mean_b sum_i I_ki (y_kbi - y'_kbi)^2 + l1_k mean_b sum_j |h_kbj|, for the model
    kinds of :mod:`toymodel.models`. Instances are independent (the total is their sum).
    On CPU, models with m * n <= :data:`FUSED_MAX_MN` go through the fused kernel
    (:mod:`toymodel.fused`) unless ``fused_ok`` is false, on ``threads`` threads (default: torch's
    thread count); otherwise the unfused torch step.
    """
    inst, batch, n = x.shape
    if fused_ok and x.device.type == "cpu" and _fused_fits(p.W.shape[1], n):
        loss = torch.empty(inst)

        def arr(t: Tensor) -> np.ndarray:
            return t.detach().contiguous().numpy()

        fused.step(model, "uniform01", batch, arr(p.W), None if p.W2 is None else arr(p.W2), arr(p.b),
                   arr(importance), None if hidden_l1 is None else arr(hidden_l1), g.W.numpy(),
                   None if g.W2 is None else g.W2.numpy(), g.b.numpy(), loss.numpy(), x=arr(x),
                   threads=torch.get_num_threads() if threads is None else threads)
        return loss
    return _core(model, p.W, p.b, p.W2, g.W, g.b, g.W2, x, importance, hidden_l1, batch)


class Workspace:
    """Reusable scratch tensors by name (large temporaries would otherwise be fresh pages,
    page-faulted in again at every step)."""

    def __init__(self) -> None:
        self._bufs: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        numel = math.prod(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.numel() < numel or buf.device != like.device:
            buf = torch.empty(numel, dtype=like.dtype, device=like.device)
            self._bufs[name] = buf
        return buf[:numel].view(shape)


def _bmm(a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """out = a @ b, batched. Small products on CPU go through numpy's matmul (OpenBLAS, single
    threaded below ~2^18 multiply-adds per matrix): several times faster than ``torch.bmm`` for
    these skinny shapes (measured: benchmarks/, PERF-NOTES); zero-copy views. Larger ones use
    ``torch.bmm`` and torch's thread pool."""
    if out.device.type == "cpu" and a.shape[1] * a.shape[2] * b.shape[2] <= NUMPY_MATMUL_MAX:
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
    else:
        torch.bmm(a, b, out=out)
    return out


def _core(
    model: str,
    W: Tensor,
    b: Tensor,
    W2: Tensor | None,
    gW: Tensor,
    gb: Tensor,
    gW2: Tensor | None,
    x: Tensor,
    importance: Tensor,
    hidden_l1: Tensor | None,
    batch: int,
    ws: Workspace | None = None,
) -> Tensor:
    """:func:`loss_and_grads` on explicit tensors, for ``x`` holding R <= ``batch`` of the
    batch's samples (the mean is over ``batch``; the sparse step adds the rest in closed form)."""
    ws = ws or Workspace()
    inst, R, n = x.shape
    m = W.shape[1]
    pre = _bmm(x, W.transpose(1, 2), ws.get("pre", (inst, R, m), x))
    h = pre.relu() if model in ("relu_hidden", "abs") else pre
    dec = W if W2 is None else W2.transpose(1, 2)  # (I, m, n)
    z = _bmm(h, dec, ws.get("z", (inst, R, n), x)).add_(b[:, None, :])
    target = x.abs() if model == "abs" else x
    scale = importance[:, None, :] * (2.0 / batch)
    active = None if model == "linear" else torch.gt(z, 0.0, out=ws.get("act", (inst, R, n), x))
    resid = z.sub_(target) if model == "linear" else z.relu_().sub_(target)  # overwrites z
    gz = torch.mul(resid, scale, out=ws.get("gz", (inst, R, n), x))
    dot = ws.get("dot", (inst, 1, 1), x)
    loss = _bmm(gz.view(inst, 1, -1), resid.view(inst, -1, 1), dot).view(inst).mul(0.5)
    if active is not None:
        gz.mul_(active)
    torch.sum(gz, dim=1, out=gb)
    gh = ws.get("gh", (inst, R, m), x)
    if W2 is not None:
        assert gW2 is not None
        _bmm(gz.transpose(1, 2), h, gW2)
        _bmm(gz, W2, gh)
    else:
        _bmm(h.transpose(1, 2), gz, gW)  # decoder side of the tied weights
        _bmm(gz, W.transpose(1, 2), gh)
    if hidden_l1 is not None:
        loss += hidden_l1 * h.abs().sum(dim=(1, 2)) / batch
        gh.add_(torch.sign(h).mul_((hidden_l1 / batch)[:, None, None]))
    if model in ("relu_hidden", "abs"):
        gh.mul_(pre > 0)
    if W2 is not None:
        _bmm(gh.transpose(1, 2), x, gW)
    else:
        gW.add_(_bmm(gh.transpose(1, 2), x, ws.get("gWe", tuple(gW.shape), x)))  # encoder side
    return loss


# ------------------------------------------------------------------------------------------
# optimiser
# ------------------------------------------------------------------------------------------
class FlatAdamW:
    """``torch.optim.AdamW`` on one flat buffer: torch's fused AdamW kernel (the one behind
    ``AdamW(fused=True)``, one call per step) where available, else the same arithmetic in a
    handful of in-place ops (decoupled weight decay, bias corrections, eps outside the root)."""

    def __init__(self, param: Tensor, betas: tuple[float, float], eps: float, weight_decay: float):
        self.param = param
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0
        self._step = torch.zeros((), dtype=torch.float32, device=param.device)
        self._fused = hasattr(torch, "_fused_adamw_") and param.device.type in ("cpu", "cuda")
        self.denom = None if self._fused else torch.empty_like(param)

    def step(self, grad: Tensor, lr: float) -> None:
        self.t += 1
        if self._fused:
            self._step += 1
            torch._fused_adamw_([self.param], [grad], [self.exp_avg], [self.exp_avg_sq], [], [self._step],
                                lr=lr, beta1=self.beta1, beta2=self.beta2, weight_decay=self.weight_decay,
                                eps=self.eps, amsgrad=False, maximize=False)
            return
        assert self.denom is not None
        bc1 = 1.0 - self.beta1**self.t
        bc2_sqrt = math.sqrt(1.0 - self.beta2**self.t)
        self.param.mul_(1.0 - lr * self.weight_decay)
        self.exp_avg.lerp_(grad, 1.0 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
        torch.sqrt(self.exp_avg_sq, out=self.denom)
        self.denom.div_(bc2_sqrt).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, self.denom, value=-lr / bc1)


# ------------------------------------------------------------------------------------------
# the training loop
# ------------------------------------------------------------------------------------------
def _device(spec: Spec) -> torch.device:
    dev = torch.device(spec.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"spec.device={spec.device!r} but CUDA is not available here")
    return dev


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block, restored after."""
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count != before:
            torch.set_num_threads(before)


def fit(
    spec: Spec,
    data: Iterator[Tensor] | None = None,
    on_step: Callable[[int, Params], None] | None = None,
) -> tuple[Params, np.ndarray, np.ndarray]:
    """Train ``spec``; return final params, loss_steps and loss_curve (windows of log_every).

    ``data`` overrides the input stream (tests feed the same batches to other trainers);
    ``on_step(t, params)`` is called after each update (for trajectory checks and dynamics).
    """
    dev = _device(spec)
    tc = spec.train
    init = models.initial_weights(spec)
    p = Params.allocate(spec.model, spec.instances, spec.m, spec.n, dev)
    g = Params.allocate(spec.model, spec.instances, spec.m, spec.n, dev)
    with torch.inference_mode():
        for name, view in p.as_dict().items():
            view.copy_(torch.from_numpy(init[name]))
    importance = torch.tensor(spec.importance_array(per_instance=True), dtype=torch.float32, device=dev)
    dens_np = spec.density_array(per_instance=True)
    density = torch.tensor(dens_np, dtype=torch.float32, device=dev)
    l1 = spec.hidden_l1_array(per_instance=True)
    hidden_l1 = torch.tensor(l1, dtype=torch.float32, device=dev) if np.any(l1 > 0) else None
    opt = FlatAdamW(p.flat, tc.betas, tc.eps, tc.weight_decay)
    threads = torch.get_num_threads()
    # The fused kernel runs on threads of its own; torch's OpenMP workers, once woken by a parallel
    # op (AdamW), spin for a while after it and take a core from the kernel (n=100, m=20, 20
    # instances: 15.0 -> 10.6 ms per step with them quiet). So torch ops use one thread meanwhile.
    op_threads = 1 if dev.type == "cpu" and use_fused_kernel(spec) else threads
    if data is not None or spec.groups or dev.type != "cpu":
        if data is None:
            data = batches(spec, density, torch_generator(spec, "torch-train", dev))
        stream = data

        def step() -> Tensor:
            return loss_and_grads(spec.model, p, g, next(stream), importance, hidden_l1, threads=threads)
    else:
        step = _fast_step(spec, dens_np, p, g, importance, hidden_l1, threads)

    windows = math.ceil(tc.steps / tc.log_every)
    curve = torch.zeros(windows, spec.instances, dtype=torch.float64, device=dev)
    acc = torch.zeros(spec.instances, dtype=torch.float64, device=dev)
    steps_out = np.minimum((np.arange(windows) + 1) * tc.log_every, tc.steps)
    with torch.inference_mode(), torch_threads(op_threads):
        for t in range(tc.steps):
            acc += step()
            opt.step(g.flat, tc.lr * lr_factor(tc.schedule, t, tc.steps))
            if on_step is not None:
                on_step(t, p)
            if (t + 1) % tc.log_every == 0 or t + 1 == tc.steps:
                k = t // tc.log_every
                span = t + 1 - k * tc.log_every
                curve[k] = acc / span
                acc.zero_()
    return p, steps_out, curve.T.cpu().numpy()


#: largest m * n trained by the fused kernel (:mod:`toymodel.fused`): its per-instance gradient
#: accumulators (32 m n bytes) must stay in L2. Measured at 1 thread (kernel alone, x given): 1.7 ns
#: per (hidden, feature, 8 samples) at n=400, m=30, where the unfused step's BLAS products run slower
FUSED_MAX_MN = 16384
#: words drawn per block of a dense run on the fused path: the whole run when it fits (one kernel
#: call per step; the compiled SFC64 makes the draw cheap). Blocks of 2^19 words (two instances at
#: n=400) cost 72 ms per step at n=400, m=30, 20 instances against 46 ms for one block (2 threads).
FUSED_BLOCK_WORDS = 2**23


def _fused_fits(m: int, n: int) -> bool:
    return m * n <= FUSED_MAX_MN and fused.available()


def use_fused_kernel(spec: Spec) -> bool:
    """Whether ``spec`` trains on CPU with the fused kernel (small models, kernel built)."""
    return _fused_fits(spec.m, spec.n)


@dataclass
class _Run:
    """One contiguous run of instances of the fast step: parameter/gradient views and sampler."""

    sl: slice
    views: tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor, Tensor | None]
    hidden_l1: Tensor | None
    importance: Tensor
    draws: sparse_step.Draws | None = None  # sparse runs
    buf: Tensor | None = None  # dense runs: the batch, refilled in place
    coef: tuple[Tensor, Tensor] | None = None


def _fast_step(spec: Spec, density: np.ndarray, p: Params, g: Params, importance: Tensor,
               hidden_l1: Tensor | None, threads: int) -> Callable[[], Tensor]:
    """The CPU step with fresh samples from one numpy SFC64 stream: the instances split into
    runs (:func:`sparse_step.plan`), each sampled densely or sparsely and trained as one batch."""
    B, values, model = spec.train.batch_size, str(spec.values), spec.model
    bits = np.random.SFC64(seed_sequence(spec.seed, "torch-train-sfc64"))
    rng = np.random.Generator(bits)
    use_fused = use_fused_kernel(spec)
    runs: list[_Run] = []
    for grp in sparse_step.plan(density, B, sparse_ok=True):
        sl = slice(grp.start, grp.stop)
        run = _Run(sl, (p.W[sl], p.b[sl], None if p.W2 is None else p.W2[sl],
                        g.W[sl], g.b[sl], None if g.W2 is None else g.W2[sl]),
                   None if hidden_l1 is None else hidden_l1[sl], importance[sl])
        if grp.sparse:
            run.draws = sparse_step.Draws(density[sl], B, rng, values)
        else:
            run.coef = sparse_step.dense_coefficients(density[sl], values)
            run.buf = None if use_fused else torch.empty(grp.stop - grp.start, B, spec.n)
        runs.append(run)
    loss = torch.zeros(spec.instances)
    ws = Workspace()

    def fused_core(run: _Run, lo: int, hi: int, *, words: np.ndarray | None = None,
                   x: np.ndarray | None = None) -> None:
        """Instances lo:hi of ``run`` through the fused kernel; their loss into ``loss``."""
        def arr(t: Tensor | None) -> np.ndarray | None:
            return None if t is None else t[lo:hi].numpy()

        W, b, W2, gW, gb, gW2 = (arr(v) for v in run.views)
        assert W is not None
        assert b is not None
        assert gW is not None
        assert gb is not None
        offset, slope = (arr(c[:, 0]) for c in run.coef) if run.coef is not None else (None, None)
        fused.step(model, values, B, W, W2, b, run.importance[lo:hi].numpy(), arr(run.hidden_l1), gW, gW2, gb,
                   loss[run.sl][lo:hi].numpy(), words=words, offset=offset, slope=slope, x=x, threads=threads)

    def blocks_of(run: _Run) -> list[tuple[int, int]]:
        """A dense run's blocks of instances (<= FUSED_BLOCK_WORDS words, or one instance per
        thread), each drawn as one piece and trained with one kernel call."""
        inst = run.sl.stop - run.sl.start
        if inst * B * spec.n <= FUSED_BLOCK_WORDS:
            return [(0, inst)]
        per = max(threads, FUSED_BLOCK_WORDS // (B * spec.n))
        return [(lo, min(inst, lo + per)) for lo in range(0, inst, per)]

    # Two word buffers per dense run, used in turn: at most two blocks' words are alive (the one
    # the kernel trains on and the next one), and reused memory spares the fresh pages of a new
    # array per draw (8k page faults a step at n=400, 20 instances).
    blocks = {id(run): blocks_of(run) for run in runs if run.draws is None}
    most = {key: max(hi - lo for lo, hi in order) * B * spec.n for key, order in blocks.items() if use_fused}
    spare = {key: [np.empty((words + 1) // 2, np.uint64) for _ in range(2)] for key, words in most.items()}
    drawn = dict.fromkeys(spare, 0)

    def draw(run: _Run, lo: int, hi: int) -> np.ndarray:
        """Block lo:hi's words, as :func:`sparse_step.dense_into` would draw them, in its order."""
        count = (hi - lo) * B * spec.n
        out = spare[id(run)][drawn[id(run)] % 2]
        drawn[id(run)] += 1
        if (lo, hi) == (0, run.sl.stop - run.sl.start) and count <= sparse_step.WORDS_PER_CALL:
            return sparse_step.words(bits, count, out).reshape(hi - lo, B, spec.n)
        return sparse_step.instance_words(bits, hi - lo, B, spec.n, out)

    # The inputs do not depend on the parameters, so the next block's words are drawn while the
    # kernel trains on this one (numpy's generator and the kernel run side by side). Across steps
    # only when one run draws from the stream (else another run's draws come in between).
    across_steps = len(runs) == 1
    pending: dict[int, np.ndarray] = {}

    def fused_dense(run: _Run) -> Tensor:
        order = blocks[id(run)]
        for k, (lo, hi) in enumerate(order):
            words = pending.pop(id(run), None)
            if words is None:
                words = draw(run, lo, hi)
            # side by side only when more than one thread is allowed (same draws either way)
            job = fused.submit(fused_core, run, lo, hi, words=words) if threads > 1 else None
            if job is None:
                fused_core(run, lo, hi, words=words)
            if k + 1 < len(order) or across_steps:
                pending[id(run)] = draw(run, *order[(k + 1) % len(order)])
            if job is not None:
                job.result()
        return loss[run.sl]

    def step() -> Tensor:
        for run in runs:
            W, b, W2, gW, gb, gW2 = run.views
            if run.draws is None and use_fused:
                part = fused_dense(run)
            elif run.draws is None:
                assert run.buf is not None
                assert run.coef is not None
                x = sparse_step.dense_into(run.buf, *run.coef, bits, values)
                part = _core(model, W, b, W2, gW, gb, gW2, x, run.importance, run.hidden_l1, B, ws)
            else:
                xs, R = run.draws.next()
                if use_fused:
                    fused_core(run, 0, run.sl.stop - run.sl.start, x=xs.numpy())
                    part = loss[run.sl]
                else:
                    part = _core(model, W, b, W2, gW, gb, gW2, xs, run.importance, run.hidden_l1, B, ws)
                part += sparse_step.zero_rows_loss_and_grad(model, b, run.importance, B - R, B, gb)
            if len(runs) == 1:
                return part
            loss[run.sl] = part
        return loss

    return step


def train(spec: Spec) -> dict[str, Any]:
    """The reference implementation (``--impl torch``): the result fields of
    :func:`toymodel.result.validate` (the suite scores the held-out loss itself)."""
    start = time.perf_counter()
    p, steps, curve = fit(spec)
    params = {k: v.detach().cpu().double().numpy().copy() for k, v in p.as_dict().items()}
    wall = time.perf_counter() - start
    return dict(
        W=params["W"],
        b=params["b"],
        W2=params.get("W2"),
        loss_steps=steps.astype(np.float64),
        loss_curve=curve,
        meta={
            "torch": torch.__version__,
            "numpy": np.__version__,
            "threads": torch.get_num_threads(),
            "device": spec.device,
            "fused_kernel": spec.device == "cpu" and use_fused_kernel(spec),
            # the training path and the build behind its last bits (kernel, compiler, version, flags)
            "training_path": "fused" if spec.device == "cpu" and use_fused_kernel(spec) else "unfused",
            "kernel": fused.build_info(),
            "train_seconds": wall,
            "steps_per_second": spec.train.steps / wall,
        },
    )
