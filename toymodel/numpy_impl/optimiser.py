"""The numpy implementation's optimiser: ``torch.optim.AdamW`` semantics on one flat vector, and
the learning-rate schedule."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["AdamW", "lr_factor"]


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


class AdamW:
    """``torch.optim.AdamW`` on one flat parameter vector (weight decay on every entry)."""

    def __init__(
        self,
        size: int,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        dtype: type[np.floating] = np.float32,
    ) -> None:
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
        tmp *= 1.0 / math.sqrt(1.0 - b2**self.t)
        tmp += self.eps
        np.divide(self.m, tmp, out=tmp)
        tmp *= lr / (1.0 - b1**self.t)
        theta -= tmp
