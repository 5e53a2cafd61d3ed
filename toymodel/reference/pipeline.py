"""The reference's fast step on CPU: fresh samples from one numpy SFC64 stream, the instances
split into runs (:func:`plan`), each sampled densely (:mod:`toymodel.reference.dense`) or sparsely
(:mod:`toymodel.reference.sparse`) and trained as one batch, through the fused kernel
(:mod:`toymodel.reference.kernel.fused`) where it fits, else the unfused torch step.

:func:`plan` splits the instances into contiguous runs trained as one batch each, sparse or dense
by density, so that the densest instance does not set the cost of every other one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..data import seed_sequence
from ..spec import Spec
from . import dense, sparse
from .gradients import Params, Workspace, fused_fits, unfused_loss_and_grads
from .kernel import fused

__all__ = ["FUSED_BLOCK_WORDS", "SPARSE_MAX_DENSITY", "Group", "fast_step", "plan", "use_fused_kernel"]

Tensor = torch.Tensor
#: instances whose densest feature is at most this are sampled sparsely
SPARSE_MAX_DENSITY = 0.02


@dataclass(frozen=True)
class Group:
    """Instances ``start:stop`` (contiguous), trained together; ``sparse`` picks the sampler."""

    start: int
    stop: int
    sparse: bool


def plan(density: np.ndarray, batch: int, sparse_ok: bool) -> list[Group]:
    """Contiguous runs of instances with the same sampler and (for sparse runs) a similar
    expected number of non-zero samples (within a factor ~1.4), so padding stays small."""
    dens = np.asarray(density, dtype=np.float64)
    keys: list[tuple[bool, int]] = []
    for row in dens:
        sparse = sparse_ok and float(row.max()) <= SPARSE_MAX_DENSITY
        if sparse:
            active = -math.expm1(float(np.log1p(-row).sum())) if row.max() < 1 else 1.0
            keys.append((True, math.floor(2 * math.log2(1.0 + active * batch))))
        else:
            keys.append((False, 0))
    groups: list[Group] = []
    start = 0
    for k in range(1, len(keys) + 1):
        if k == len(keys) or keys[k] != keys[start]:
            groups.append(Group(start, k, keys[start][0]))
            start = k
    return groups


#: words drawn per block of a dense run on the fused path: the whole run when it fits (one kernel
#: call per step; the compiled SFC64 makes the draw cheap). Blocks of 2^19 words (two instances at
#: n=400) cost 72 ms per step at n=400, m=30, 20 instances against 46 ms for one block (2 threads).
FUSED_BLOCK_WORDS = 2**23


def use_fused_kernel(spec: Spec) -> bool:
    """Whether ``spec`` trains on CPU with the fused kernel (small models, kernel built)."""
    return fused_fits(spec.m, spec.n)


@dataclass
class _Run:
    """One contiguous run of instances of the fast step: parameter/gradient views and sampler."""

    sl: slice
    views: tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor, Tensor | None]
    hidden_l1: Tensor | None
    importance: Tensor
    draws: sparse.Draws | None = None  # sparse runs
    buf: Tensor | None = None  # dense runs: the batch, refilled in place
    coef: tuple[Tensor, Tensor] | None = None


def fast_step(
    spec: Spec,
    density: np.ndarray,
    p: Params,
    g: Params,
    importance: Tensor,
    hidden_l1: Tensor | None,
    threads: int,
) -> Callable[[], Tensor]:
    """The CPU step with fresh samples from one numpy SFC64 stream: the instances split into
    runs (:func:`plan`), each sampled densely or sparsely and trained as one batch."""
    B, values, model = spec.train.batch_size, str(spec.values), spec.model
    bits = np.random.SFC64(seed_sequence(spec.seed, "torch-train-sfc64"))
    rng = np.random.Generator(bits)
    use_fused = use_fused_kernel(spec)
    runs: list[_Run] = []
    for grp in plan(density, B, sparse_ok=True):
        sl = slice(grp.start, grp.stop)
        run = _Run(
            sl,
            (
                p.W[sl],
                p.b[sl],
                None if p.W2 is None else p.W2[sl],
                g.W[sl],
                g.b[sl],
                None if g.W2 is None else g.W2[sl],
            ),
            None if hidden_l1 is None else hidden_l1[sl],
            importance[sl],
        )
        if grp.sparse:
            run.draws = sparse.Draws(density[sl], B, rng, values)
        else:
            run.coef = dense.dense_coefficients(density[sl], values)
            run.buf = None if use_fused else torch.empty(grp.stop - grp.start, B, spec.n)
        runs.append(run)
    loss = torch.zeros(spec.instances)
    ws = Workspace()

    def fused_core(
        run: _Run, lo: int, hi: int, *, words: np.ndarray | None = None, x: np.ndarray | None = None
    ) -> None:
        """Instances lo:hi of ``run`` through the fused kernel; their loss into ``loss``."""

        def arr(t: Tensor | None) -> np.ndarray | None:
            return None if t is None else t[lo:hi].numpy()

        W, b, W2, gW, gb, gW2 = (arr(v) for v in run.views)
        assert W is not None
        assert b is not None
        assert gW is not None
        assert gb is not None
        offset, slope = (arr(c[:, 0]) for c in run.coef) if run.coef is not None else (None, None)
        fused.step(
            model,
            values,
            B,
            W,
            W2,
            b,
            run.importance[lo:hi].numpy(),
            arr(run.hidden_l1),
            gW,
            gW2,
            gb,
            loss[run.sl][lo:hi].numpy(),
            words=words,
            offset=offset,
            slope=slope,
            x=x,
            threads=threads,
        )

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
        """Block lo:hi's words, as :func:`~toymodel.reference.dense.dense_into` draws them, in its order."""
        count = (hi - lo) * B * spec.n
        out = spare[id(run)][drawn[id(run)] % 2]
        drawn[id(run)] += 1
        if (lo, hi) == (0, run.sl.stop - run.sl.start) and count <= dense.WORDS_PER_CALL:
            return dense.words(bits, count, out).reshape(hi - lo, B, spec.n)
        return dense.instance_words(bits, hi - lo, B, spec.n, out)

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
                x = dense.dense_into(run.buf, *run.coef, bits, values)
                part = unfused_loss_and_grads(
                    model, W, b, W2, gW, gb, gW2, x, run.importance, run.hidden_l1, B, ws
                )
            else:
                xs, R = run.draws.next()
                if use_fused:
                    fused_core(run, 0, run.sl.stop - run.sl.start, x=xs.numpy())
                    part = loss[run.sl]
                else:
                    part = unfused_loss_and_grads(
                        model, W, b, W2, gW, gb, gW2, xs, run.importance, run.hidden_l1, B, ws
                    )
                part += sparse.zero_rows_loss_and_grad(model, b, run.importance, B - R, B, gb)
            if len(runs) == 1:
                return part
            loss[run.sl] = part
        return loss

    return step
