"""Configurations, measured results and the ratio table of the benchmark run."""

from __future__ import annotations

from dataclasses import dataclass

from toymodel.spec import Spec, TrainConfig

#: (n, m, instances) of issue 4
CONFIGS: list[tuple[int, int, int]] = [(5, 2, 10), (20, 5, 10), (100, 20, 20), (400, 30, 20)]
DENSITIES: list[float] = [1.0, 0.1, 0.01, 0.003, 0.001]
BATCH = 1024
#: steps of one timed run, so that the plain loop's run lasts ~0.3-1 s
STEPS = {5: 200, 20: 100, 100: 20, 400: 6}


def spec_for(n: int, m: int, inst: int, density: float, steps: int | None = None) -> Spec:
    """relu_output, importance 0.9^i, one density for every feature, ``inst`` restarts."""
    return Spec(
        model="relu_output",
        n=n,
        m=m,
        importance=[0.9**i for i in range(n)],
        density=[density] * n,
        restarts=inst,
        seed=0,
        train=TrainConfig(steps=steps or STEPS[n], batch_size=BATCH, lr=1e-3, log_every=10),
    )


def matmul_flops(n: int, m: int, inst: int) -> float:
    """FLOPs of the five batched products of one relu_output training step."""
    return 5 * 2.0 * inst * BATCH * n * m


@dataclass
class Row:
    """Median seconds per step of the reference and the plain loop for one configuration."""

    fast: float | None = None
    plain: float | None = None


#: (kind, n, m, inst, density) -> Row; kind is "run" (whole fit), "core" (one step) or "numpy"
RESULTS: dict[tuple[str, int, int, int, float], Row] = {}
#: name -> GFLOP/s
RATES: dict[str, float] = {}


def record(kind: str, cfg: tuple[int, int, int], density: float, which: str, seconds_per_step: float) -> None:
    row = RESULTS.setdefault((kind, *cfg, density), Row())
    setattr(row, which, seconds_per_step)


def table() -> str:
    """The ratio table: steps/s of both loops and their ratio, and the share of the mm rate."""
    peak = RATES.get("mm")
    lines = [
        f"{'kind':5} {'n/m/inst':>11} {'density':>8} {'plain st/s':>11} {'ref st/s':>10} "
        f"{'ratio':>7} {'GFLOP/s':>8} {'% of mm':>8}"
    ]
    order = sorted(RESULTS.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[0][4]))
    for (kind, n, m, inst, dens), row in order:
        plain = f"{1 / row.plain:11.1f}" if row.plain else f"{'-':>11}"
        fast = f"{1 / row.fast:10.1f}" if row.fast else f"{'-':>10}"
        ratio = f"{row.plain / row.fast:6.1f}x" if row.plain and row.fast else f"{'-':>7}"
        gf = share = ""
        if row.fast and dens == 1.0:
            rate = matmul_flops(n, m, inst) / row.fast / 1e9
            gf = f"{rate:8.1f}"
            share = f"{100 * rate / peak:7.0f}%" if peak and kind != "cuda" else ""
        cfg = f"{n}/{m}/{inst}"
        lines.append(f"{kind:5} {cfg:>11} {dens:8.3g} {plain} {fast} {ratio} {gf:>8} {share:>8}")
    for name, rate in RATES.items():
        lines.append(f"fp32 {name} rate: {rate:.1f} GFLOP/s")
    lines.append(
        "run = whole fit (sampling, step, AdamW, logging); core = the reference's gradient + AdamW "
        "step on a fixed batch (no sampling); numpy = the numpy implementation's whole run in "
        "shards on the benchmark's threads (ref) against one block on one thread (plain); "
        "cuda = the whole fit on the GPU (only when CUDA is present; no % of mm). % of mm = the "
        "5 batched products' FLOPs / time / torch.mm rate (dense configurations)."
    )
    return "\n".join(lines)
