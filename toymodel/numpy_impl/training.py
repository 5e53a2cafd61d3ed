"""The numpy implementation's training loop (``--impl numpy``: :func:`train`); see
:mod:`toymodel.numpy_impl` for its semantics and how it shares the work between threads."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..data import seed_sequence
from ..models import initial_weights
from ..spec import Spec
from .gradients import Trainer, shard_bounds
from .optimiser import AdamW, lr_factor
from .sampling import Sampler

__all__ = ["INIT_STREAM", "default_threads", "train"]

#: the init stream of this implementation (the reference's is "init")
INIT_STREAM = "numpy-init"


def default_threads() -> int:
    """Worker threads: ``$OMP_NUM_THREADS`` when set, else the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}") from None
        if value < 1:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}")
        return value
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def train(spec: Spec, *, threads: int | None = None) -> dict[str, Any]:
    """Train every instance of ``spec`` on ``threads`` worker threads (default
    :func:`default_threads`; the result does not depend on it); see :mod:`toymodel.numpy_impl`."""
    start = time.perf_counter()
    cfg = spec.train
    steps, every = cfg.steps, cfg.log_every
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    bounds = shard_bounds(spec.instances, spec.n * cfg.batch_size)
    density = spec.density_array(per_instance=True)
    samplers = [
        Sampler(
            density[a:b],
            cfg.batch_size,
            np.random.Generator(np.random.PCG64(seed_sequence(spec.seed, "numpy-train", k))),
            groups=spec.groups,
            values=str(spec.values),
        )
        for k, (a, b) in enumerate(bounds)
    ]
    trainer = Trainer(
        spec.model,
        initial_weights(spec, INIT_STREAM),
        spec.importance_array(per_instance=True),
        spec.hidden_l1_array(per_instance=True),
        cfg.batch_size,
        shards=bounds,
    )
    opt = AdamW(trainer.theta.size, cfg.betas, cfg.eps, cfg.weight_decay)
    n_log = -(-steps // every)
    loss_steps = np.minimum(np.arange(1, n_log + 1) * every, steps)
    curve = np.zeros((spec.instances, n_log))
    workers = min(threads, len(bounds))
    # worker w always takes shards w, w + workers, ...: one task per worker and step
    groups = [list(range(w, len(bounds), workers)) for w in range(workers)]
    losses = np.zeros(spec.instances)

    def work(shards: list[int]) -> None:
        for k in shards:
            a, b = bounds[k]
            losses[a:b] = trainer.shard_loss_and_grads(k, samplers[k].draw())

    # BLAS on one thread: the parallelism is the shards'; the caller's thread takes group 0
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max(workers - 1, 1)) as pool:
        for t in range(steps):
            pending = [pool.submit(work, g) for g in groups[1:]]
            work(groups[0])
            for job in pending:
                job.result()
            curve[:, t // every] += losses
            opt.update(trainer.theta, trainer.grad, cfg.lr * lr_factor(cfg.schedule, t, steps))
    curve /= np.diff(loss_steps, prepend=0)
    final = {k: v.astype(np.float64) for k, v in trainer.params.items()}
    train_s = max(time.perf_counter() - start, 1e-9)
    meta = {
        "numpy": np.__version__,
        "dtype": "float32",
        "sampler": "Sampler (one uniform per entry)",
        "train_seconds": train_s,
        "wall_seconds": time.perf_counter() - start,
        "steps_per_second": steps / train_s,
        "threads": workers,
        "shards": len(bounds),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    return {
        "W": final["W"],
        "b": final["b"],
        "W2": final.get("W2"),
        "loss_steps": loss_steps.astype(np.float64),
        "loss_curve": curve,
        "meta": meta,
    }
