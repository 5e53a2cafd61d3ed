"""An independent numpy implementation: hand-derived gradients and its own AdamW, no torch.

It trains every instance of a spec (settings x restarts, setting-major) as one batched program
in float32, with the semantics the reference implementation has (CLAIMS.md, Conventions):

- init from :func:`toymodel.models.initial_weights` on its own stream ``(seed, "numpy-init", k)``
  (not the reference's: the two are independent samples at one seed); fresh data every step through
  :class:`Sampler` (equal in distribution to :func:`toymodel.data.sample`, one uniform per entry),
  shard k of the instances (below) drawing from the stream ``(seed, "numpy-train", k)``;
- the loss of :func:`toymodel.models.loss` per instance (with the hidden L1 term), instances
  summed, so each instance's gradient is its own;
- AdamW with ``torch.optim.AdamW`` semantics on all parameters, the learning rate scaled by the
  spec's schedule;
- the loss curve is the mean training-minibatch loss (before each step's update) over windows of
  ``log_every`` steps; the held-out loss is the suite's to compute (:func:`toymodel.result.validate`).

Parameters and gradients each live in one flat buffer (``Trainer.theta``, ``Trainer.grad``) with
per-weight views, so the optimiser is a handful of vector operations per step.

The instances are split into shards of at most :data:`SHARD_ENTRIES` batch entries (instances x n
x batch, at least one instance), each with its own sampler, random stream and work buffers: a
shard's batch is drawn and trained on while it is still in cache, and ``threads`` worker threads
share the shards (numpy releases the GIL in its loops and in BLAS, which runs on one thread
meanwhile). At n=400, m=30, 20 instances one step took 144 ms as one block and 53 ms in 20 shards
on 2 threads (2026-11-30, 2 cores). The shards depend on the spec only, so results are
deterministic for a given seed, platform and BLAS whatever the thread count; float32 sums may
differ across BLAS builds.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .data import seed_sequence
from .models import initial_weights
from .spec import FeatureGroup, Spec

#: the init stream of this implementation (the reference's is "init")
INIT_STREAM = "numpy-init"

__all__ = ["SHARD_ENTRIES", "AdamW", "Sampler", "Trainer", "default_threads", "lr_factor", "shard_bounds",
           "train"]

_WEIGHT_SHAPES = {"W": ("m", "n"), "b": ("n",), "W2": ("n", "m")}

#: Batch entries (instances x n x batch) per shard: 1 MiB of float32 per work buffer, so a shard's
#: half-dozen buffers stay in this machine's L2/L3. Measured (2026-11-30, 2 threads, ms per step):
#: n=60, m=10, 160 instances: 67 in shards of 4 instances (2^18 entries), 74 in shards of 8, 84 in
#: shards of 16, 142 as one block; n=400, m=30: 53 with one instance per shard, 74 with two.
#: Changing it changes the shards' random streams, hence every numpy result.
SHARD_ENTRIES = 2**18


def shard_bounds(instances: int, entries_per_instance: int,
                 limit: int | None = None) -> list[tuple[int, int]]:
    """Contiguous instance ranges [start, stop) with at most ``limit`` (default
    :data:`SHARD_ENTRIES`) entries each, and at least one instance; the last may be shorter."""
    if limit is None:
        limit = SHARD_ENTRIES
    if instances < 1 or entries_per_instance < 1 or limit < 1:
        raise ValueError(f"shard_bounds needs positive sizes, got instances={instances}, "
                         f"entries_per_instance={entries_per_instance}, limit={limit}")
    per = max(1, limit // entries_per_instance)
    return [(a, min(a + per, instances)) for a in range(0, instances, per)]


def default_threads() -> int:
    """Worker threads: ``$OMP_NUM_THREADS`` when set, else the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}") from None
        if value < 1:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}")
        return value
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """Learning-rate multiplier at 0-based ``step`` of ``steps``.

    Deliberately written again rather than imported from :mod:`toymodel.reference.optimiser`: this
    implementation shares no training code with the reference, so the claims cross-check both."""
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - step / steps
    if schedule == "cosine":
        return 1.0 if steps == 1 else math.cos(0.5 * math.pi * step / (steps - 1))
    raise ValueError(f"unknown schedule {schedule!r}")


class Sampler:
    """Batches with the distribution of :func:`toymodel.data.sample`, one uniform per entry.

    For a feature of density p and u ~ U[0, 1), ``v = 1 - u / p`` is positive with probability
    p and then uniform on (0, 1]: ``max(v, 0)`` is "0 with probability 1 - p, else U[0, 1]".
    Correlated group: the first member's v sets the shared mask (and its value), the other
    members' uniforms are their values. Anticorrelated group: the first member's v sets whether
    the group fires and the value, the second member's uniform picks the carrier.
    ``uniform_pm1`` maps an active value a to 2a - 1. In float32, u is a multiple of 2^-24, so
    values at density p take about p * 2^24 distinct levels (16 000 at p = 0.001).

    Batches are feature-major, (instances, n, batch): the layout :class:`Trainer` works in.
    """

    def __init__(self, density: np.ndarray, batch: int, rng: np.random.Generator, *,
                 groups: Sequence[FeatureGroup] = (), values: str = "uniform01",
                 dtype: type[np.floating] = np.float32) -> None:
        density = np.asarray(density, dtype=np.float64)
        if density.ndim != 2:
            raise ValueError(f"density must be (instances, n), got shape {density.shape}")
        if values not in ("uniform01", "uniform_pm1"):
            raise ValueError(f"values must be 'uniform01' or 'uniform_pm1', got {values!r}")
        inst, n = density.shape
        self.rng, self.groups, self.pm1 = rng, tuple(groups), values == "uniform_pm1"
        # -1/p; a zero density gets a finite stand-in and is masked explicitly (u = 0 can occur)
        self._neg_inv = (-1.0 / np.maximum(density, 1e-30)).astype(dtype)[:, :, None]
        self._never = [(int(i), int(f)) for i, f in np.argwhere(density == 0.0)]
        self.u = np.empty((inst, n, batch), dtype=dtype)
        self.x = np.empty_like(self.u)
        self._zeros = np.zeros_like(self.u)
        self._mask = np.empty(self.u.shape, dtype=bool)

    def draw(self) -> np.ndarray:
        """A fresh (instances, n, batch) batch; the buffer is overwritten by the next call."""
        u, x = self.u, self.x
        self.rng.random(out=u, dtype=u.dtype)
        np.multiply(u, self._neg_inv, out=x)
        x += 1.0
        for g in self.groups:  # before the ReLU: a lead's v > 0 is its group's activity
            self._group(g)
        if self.pm1:
            np.greater(x, 0.0, out=self._mask)
            x *= 2.0
            x -= 1.0
            x *= self._mask
        else:
            np.maximum(x, self._zeros, out=x)  # an array operand is ~3x faster than a scalar here
        for i, f in self._never:
            x[i, f] = 0.0
        return x

    def _group(self, g: FeatureGroup) -> None:
        u, x = self.u, self.x
        lead, rest = g.features[0], list(g.features[1:])
        if g.kind == "correlated":
            # the others: their own uniform where the group is active, else 0 (i.e. <= 0 pre-ReLU)
            x[:, rest] = np.where(x[:, lead:lead + 1] > 0.0, u[:, rest], 0.0)
        else:
            k = len(g.features)
            pick = np.minimum((u[:, rest[0]] * k).astype(np.intp), k - 1)
            v = x[:, lead].copy()
            for j, f in enumerate(g.features):
                x[:, f] = np.where(pick == j, v, 0.0)


class Trainer:
    """Loss and hand-derived gradients of a batch of toy models, in preallocated buffers.

    Batches are feature-major, x (I, n, batch) (``data.sample(...).transpose(0, 2, 1)``).
    ``theta`` and ``grad`` are flat vectors; ``params`` and ``grads`` are views of them with the
    shapes of :mod:`toymodel.models` (W (I, m, n), b (I, n), W2 (I, n, m)). ``shards`` are
    contiguous instance ranges (default: all instances in one), each computed with work buffers of
    its own, so that shards can run on different threads (:meth:`shard_loss_and_grads`).
    """

    def __init__(self, model: str, params: Mapping[str, np.ndarray], importance: np.ndarray,
                 hidden_l1: np.ndarray | None, batch: int, dtype: type[np.floating] = np.float32, *,
                 shards: Sequence[tuple[int, int]] | None = None) -> None:
        if model not in ("linear", "relu_output", "relu_hidden", "abs"):
            raise ValueError(f"unknown model kind {model!r}")
        names = ("W", "b", "W2") if model == "abs" else ("W", "b")
        inst, m, n = np.shape(params["W"])
        dims = {"m": m, "n": n}
        shapes = {k: (inst, *(dims[d] for d in _WEIGHT_SHAPES[k])) for k in names}
        sizes = [math.prod(s) for s in shapes.values()]
        self.model, self.batch = model, batch
        self.theta = np.empty(sum(sizes), dtype=dtype)
        self.grad = np.zeros_like(self.theta)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        start = 0
        for k, size in zip(names, sizes, strict=True):
            self.params[k] = self.theta[start:start + size].reshape(shapes[k])
            self.grads[k] = self.grad[start:start + size].reshape(shapes[k])
            self.params[k][...] = params[k]
            start += size
        bounds = [(0, inst)] if shards is None else [(int(a), int(b)) for a, b in shards]
        starts, stops = [a for a, _ in bounds], [b for _, b in bounds]
        if not bounds or starts != [0, *stops[:-1]] or stops[-1] != inst or any(a >= b for a, b in bounds):
            raise ValueError(f"shards must be contiguous non-empty ranges covering 0..{inst}, got {shards!r}")
        self.shards = tuple(bounds)
        imp = np.asarray(importance, dtype=np.float64)
        l1 = np.zeros(inst) if hidden_l1 is None else np.asarray(hidden_l1, dtype=np.float64)
        self._kernels = [
            _Shard(model, {k: v[a:b] for k, v in self.params.items()},
                   {k: v[a:b] for k, v in self.grads.items()}, imp[a:b], l1[a:b], batch, dtype)
            for a, b in self.shards]

    def loss_and_grads(self, x: np.ndarray) -> np.ndarray:
        """Per-instance loss (float64, (I,)) of the batch x (I, n, batch); fills ``grad``."""
        return np.concatenate([self.shard_loss_and_grads(k, x[a:b])
                               for k, (a, b) in enumerate(self.shards)])

    def shard_loss_and_grads(self, k: int, x: np.ndarray) -> np.ndarray:
        """Loss (float64) of shard k's instances on their batch x (its instances, n, batch); fills
        their part of ``grad``. Shards touch disjoint buffers, so they may run concurrently."""
        return self._kernels[k].loss_and_grads(x)


class _Shard:
    """One shard's forward and backward pass, writing into views of the trainer's buffers."""

    def __init__(self, model: str, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                 importance: np.ndarray, l1: np.ndarray, batch: int, dtype: type[np.floating]) -> None:
        inst, m, n = params["W"].shape
        self.model, self.params, self.grads = model, params, grads
        self._imp = importance / batch                                   # loss weights, (I, n)
        self._coef = (2.0 * importance / batch).astype(dtype)[:, :, None]  # dloss/dout per unit error
        self._l1 = l1 / batch if np.any(l1 > 0) else None
        self._l1_grad = (l1 / batch).astype(dtype)[:, None, None]
        self.h = np.empty((inst, m, batch), dtype=dtype)
        self.dh = np.empty_like(self.h)
        self.out = np.empty((inst, n, batch), dtype=dtype)
        self.err = np.empty_like(self.out)
        self._sq = np.empty_like(self.out)
        self._zeros = np.zeros((inst, max(m, n), batch), dtype=dtype)
        self._rowsum = np.empty((inst, n), dtype=dtype)
        self._gw = np.empty((inst, m, n), dtype=dtype)
        self._hmask = np.empty(self.h.shape, dtype=bool)
        self._omask = np.empty(self.out.shape, dtype=bool)

    def loss_and_grads(self, x: np.ndarray) -> np.ndarray:
        """Per-instance loss (float64) of the shard's batch x; fills the shard's gradients."""
        p, g = self.params, self.grads
        W, b = p["W"], p["b"]
        h, dh, out, err = self.h, self.dh, self.out, self.err
        relu_h = self.model in ("relu_hidden", "abs")
        np.matmul(W, x, out=h)
        if relu_h:
            np.maximum(h, self._zeros[:, : h.shape[1]], out=h)
        dec = p["W2"] if self.model == "abs" else W.transpose(0, 2, 1)  # (I, n, m)
        np.matmul(dec, h, out=out)
        out += b[:, :, None]
        if self.model != "linear":
            np.maximum(out, self._zeros[:, : out.shape[1]], out=out)
        if self.model == "abs":
            np.abs(x, out=err)
            np.subtract(out, err, out=err)
        else:
            np.subtract(out, x, out=err)
        np.multiply(err, err, out=self._sq)
        np.sum(self._sq, axis=-1, out=self._rowsum)
        loss = np.einsum("in,in->i", self._rowsum, self._imp)
        # err becomes G = dloss/d(output pre-activation)
        err *= self._coef
        if self.model != "linear":
            np.greater(out, 0.0, out=self._omask)
            err *= self._omask
        np.sum(err, axis=-1, out=g["b"])
        if self.model == "abs":
            np.matmul(err, h.transpose(0, 2, 1), out=g["W2"])
            np.matmul(p["W2"].transpose(0, 2, 1), err, out=dh)
        else:
            np.matmul(h, err.transpose(0, 2, 1), out=g["W"])  # the decoder's share of dW
            np.matmul(W, err, out=dh)
        if self._l1 is not None:
            loss += self._l1 * np.abs(h).sum(axis=(1, 2), dtype=np.float64)
            if relu_h:
                dh += self._l1_grad  # d|h| = 1 where h > 0; the ReLU mask below zeroes the rest
            else:
                dh += self._l1_grad * np.sign(h)
        if relu_h:
            np.greater(h, 0.0, out=self._hmask)
            dh *= self._hmask
        if self.model == "abs":
            np.matmul(dh, x.transpose(0, 2, 1), out=g["W"])
        else:
            np.matmul(dh, x.transpose(0, 2, 1), out=self._gw)
            g["W"] += self._gw
        return loss


class AdamW:
    """``torch.optim.AdamW`` on one flat parameter vector (weight decay on every entry)."""

    def __init__(self, size: int, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, dtype: type[np.floating] = np.float32) -> None:
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.t = 0
        self.m = np.zeros(size, dtype=dtype)
        self.v = np.zeros(size, dtype=dtype)
        self._tmp = np.empty(size, dtype=dtype)

    def update(self, theta: np.ndarray, grad: np.ndarray, lr: float) -> None:
        """One step in place: decay, moments, bias-corrected update at learning rate ``lr``."""
        self.t += 1
        b1, b2, tmp = self.beta1, self.beta2, self._tmp
        if self.weight_decay:
            theta *= 1.0 - lr * self.weight_decay
        self.m *= b1
        np.multiply(grad, 1.0 - b1, out=tmp)
        self.m += tmp
        self.v *= b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        self.v += tmp
        np.sqrt(self.v, out=tmp)
        tmp *= 1.0 / math.sqrt(1.0 - b2 ** self.t)
        tmp += self.eps
        np.divide(self.m, tmp, out=tmp)
        tmp *= lr / (1.0 - b1 ** self.t)
        theta -= tmp


def train(spec: Spec, *, threads: int | None = None) -> dict[str, Any]:
    """Train every instance of ``spec`` on ``threads`` worker threads (default
    :func:`default_threads`; the result does not depend on it); see the module docstring."""
    start = time.perf_counter()
    cfg = spec.train
    steps, every = cfg.steps, cfg.log_every
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    bounds = shard_bounds(spec.instances, spec.n * cfg.batch_size)
    density = spec.density_array(per_instance=True)
    samplers = [
        Sampler(density[a:b], cfg.batch_size,
                np.random.Generator(np.random.PCG64(seed_sequence(spec.seed, "numpy-train", k))),
                groups=spec.groups, values=str(spec.values))
        for k, (a, b) in enumerate(bounds)]
    trainer = Trainer(spec.model, initial_weights(spec, INIT_STREAM),
                      spec.importance_array(per_instance=True), spec.hidden_l1_array(per_instance=True),
                      cfg.batch_size, shards=bounds)
    opt = AdamW(trainer.theta.size, cfg.betas, cfg.eps, cfg.weight_decay)
    n_log = -(-steps // every)
    loss_steps = np.minimum(np.arange(1, n_log + 1) * every, steps)
    curve = np.zeros((spec.instances, n_log))
    workers = min(threads, len(bounds))
    # worker w always takes shards w, w + workers, ...: one task per worker and step
    groups = [list(range(w, len(bounds), workers)) for w in range(workers)]
    losses = np.zeros(spec.instances)

    def work(shards: list[int]) -> None:
        for k in shards:
            a, b = bounds[k]
            losses[a:b] = trainer.shard_loss_and_grads(k, samplers[k].draw())

    # BLAS on one thread: the parallelism is the shards'; the caller's thread takes group 0
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max(workers - 1, 1)) as pool:
        for t in range(steps):
            pending = [pool.submit(work, g) for g in groups[1:]]
            work(groups[0])
            for job in pending:
                job.result()
            curve[:, t // every] += losses
            opt.update(trainer.theta, trainer.grad, cfg.lr * lr_factor(cfg.schedule, t, steps))
    curve /= np.diff(loss_steps, prepend=0)
    final = {k: v.astype(np.float64) for k, v in trainer.params.items()}
    train_s = max(time.perf_counter() - start, 1e-9)
    meta = {"numpy": np.__version__, "dtype": "float32", "sampler": "Sampler (one uniform per entry)",
            "train_seconds": train_s, "wall_seconds": time.perf_counter() - start,
            "steps_per_second": steps / train_s, "threads": workers, "shards": len(bounds),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    return {"W": final["W"], "b": final["b"], "W2": final.get("W2"),
            "loss_steps": loss_steps.astype(np.float64), "loss_curve": curve, "meta": meta}
