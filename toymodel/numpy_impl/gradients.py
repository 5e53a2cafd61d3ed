"""The numpy implementation's loss and hand-derived gradients, in preallocated buffers, by shards
of instances that threads can share."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["SHARD_ENTRIES", "Trainer", "shard_bounds"]

_WEIGHT_SHAPES = {"W": ("m", "n"), "b": ("n",), "W2": ("n", "m")}


#: Batch entries (instances x n x batch) per shard: 1 MiB of float32 per work buffer, so a shard's
#: half-dozen buffers stay in L2/L3 (the choice among shard sizes: `tox -e bench -- -k numpy_shards`).
#: Changing it changes the shards' random streams, hence every numpy result.
SHARD_ENTRIES = 2**18


def shard_bounds(
    instances: int, entries_per_instance: int, limit: int | None = None
) -> list[tuple[int, int]]:
    """Contiguous instance ranges [start, stop) with at most ``limit`` (default
    :data:`SHARD_ENTRIES`) entries each, and at least one instance; the last may be shorter."""
    if limit is None:
        limit = SHARD_ENTRIES
    if instances < 1 or entries_per_instance < 1 or limit < 1:
        raise ValueError(
            f"shard_bounds needs positive sizes, got instances={instances}, "
            f"entries_per_instance={entries_per_instance}, limit={limit}"
        )
    per = max(1, limit // entries_per_instance)
    return [(a, min(a + per, instances)) for a in range(0, instances, per)]


class Trainer:
    """Loss and hand-derived gradients of a batch of toy models, in preallocated buffers.

    Batches are feature-major, x (I, n, batch) (``data.sample(...).transpose(0, 2, 1)``).
    ``theta`` and ``grad`` are flat vectors; ``params`` and ``grads`` are views of them with the
    shapes of :mod:`toymodel.models` (W (I, m, n), b (I, n), W2 (I, n, m)). ``shards`` are
    contiguous instance ranges (default: all instances in one), each computed with work buffers of
    its own, so that shards can run on different threads (:meth:`shard_loss_and_grads`).
    """

    def __init__(
        self,
        model: str,
        params: Mapping[str, np.ndarray],
        importance: np.ndarray,
        hidden_l1: np.ndarray | None,
        batch: int,
        dtype: type[np.floating] = np.float32,
        *,
        shards: Sequence[tuple[int, int]] | None = None,
    ) -> None:
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
            self.params[k] = self.theta[start : start + size].reshape(shapes[k])
            self.grads[k] = self.grad[start : start + size].reshape(shapes[k])
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
            _Shard(
                model,
                {k: v[a:b] for k, v in self.params.items()},
                {k: v[a:b] for k, v in self.grads.items()},
                imp[a:b],
                l1[a:b],
                batch,
                dtype,
            )
            for a, b in self.shards
        ]

    def loss_and_grads(self, x: np.ndarray) -> np.ndarray:
        """Per-instance loss (float64, (I,)) of the batch x (I, n, batch); fills ``grad``."""
        return np.concatenate([self.shard_loss_and_grads(k, x[a:b]) for k, (a, b) in enumerate(self.shards)])

    def shard_loss_and_grads(self, k: int, x: np.ndarray) -> np.ndarray:
        """Loss (float64) of shard k's instances on their batch x (its instances, n, batch); fills
        their part of ``grad``. Shards touch disjoint buffers, so they may run concurrently."""
        return self._kernels[k].loss_and_grads(x)


class _Shard:
    """One shard's forward and backward pass, writing into views of the trainer's buffers."""

    def __init__(
        self,
        model: str,
        params: dict[str, np.ndarray],
        grads: dict[str, np.ndarray],
        importance: np.ndarray,
        l1: np.ndarray,
        batch: int,
        dtype: type[np.floating],
    ) -> None:
        inst, m, n = params["W"].shape
        self.model, self.params, self.grads = model, params, grads
        self._imp = importance / batch  # loss weights, (I, n)
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
