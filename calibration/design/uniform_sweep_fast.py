"""Training recipes for the fast tier's uniform sweep, compared by the geometry claims' statistics.

Trains the fast tier's sweep (n=60, m=10, 20 levels, 8 restarts) with one implementation and one
recipe at a range of claims seeds and prints a JSON line per seed: training seconds, D* at density
1 (min, max over restarts), each restart's longest run of levels on the 1/2 plateau, the largest
rise of the restarts' mean D*, the pooled 1/2 peak's ratio to its flanks, and how many restarts'
D_i peak at a second fraction: the values the claims in ``claims/test_geometry.py`` check.

    python calibration/design/uniform_sweep_fast.py IMPL BATCH STEPS SEEDS [SCHEDULE [LR]]

IMPL is torch (the reference), numpy or plain (the notebook-style loop); SEEDS e.g. ``0-1``.
The lines in ``uniform_sweep_fast.jsonl`` were made with it, one thread per run, two at a time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from toymodel.analysis import metrics
from toymodel.experiments import geometry as ex
from toymodel.result import validate
from toymodel.spec import Spec, TrainConfig

FRACTIONS = np.array([0.5, 3 / 4, 2 / 3, 2 / 5, 3 / 8])


def trainer(impl: str) -> Callable[[Spec], dict[str, Any]]:
    if impl == "torch":
        from toymodel.reference.training import train
    elif impl == "numpy":
        from toymodel.numpy_impl.training import train
    elif impl == "plain":
        from toymodel.plain import train
    else:
        raise SystemExit(f"unknown implementation {impl!r}: torch, numpy or plain")
    return train


def longest_run(mask: np.ndarray) -> int:
    best = cur = 0
    for v in mask:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


def measure(impl: str, spec: Spec) -> dict[str, Any]:
    start = time.perf_counter()
    res = validate(trainer(impl)(spec), spec, impl)
    seconds = time.perf_counter() - start
    W = res.by_setting(res.W)
    dstar, dims = metrics.dims_per_feature(W), metrics.feature_dimensionality(W)
    mean = dstar.mean(axis=1)
    pk = metrics.histogram_peaks(dims, FRACTIONS)
    second = sum(
        bool(metrics.histogram_peaks(dims[:, r], FRACTIONS[1:]).is_peak.any()) for r in range(dims.shape[1])
    )
    return {
        "sec": round(seconds, 1),
        "dense": [round(float(dstar[0].min()), 3), round(float(dstar[0].max()), 3)],
        "plateaus": [longest_run(np.abs(c - 0.5) < 0.03) for c in dstar.T],
        "rise": round(float(np.max(mean - np.minimum.accumulate(mean))), 4),
        "half": round(float(pk.at_centre[0] / max(2 * pk.left[0], 2 * pk.right[0], 3)), 1),
        "second": f"{second}/{dims.shape[1]}",
    }


def main(argv: list[str]) -> None:
    if len(argv) < 4:
        raise SystemExit(__doc__)
    impl, batch, steps = argv[0], int(argv[1]), int(argv[2])
    first, _, last = argv[3].partition("-")
    schedule = argv[4] if len(argv) > 4 else "constant"
    lr = float(argv[5]) if len(argv) > 5 else 1e-3
    torch.set_num_threads(1)
    base = ex.uniform_sweep("fast")
    train = TrainConfig(steps=steps, batch_size=batch, lr=lr, schedule=schedule)  # type: ignore[arg-type]
    for seed in range(int(first), int(last or first) + 1):
        spec = base.replace(seed=base.seed + seed, train=train)
        row = {"impl": impl, "batch": batch, "steps": steps, "sched": schedule, "lr": lr, "seed": seed}
        print(json.dumps({**row, **measure(impl, spec)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
