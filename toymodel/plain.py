"""The plain implementation: the official notebook's training loop, kept as the yardstick.

Autograd through the model, ``torch.optim.AdamW`` over the parameters, fresh data every step
from the notebook's sampler (two uniform draws, a comparison, a ``where``; a correlated or
anticorrelated set draws its presence once per set, as the notebook's correlated and
anticorrelated generators do). It is what the
benchmarks compare the reference implementation against, and what the tests prove the reference
implementation's hand-written gradients and optimiser equal to. Selectable as ``--impl
torch-plain``; it is slow, so the claims are not run with it in CI.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from . import models
from .reference.optimiser import lr_factor
from .reference.sampling import torch_generator
from .reference.training import device_of
from .spec import FeatureGroup, Spec

__all__ = ["fit", "forward_loss", "notebook_batch", "train"]

Tensor = torch.Tensor


def notebook_batch(
    density: Tensor,
    batch: int,
    gen: torch.Generator,
    values: str = "uniform01",
    groups: tuple[FeatureGroup, ...] = (),
) -> Tensor:
    """The official notebook's sampler: (instances, batch, n). Independent features are present
    where a uniform draw is at most their density; a correlated set is present as a whole (one
    draw per set), an anticorrelated set is present with its density and then one member, chosen
    uniformly, carries the value (the notebook's two-member sets, for any size)."""
    inst, n = density.shape
    dev = density.device
    feat = torch.rand((inst, batch, n), generator=gen, device=dev)
    if values == "uniform_pm1":
        feat = 2 * feat - 1
    keep = torch.rand((inst, batch, n), generator=gen, device=dev) <= density[:, None, :]
    for g in groups:
        size, first = len(g.features), g.features[0]
        present = (
            torch.rand((inst, batch, 1), generator=gen, device=dev) <= density[:, None, first : first + 1]
        )
        if g.kind == "correlated":
            members = present.expand(inst, batch, size)
        else:
            pick = (torch.rand((inst, batch, 1), generator=gen, device=dev) * size).long().clamp_max(size - 1)
            members = present & (pick == torch.arange(size, device=dev))
        keep[..., list(g.features)] = members
    return torch.where(keep, feat, torch.zeros((), device=dev))


def forward_loss(
    model: str, params: dict[str, Tensor], x: Tensor, importance: Tensor, hidden_l1: Tensor | None
) -> Tensor:
    """Per-instance loss by autograd-able torch ops (the notebook's einsum style)."""
    W, b = params["W"], params["b"]
    pre = torch.einsum("kbn,kmn->kbm", x, W)
    h = torch.relu(pre) if model in ("relu_hidden", "abs") else pre
    if model == "abs":
        z = torch.einsum("kbm,knm->kbn", h, params["W2"]) + b[:, None, :]
    else:
        z = torch.einsum("kbm,kmn->kbn", h, W) + b[:, None, :]
    out = z if model == "linear" else torch.relu(z)
    y = x.abs() if model == "abs" else x
    loss = (importance[:, None, :] * (y - out) ** 2).sum(-1).mean(-1)
    if hidden_l1 is not None:
        loss = loss + hidden_l1 * h.abs().sum(-1).mean(-1)
    return loss


def fit(
    spec: Spec,
    data: Iterator[Tensor] | None = None,
    on_step: Callable[[int, dict[str, Tensor]], None] | None = None,
    init_stream: str = "init",
) -> tuple[dict[str, Tensor], np.ndarray, np.ndarray]:
    """Train with autograd + torch.optim.AdamW; same outputs as :func:`toymodel.reference.training.fit`
    (from the reference's initial weights unless ``init_stream`` names another stream)."""
    dev = device_of(spec)
    tc = spec.train
    init = models.initial_weights(spec, init_stream)
    params = {
        k: torch.tensor(v, dtype=torch.float32, device=dev, requires_grad=True) for k, v in init.items()
    }
    opt = torch.optim.AdamW(
        list(params.values()), lr=tc.lr, betas=tc.betas, eps=tc.eps, weight_decay=tc.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(tc.schedule, t, tc.steps))
    importance = torch.tensor(spec.importance_array(per_instance=True), dtype=torch.float32, device=dev)
    density = torch.tensor(spec.density_array(per_instance=True), dtype=torch.float32, device=dev)
    l1 = spec.hidden_l1_array(per_instance=True)
    hidden_l1 = torch.tensor(l1, dtype=torch.float32, device=dev) if np.any(l1 > 0) else None
    if data is None:
        gen = torch_generator(spec, "plain-train", dev)

        def stream() -> Iterator[Tensor]:
            while True:
                yield notebook_batch(density, tc.batch_size, gen, str(spec.values), spec.groups)

        data = stream()
    windows = math.ceil(tc.steps / tc.log_every)
    curve = np.zeros((windows, spec.instances))
    acc = torch.zeros(spec.instances, dtype=torch.float64, device=dev)
    for t in range(tc.steps):
        x = next(data)
        opt.zero_grad(set_to_none=True)
        loss = forward_loss(spec.model, params, x, importance, hidden_l1)
        loss.sum().backward()
        opt.step()
        sched.step()
        acc += loss.detach()
        if on_step is not None:
            on_step(t, params)
        if (t + 1) % tc.log_every == 0 or t + 1 == tc.steps:
            k = t // tc.log_every
            curve[k] = (acc / (t + 1 - k * tc.log_every)).cpu().numpy()
            acc.zero_()
    steps_out = np.minimum((np.arange(windows) + 1) * tc.log_every, tc.steps)
    return params, steps_out, curve.T.copy()


def train(spec: Spec) -> dict[str, Any]:
    """``--impl torch-plain``."""
    start = time.perf_counter()
    p, steps, curve = fit(spec, init_stream="plain-init")  # its own sample, not the reference's start
    params = {k: v.detach().cpu().double().numpy().copy() for k, v in p.items()}
    wall = time.perf_counter() - start
    return dict(
        W=params["W"],
        b=params["b"],
        W2=params.get("W2"),
        loss_steps=steps.astype(np.float64),
        loss_curve=curve,
        meta={"torch": torch.__version__, "threads": torch.get_num_threads(), "train_seconds": wall},
    )
