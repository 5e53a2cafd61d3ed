"""The fast dense sampler of the reference's training loop: inputs made from the raw 32-bit words
of one numpy ``SFC64`` stream (numpy's fastest bit generator, ~3x ``torch.rand`` here; its raw
words come from :func:`toymodel.reference.kernel.fused.sfc64_raw` where the C library is built, the
same stream ~3x faster again).

:func:`dense_into` fills a preallocated (instances, batch, n) tensor from the words with one fused
multiply-add and one clamp: with r = w·2⁻³² + ½ uniform on [0, 1), ``relu(1 - r/p)`` is 0 with
probability 1 - p and otherwise U[0, 1] (``uniform01``), and ``2r/p - 1`` kept where it is < 1 is
U[-1, 1] on the active ones (``uniform_pm1``). The fused kernel makes the same inputs from the same
words itself (:func:`words`, :func:`instance_words`). ``tests/test_sparse_step.py`` checks the
sampler against the canonical numpy sampler in distribution.
"""

from __future__ import annotations

import numpy as np
import torch

from .kernel import fused

__all__ = ["WORDS_PER_CALL", "dense_coefficients", "dense_into", "instance_words", "words"]

Tensor = torch.Tensor
#: most 32-bit words drawn per numpy call (keeps the temporary off fresh mmap'd pages)
WORDS_PER_CALL = 2**19


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


def instance_words(
    bits: np.random.SFC64, inst: int, batch: int, n: int, out: np.ndarray | None = None
) -> np.ndarray:
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
