"""Training throughput: the reference implementation against the plain loop, side by side.

Run with ``pytest benchmarks --benchmark-only`` (``tox -e bench``); the ratio table is printed at
the end (benchmarks/conftest.py). Each timed round is a whole short ``fit`` (or one core step);
the table uses the fastest round, the figure least disturbed by other load on the machine.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from toymodel import plain as torch_plain
from toymodel.numpy_impl import gradients as numpy_gradients
from toymodel.numpy_impl import training as numpy_training
from toymodel.reference import gradients, optimiser, pipeline, training

from .common import BATCH, CONFIGS, DENSITIES, RATES, STEPS, record, spec_for

pytestmark = pytest.mark.benchmark(group="throughput", min_rounds=3, warmup=False)
IDS = [f"{n}-{m}-{i}" for n, m, i in CONFIGS]


def test_matmul_rate(benchmark: Any) -> None:
    """The machine's fp32 matrix-multiply rate (torch.mm, 1024², the table's yardstick)."""
    a, b, c = torch.rand(1024, 1024), torch.rand(1024, 1024), torch.empty(1024, 1024)
    benchmark.pedantic(torch.mm, args=(a, b), kwargs={"out": c}, rounds=20, iterations=1, warmup_rounds=2)
    RATES["mm"] = 2 * 1024**3 / benchmark.stats.stats.min / 1e9


@pytest.mark.parametrize("which", ["plain", "fast"])
@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_run(benchmark: Any, cfg: tuple[int, int, int], density: float, which: str) -> None:
    """A whole short training run (sampling, gradients, AdamW, loss logging)."""
    spec = spec_for(*cfg, density)
    fit = torch_plain.fit if which == "plain" else training.fit
    benchmark.pedantic(fit, args=(spec,), rounds=3, iterations=1, warmup_rounds=1)
    record("run", cfg, density, which, benchmark.stats.stats.min / STEPS[cfg[0]])


@pytest.mark.parametrize("which", ["plain", "fast"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_core(benchmark: Any, cfg: tuple[int, int, int], which: str) -> None:
    """One training step on a fixed dense batch (no sampling): gradients + optimiser update (the
    fused kernel where ``fit`` uses it, else the unfused torch step)."""
    n, m, inst = cfg
    spec = spec_for(n, m, inst, 1.0)
    x = torch.rand(inst, BATCH, n, generator=torch.Generator().manual_seed(0))
    imp = torch.tensor(spec.importance_array(per_instance=True), dtype=torch.float32)
    if which == "fast":
        p = gradients.Params.allocate(spec.model, inst, m, n, torch.device("cpu"))
        g = gradients.Params.allocate(spec.model, inst, m, n, torch.device("cpu"))
        p.flat.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(1))
        opt = optimiser.FlatAdamW(p.flat, (0.9, 0.999), 1e-8, 0.01)

        threads = torch.get_num_threads()
        quiet = 1 if pipeline.use_fused_kernel(spec) else threads  # as fit does: torch ops on one thread

        def step() -> None:
            with torch.inference_mode(), training.torch_threads(quiet):
                # the fused kernel where fit uses it
                gradients.loss_and_grads(spec.model, p, g, x, imp, None, threads=threads)
                opt.step(g.flat, 1e-3)
    else:
        W = (torch.randn(inst, m, n, generator=torch.Generator().manual_seed(1)) * 0.1).requires_grad_(True)
        params = {"W": W, "b": torch.zeros(inst, n, requires_grad=True)}
        topt = torch.optim.AdamW(list(params.values()), lr=1e-3, weight_decay=0.01)

        def step() -> None:
            topt.zero_grad(set_to_none=True)
            torch_plain.forward_loss(spec.model, params, x, imp, None).sum().backward()
            topt.step()

    iters = max(1, STEPS[n] // 4)
    benchmark.pedantic(step, rounds=5, iterations=iters, warmup_rounds=1)
    record("core", cfg, 1.0, which, benchmark.stats.stats.min)


@pytest.mark.parametrize("which", ["plain", "fast"])
@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c[0] >= 100], ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_numpy_shards(
    benchmark: Any, monkeypatch: pytest.MonkeyPatch, cfg: tuple[int, int, int], which: str
) -> None:
    """The numpy implementation, dense: its shards on $BENCH_THREADS threads ("fast") against the
    same program as one block on one thread ("plain"), whole runs of 5x the torch runs' steps."""
    steps = 5 * STEPS[cfg[0]]
    spec = spec_for(*cfg, 1.0, steps=steps).replace(eval_samples=1024)  # time training, not evaluation
    threads = torch.get_num_threads()
    if which == "plain":
        monkeypatch.setattr(numpy_gradients, "SHARD_ENTRIES", 2**62)
        threads = 1
    benchmark.pedantic(
        numpy_training.train,
        args=(spec,),
        kwargs={"threads": threads},
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    record("numpy", cfg, 1.0, which, benchmark.stats.stats.min / steps)


@pytest.mark.gpu
@pytest.mark.parametrize("which", ["plain", "fast"])
@pytest.mark.parametrize("density", [1.0, 0.01])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_run_cuda(benchmark: Any, cfg: tuple[int, int, int], density: float, which: str) -> None:
    """The whole short run on the GPU (``spec.device = "cuda"``), beside the CPU rows: the reference
    and the plain loop, each synchronised before the clock stops. Skipped without CUDA."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    spec = spec_for(*cfg, density).replace(device="cuda")
    fit = torch_plain.fit if which == "plain" else training.fit

    def run() -> None:
        fit(spec)
        torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    record("cuda", cfg, density, which, benchmark.stats.stats.min / STEPS[cfg[0]])
