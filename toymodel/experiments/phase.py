"""Section "superposition as a phase change": trained phase maps over (relative importance r,
density s) for the n=2, m=1 and n=3, m=2 ReLU-output models.

One :class:`~toymodel.spec.Spec` per map: its settings are the grid cells in r-major order
(setting ``a * len(s) + c`` is r[a], s[c]), importance row [1, r] (n=2) or [1, 1, r] (n=3), every
density s; all restarts of all cells train in one batched program.
Grid: r log-spaced 0.1..10, s log-spaced 1.0..0.01 (the paper's axes).

Training (:data:`PHASE_TRAIN`) deviates from the official notebook (10 000 steps, lr 1e-3, batch
1024, constant): AdamW lr 1e-2 decayed linearly to 0 over 1000 steps, batch 512. Why: a map is
144 cells x 8 restarts = 1152 models, and the official schedule costs minutes of CPU per map with
the torch reference (~20 ms per step for 576 n=2 models), over the CI budget; these models have
at most 9 parameters and converge in a few hundred steps at lr 1e-2, and the decay removes the
end-of-run jitter. Measured (claims seed 0, numpy implementation, 4 restarts, held-out
selection): the official settings and these give the identical n=2 label map.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..spec import Spec, TrainConfig

__all__ = ["PHASE_TRAIN", "TIERS", "Tier", "grid", "phase_grid"]

Tier = Literal["fast", "paper"]

#: (cells along r, cells along s, restarts) per tier; the paper trained 10 models per point
TIERS: dict[str, tuple[int, int, int]] = {"fast": (12, 12, 8), "paper": (25, 25, 10)}

#: the section's training settings (see the module docstring for why they deviate)
PHASE_TRAIN = TrainConfig(steps=1000, lr=1e-2, schedule="linear", batch_size=512)


def grid(tier: Tier = "fast") -> tuple[np.ndarray, np.ndarray]:
    """(r, s) axes of a tier: r from 0.1 to 10 and s from 1.0 to 0.01, both log-spaced."""
    cells_r, cells_s, _ = TIERS[tier]
    return np.geomspace(0.1, 10.0, cells_r), np.geomspace(1.0, 0.01, cells_s)


def phase_grid(
    n: int,
    tier: Tier = "fast",
    *,
    train: TrainConfig = PHASE_TRAIN,
    restarts: int | None = None,
    seed: int = 0,
) -> Spec:
    """The trained-phase-map spec for n=2 (m=1) or n=3 (m=2): one setting per (r, s) cell, the
    extra (last) feature with importance r, the others 1, all densities s."""
    if n not in (2, 3):
        raise ValueError(f"the phase maps exist for n=2 and n=3, not n={n}")
    r, s = grid(tier)
    rr, ss = np.meshgrid(r, s, indexing="ij")
    importance = np.ones((rr.size, n))
    importance[:, -1] = rr.ravel()
    density = np.repeat(ss.reshape(-1, 1), n, axis=1)
    return Spec(
        model="relu_output",
        n=n,
        m=n - 1,
        importance=importance,
        density=density,
        restarts=TIERS[tier][2] if restarts is None else restarts,
        seed=seed,
        train=train,
        eval_samples=16_384,
        name=f"phase-map-n{n}-{tier}",
    )
