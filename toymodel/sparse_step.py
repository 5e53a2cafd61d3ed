"""Fast exact samplers for the reference implementation's training loop, and its instance plan.

Two samplers of independent features ("0 with probability 1 - p, else a value"), both drawn
from one numpy ``SFC64`` stream (numpy's fastest bit generator, ~3x ``torch.rand`` here; its raw
words come from :func:`toymodel.fused.sfc64_raw` where the C library is built, the same stream
~3x faster again):

- :func:`dense_into` fills a preallocated (instances, batch, n) tensor from raw 32-bit words
  with one fused multiply-add and one clamp: with r = w·2⁻³² + ½ uniform on [0, 1),
  ``relu(1 - r/p)`` is 0 with probability 1 - p and otherwise U[0, 1] (``uniform01``), and
  ``2r/p - 1`` kept where it is < 1 is U[-1, 1] on the active ones (``uniform_pm1``).
- :func:`sparse_rows` draws only the non-zeros (geometric gaps between successes of a
  Bernoulli(q) process, thinned by p/q where densities differ) and returns only the samples
  that have a non-zero feature, packed as (instances, R, n). The other B - R samples of every
  instance are all-zero inputs, whose loss and gradient have a closed form
  (:func:`zero_rows_loss_and_grad`): output act(b), target 0, gradient only on b.

:func:`plan` splits the instances into contiguous runs trained as one batch each, sparse or
dense by density, so that the densest instance does not set the cost of every other one.
``tests/test_sparse_step.py`` checks both samplers against the canonical numpy sampler in
distribution and the sparse step's gradients against the dense step's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import fused

__all__ = [
    "SPARSE_MAX_DENSITY",
    "Draws",
    "Group",
    "dense_coefficients",
    "dense_into",
    "instance_words",
    "plan",
    "sparse_rows",
    "words",
    "zero_rows_loss_and_grad",
]

Tensor = torch.Tensor
#: instances whose densest feature is at most this are sampled sparsely
SPARSE_MAX_DENSITY = 0.02
#: most 32-bit words drawn per numpy call (keeps the temporary off fresh mmap'd pages)
WORDS_PER_CALL = 2**19


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


# ------------------------------------------------------------------------------------------
# dense
# ------------------------------------------------------------------------------------------
def dense_coefficients(density: np.ndarray, values: str) -> tuple[Tensor, Tensor]:
    """(offset, slope), each (instances, 1, n): x = offset + slope·w for a signed 32-bit word w."""
    p = np.asarray(density, dtype=np.float64)
    safe = np.where(p > 0, p, 1.0)
    if values == "uniform01":  # relu(1 - r/p), r = w/2^32 + 1/2
        offset = np.where(p > 0, 1.0 - 0.5 / safe, -1.0)
        slope = np.where(p > 0, -(2.0**-32) / safe, 0.0)
    elif values == "uniform_pm1":  # 2r/p - 1, zeroed where >= 1 (i.e. r >= p)
        offset = np.where(p > 0, 1.0 / safe - 1.0, 1.0)
        slope = np.where(p > 0, 2.0**-31 / safe, 0.0)
    else:
        raise ValueError(f"unknown values {values!r}")
    as_t = lambda a: torch.tensor(a, dtype=torch.float32)[:, None, :]  # noqa: E731
    return as_t(offset), as_t(slope)


def words(bits: np.random.SFC64, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """The next ``count`` 32-bit words of the stream as int32 (two per 64-bit output); written
    into ``out`` (uint64, >= (count + 1) // 2 values) where given and the compiled generator is."""
    raw = fused.sfc64_raw(bits, (count + 1) // 2, out)
    if raw is None:
        raw = bits.random_raw((count + 1) // 2)
    return raw.view(np.int32)[:count]


def instance_words(bits: np.random.SFC64, inst: int, batch: int, n: int,
                   out: np.ndarray | None = None) -> np.ndarray:
    """(inst, batch, n) words for whole instances, consumed from the stream exactly as
    :func:`dense_into` consumes them for a run of more than WORDS_PER_CALL words (per instance, in
    chunks of rows); one call when that is the same sequence (chunks of an even number of words),
    written into ``out`` as :func:`words` does."""
    rows = max(1, WORDS_PER_CALL // max(n, 1))
    if batch <= rows and (batch * n) % 2 == 0:
        return words(bits, inst * batch * n, out).reshape(inst, batch, n)
    chunks = [(min(batch, r0 + rows) - r0) * n for r0 in range(0, batch, rows)]
    parts = [words(bits, count) for _ in range(inst) for count in chunks]
    return np.concatenate(parts).reshape(inst, batch, n)


def _words(bits: np.random.SFC64, count: int) -> Tensor:
    return torch.from_numpy(words(bits, count))


def dense_into(out: Tensor, offset: Tensor, slope: Tensor, bits: np.random.SFC64, values: str) -> Tensor:
    """Fill ``out`` (instances, batch, n) with fresh inputs; offset/slope from
    :func:`dense_coefficients` for the same instances."""
    inst, batch, n = out.shape
    rows = max(1, WORDS_PER_CALL // max(n, 1))
    for k in range(inst) if inst * batch * n > WORDS_PER_CALL else [None]:
        sl = slice(None) if k is None else slice(k, k + 1)
        o, s = offset[sl], slope[sl]
        view = out[sl]
        k_inst = view.shape[0]
        steps = range(0, batch, rows) if k is not None else [0]
        for r0 in steps:
            r1 = batch if k is None else min(batch, r0 + rows)
            dst = view[:, r0:r1]
            w = _words(bits, k_inst * (r1 - r0) * n).view(k_inst, r1 - r0, n)
            dst.copy_(w)  # int32 -> float32, exact below 2^24 in magnitude, then rounded
            torch.addcmul(o, dst, s, out=dst)
            if values == "uniform01":
                dst.clamp_(min=0.0)
            else:
                dst.masked_fill_(dst >= 1.0, 0.0)
    return out


# ------------------------------------------------------------------------------------------
# sparse
# ------------------------------------------------------------------------------------------
def _successes(rng: np.random.Generator, total: int, q: float) -> np.ndarray:
    """Sorted indices of the successes of ``total`` independent Bernoulli(q) trials."""
    mean = total * q
    pos = np.cumsum(rng.geometric(q, int(mean + 6.0 * math.sqrt(mean) + 16))) - 1
    while pos[-1] < total:  # rare: extend with more gaps
        pos = np.concatenate([pos, pos[-1] + np.cumsum(rng.geometric(q, int(mean * 0.1) + 16))])
    return pos[: np.searchsorted(pos, total)]


def sparse_rows(density: np.ndarray, batch: int, rng: np.random.Generator,
                values: str = "uniform01") -> tuple[np.ndarray, int]:
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


def zero_rows_loss_and_grad(model: str, b: Tensor, importance: Tensor, zeros: int, batch: int,
                            grad_b: Tensor) -> Tensor:
    """Add the ``zeros`` all-zero samples' share to ``grad_b`` and return their loss, (I,).

    For x = 0 the hidden layer is 0 for every model kind, the output is act(b) and the target
    is 0, so the loss is zeros/B · Σ_i I_i act(b_i)² and only b receives gradient.
    """
    out = b if model == "linear" else b.relu()
    weighted = out * importance
    if zeros:
        grad_b.add_(weighted, alpha=2.0 * zeros / batch)
    return (weighted * out).sum(1).mul_(zeros / batch)
