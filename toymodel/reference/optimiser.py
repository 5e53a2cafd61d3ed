"""The reference's optimiser: ``torch.optim.AdamW`` on one flat parameter buffer, and the
learning-rate schedule (the official notebook's)."""

from __future__ import annotations

import math

import torch

__all__ = ["FlatAdamW", "lr_factor"]

Tensor = torch.Tensor


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning-rate multiplier at 0-based ``step`` of ``steps`` (official notebook's)."""
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - step / steps
    if schedule == "cosine":
        return 1.0 if steps == 1 else math.cos(0.5 * math.pi * step / (steps - 1))
    raise ValueError(f"unknown schedule {schedule!r}")


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
            torch._fused_adamw_(
                [self.param],
                [grad],
                [self.exp_avg],
                [self.exp_avg_sq],
                [],
                [self._step],
                lr=lr,
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=self.weight_decay,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
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
