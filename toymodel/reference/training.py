"""The reference's training loop (``--impl torch``: :func:`train`), and the device and thread
settings it trains under; see :mod:`toymodel.reference` for why it is fast and still faithful."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .. import models
from ..spec import Spec
from . import pipeline
from .gradients import Params, loss_and_grads
from .kernel import fused
from .optimiser import FlatAdamW, lr_factor
from .sampling import batches, torch_generator

__all__ = ["device_of", "fit", "torch_threads", "train"]

Tensor = torch.Tensor


def device_of(spec: Spec) -> torch.device:
    """The torch device ``spec`` trains on; RuntimeError when it names CUDA and there is none."""
    dev = torch.device(spec.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"spec.device={spec.device!r} but CUDA is not available here")
    return dev


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block, restored after."""
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count != before:
            torch.set_num_threads(before)


def fit(
    spec: Spec,
    data: Iterator[Tensor] | None = None,
    on_step: Callable[[int, Params], None] | None = None,
) -> tuple[Params, np.ndarray, np.ndarray]:
    """Train ``spec``; return final params, loss_steps and loss_curve (windows of log_every).

    ``data`` overrides the input stream (tests feed the same batches to other trainers);
    ``on_step(t, params)`` is called after each update (for trajectory checks and dynamics).
    """
    dev = device_of(spec)
    tc = spec.train
    init = models.initial_weights(spec)
    p = Params.allocate(spec.model, spec.instances, spec.m, spec.n, dev)
    g = Params.allocate(spec.model, spec.instances, spec.m, spec.n, dev)
    with torch.inference_mode():
        for name, view in p.as_dict().items():
            view.copy_(torch.from_numpy(init[name]))
    importance = torch.tensor(spec.importance_array(per_instance=True), dtype=torch.float32, device=dev)
    dens_np = spec.density_array(per_instance=True)
    density = torch.tensor(dens_np, dtype=torch.float32, device=dev)
    l1 = spec.hidden_l1_array(per_instance=True)
    hidden_l1 = torch.tensor(l1, dtype=torch.float32, device=dev) if np.any(l1 > 0) else None
    opt = FlatAdamW(p.flat, tc.betas, tc.eps, tc.weight_decay)
    threads = torch.get_num_threads()
    # The fused kernel runs on threads of its own; torch's OpenMP workers, once woken by a parallel
    # op (AdamW), spin for a while after it and take a core from the kernel (n=100, m=20, 20
    # instances: 15.0 -> 10.6 ms per step with them quiet). So torch ops use one thread meanwhile.
    op_threads = 1 if dev.type == "cpu" and pipeline.use_fused_kernel(spec) else threads
    if data is not None or spec.groups or dev.type != "cpu":
        if data is None:
            data = batches(spec, density, torch_generator(spec, "torch-train", dev))
        stream = data

        def step() -> Tensor:
            return loss_and_grads(spec.model, p, g, next(stream), importance, hidden_l1, threads=threads)
    else:
        step = pipeline.fast_step(spec, dens_np, p, g, importance, hidden_l1, threads)

    windows = math.ceil(tc.steps / tc.log_every)
    curve = torch.zeros(windows, spec.instances, dtype=torch.float64, device=dev)
    acc = torch.zeros(spec.instances, dtype=torch.float64, device=dev)
    steps_out = np.minimum((np.arange(windows) + 1) * tc.log_every, tc.steps)
    with torch.inference_mode(), torch_threads(op_threads):
        for t in range(tc.steps):
            acc += step()
            opt.step(g.flat, tc.lr * lr_factor(tc.schedule, t, tc.steps))
            if on_step is not None:
                on_step(t, p)
            if (t + 1) % tc.log_every == 0 or t + 1 == tc.steps:
                k = t // tc.log_every
                span = t + 1 - k * tc.log_every
                curve[k] = acc / span
                acc.zero_()
    return p, steps_out, curve.T.cpu().numpy()


def train(spec: Spec) -> dict[str, Any]:
    """The reference implementation (``--impl torch``): the result fields of
    :func:`toymodel.result.validate` (the suite scores the held-out loss itself)."""
    start = time.perf_counter()
    p, steps, curve = fit(spec)
    fused_path = spec.device == "cpu" and pipeline.use_fused_kernel(spec)
    params = {k: v.detach().cpu().double().numpy().copy() for k, v in p.as_dict().items()}
    wall = time.perf_counter() - start
    return dict(
        W=params["W"],
        b=params["b"],
        W2=params.get("W2"),
        loss_steps=steps.astype(np.float64),
        loss_curve=curve,
        meta={
            "torch": torch.__version__,
            "numpy": np.__version__,
            "threads": torch.get_num_threads(),
            "device": spec.device,
            "fused_kernel": fused_path,
            # the training path and the build behind its last bits (kernel, compiler, version, flags)
            "training_path": "fused" if fused_path else "unfused",
            "kernel": fused.build_info(),
            "train_seconds": wall,
            "steps_per_second": spec.train.steps / wall,
        },
    )
