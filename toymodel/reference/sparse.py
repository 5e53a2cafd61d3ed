"""The fast sparse sampler of the reference's training loop, and the closed form of the samples
it leaves out.

:func:`sparse_rows` draws only the non-zeros of a batch of independent features (geometric gaps
between successes of a Bernoulli(q) process, thinned by p/q where densities differ) and returns
only the samples that have a non-zero feature, packed as (instances, R, n); :class:`Draws` draws
them several steps per numpy call. The other B - R samples of every instance are all-zero inputs,
whose loss and gradient have a closed form (:func:`zero_rows_loss_and_grad`): output act(b),
target 0, gradient only on b. ``tests/test_sparse_step.py`` checks the sampler against the
canonical numpy sampler in distribution and the sparse step's gradients against the dense step's.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["Draws", "sparse_rows", "zero_rows_loss_and_grad"]

Tensor = torch.Tensor


def _successes(rng: np.random.Generator, total: int, q: float) -> np.ndarray:
    """Sorted indices of the successes of ``total`` independent Bernoulli(q) trials."""
    mean = total * q
    pos = np.cumsum(rng.geometric(q, int(mean + 6.0 * math.sqrt(mean) + 16))) - 1
    while pos[-1] < total:  # rare: extend with more gaps
        pos = np.concatenate([pos, pos[-1] + np.cumsum(rng.geometric(q, int(mean * 0.1) + 16))])
    return pos[: np.searchsorted(pos, total)]


def sparse_rows(
    density: np.ndarray, batch: int, rng: np.random.Generator, values: str = "uniform01"
) -> tuple[np.ndarray, int]:
    """One batch of independent features for each instance, only its non-zero samples.

    Returns (x, R): x is (instances, R, n) float32, instance k's non-zero samples first (in
    batch order), then all-zero padding up to R = the largest count; the other ``batch - R``
    samples of every instance are all zero. Exactly the distribution of :func:`toymodel.data.sample`.
    """
    dens = np.asarray(density, dtype=np.float64)
    inst, n = dens.shape
    q = float(dens.max())
    if q <= 0.0:
        return np.zeros((inst, 0, n), np.float32), 0
    pos = _successes(rng, inst * batch * n, q)
    feat = pos % n
    if not np.all(dens == q):  # thinning: keep a candidate with probability p/q
        keep = rng.random(pos.size) * q < dens[pos // (batch * n), feat]
        pos, feat = pos[keep], feat[keep]
    vals = rng.random(pos.size, dtype=np.float32)
    if values == "uniform_pm1":
        vals = vals * np.float32(2.0) - np.float32(1.0)
    elif values != "uniform01":
        raise ValueError(f"unknown values {values!r}")
    row = pos // n  # global sample index, instance-major, sorted
    new = np.empty(row.size, dtype=bool)
    new[:1] = True
    np.not_equal(row[1:], row[:-1], out=new[1:])
    uniq = row[new]
    which = np.cumsum(new) - 1  # index into uniq of each non-zero
    owner = uniq // batch
    counts = np.bincount(owner, minlength=inst)
    R = int(counts.max()) if counts.size else 0
    slot = np.arange(uniq.size) - (np.cumsum(counts) - counts)[owner]
    x = np.zeros((inst, R, n), np.float32)
    x[owner[which], slot[which], feat] = vals
    return x, R


class Draws:
    """Sparse batches for a run of instances, drawn several steps per numpy call (the calls
    cost more than the arithmetic at small sizes); each step's batch is (instances, R, n)."""

    #: expected non-zeros drawn per call
    NONZEROS_PER_CALL = 20_000

    def __init__(self, density: np.ndarray, batch: int, rng: np.random.Generator, values: str):
        self.density, self.batch, self.rng, self.values = density, batch, rng, values
        expect = float(density.sum()) * batch
        self.steps = int(max(1, min(32, self.NONZEROS_PER_CALL // max(expect, 1.0))))
        self.queue: list[Tensor] = []
        self.R = 0

    def next(self) -> tuple[Tensor, int]:
        if not self.queue:
            dens = np.tile(self.density, (self.steps, 1))
            x, self.R = sparse_rows(dens, self.batch, self.rng, self.values)
            self.queue = list(torch.from_numpy(x).split(self.density.shape[0]))[::-1]
        return self.queue.pop(), self.R


def zero_rows_loss_and_grad(
    model: str, b: Tensor, importance: Tensor, zeros: int, batch: int, grad_b: Tensor
) -> Tensor:
    """Add the ``zeros`` all-zero samples' share to ``grad_b`` and return their loss, (I,).

    For x = 0 the hidden layer is 0 for every model kind, the output is act(b) and the target
    is 0, so the loss is zeros/B · Σ_i I_i act(b_i)² and only b receives gradient.
    """
    out = b if model == "linear" else b.relu()
    weighted = out * importance
    if zeros:
        grad_b.add_(weighted, alpha=2.0 * zeros / batch)
    return (weighted * out).sum(1).mul_(zeros / batch)
