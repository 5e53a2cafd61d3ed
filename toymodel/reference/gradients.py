"""The reference's hand-derived gradients: the loss of a batch and its gradient, written into
reused buffers, through the fused kernel for small models on CPU, else the unfused torch step.

``tests/test_impl_torch.py`` proves both equal to autograd to float32 rounding for every model kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .kernel import fused

__all__ = [
    "FUSED_MAX_MN",
    "NUMPY_MATMUL_MAX",
    "Params",
    "Workspace",
    "bmm",
    "fused_fits",
    "loss_and_grads",
    "unfused_loss_and_grads",
]

Tensor = torch.Tensor
#: largest per-matrix product (multiply-adds) done by numpy's matmul rather than torch.bmm
NUMPY_MATMUL_MAX = 2**18
#: largest m * n trained by the fused kernel (:mod:`toymodel.reference.kernel.fused`): its
#: per-instance gradient accumulators (32 m n bytes) must stay in L2. Measured at 1 thread (kernel
#: alone, x given): 1.7 ns per (hidden, feature, 8 samples) at n=400, m=30, where the unfused step's
#: BLAS products run slower
FUSED_MAX_MN = 16384


def fused_fits(m: int, n: int) -> bool:
    """Whether an m x n model trains through the fused kernel on CPU (small enough, kernel built)."""
    return m * n <= FUSED_MAX_MN and fused.available()


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
    (:mod:`toymodel.reference.kernel.fused`) unless ``fused_ok`` is false, on ``threads`` threads
    (default: torch's thread count); otherwise the unfused torch step.
    """
    inst, batch, n = x.shape
    if fused_ok and x.device.type == "cpu" and fused_fits(p.W.shape[1], n):
        loss = torch.empty(inst)

        def arr(t: Tensor) -> np.ndarray:
            return t.detach().contiguous().numpy()

        fused.step(
            model,
            "uniform01",
            batch,
            arr(p.W),
            None if p.W2 is None else arr(p.W2),
            arr(p.b),
            arr(importance),
            None if hidden_l1 is None else arr(hidden_l1),
            g.W.numpy(),
            None if g.W2 is None else g.W2.numpy(),
            g.b.numpy(),
            loss.numpy(),
            x=arr(x),
            threads=torch.get_num_threads() if threads is None else threads,
        )
        return loss
    return unfused_loss_and_grads(model, p.W, p.b, p.W2, g.W, g.b, g.W2, x, importance, hidden_l1, batch)


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


def bmm(a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """out = a @ b, batched. Small products on CPU go through numpy's matmul (OpenBLAS, single
    threaded below ~2^18 multiply-adds per matrix): several times faster than ``torch.bmm`` for
    these skinny shapes (measured: benchmarks/, PERF-NOTES); zero-copy views. Larger ones use
    ``torch.bmm`` and torch's thread pool."""
    if out.device.type == "cpu" and a.shape[1] * a.shape[2] * b.shape[2] <= NUMPY_MATMUL_MAX:
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
    else:
        torch.bmm(a, b, out=out)
    return out


def unfused_loss_and_grads(
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
    pre = bmm(x, W.transpose(1, 2), ws.get("pre", (inst, R, m), x))
    h = pre.relu() if model in ("relu_hidden", "abs") else pre
    dec = W if W2 is None else W2.transpose(1, 2)  # (I, m, n)
    z = bmm(h, dec, ws.get("z", (inst, R, n), x)).add_(b[:, None, :])
    target = x.abs() if model == "abs" else x
    scale = importance[:, None, :] * (2.0 / batch)
    active = None if model == "linear" else torch.gt(z, 0.0, out=ws.get("act", (inst, R, n), x))
    resid = z.sub_(target) if model == "linear" else z.relu_().sub_(target)  # overwrites z
    gz = torch.mul(resid, scale, out=ws.get("gz", (inst, R, n), x))
    dot = ws.get("dot", (inst, 1, 1), x)
    loss = bmm(gz.view(inst, 1, -1), resid.view(inst, -1, 1), dot).view(inst).mul(0.5)
    if active is not None:
        gz.mul_(active)
    torch.sum(gz, dim=1, out=gb)
    gh = ws.get("gh", (inst, R, m), x)
    if W2 is not None:
        assert gW2 is not None
        bmm(gz.transpose(1, 2), h, gW2)
        bmm(gz, W2, gh)
    else:
        bmm(h.transpose(1, 2), gz, gW)  # decoder side of the tied weights
        bmm(gz, W.transpose(1, 2), gh)
    if hidden_l1 is not None:
        loss += hidden_l1 * h.abs().sum(dim=(1, 2)) / batch
        gh.add_(torch.sign(h).mul_((hidden_l1 / batch)[:, None, None]))
    if model in ("relu_hidden", "abs"):
        gh.mul_(pre > 0)
    if W2 is not None:
        bmm(gh.transpose(1, 2), x, gW)
    else:
        gW.add_(bmm(gh.transpose(1, 2), x, ws.get("gWe", tuple(gW.shape), x)))  # encoder side
    return loss
