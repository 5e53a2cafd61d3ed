"""Synthetic sparse features, in numpy: the canonical sampler.

The reference torch implementation has its own (faster) sampler, tested to be equal in
distribution to this one. This one defines the held-out evaluation sample of a spec (shared by
every implementation, so held-out losses are comparable across implementations) and feeds the
numpy implementation.

Sampling rules (CLAIMS.md, Conventions):
- independent feature i: 0 with probability 1 - density_i, else a value;
- correlated group: one draw per sample decides whether the whole group is zero (probability
  1 - density), the members' magnitudes are independent;
- anticorrelated group: zero with probability 1 - density, else exactly one uniformly chosen
  member carries a value;
- a value is U[0, 1] (``uniform01``) or U[-1, 1] (``uniform_pm1``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .spec import FeatureGroup, Spec

__all__ = ["EVAL_CHUNK", "eval_batch", "eval_chunks", "sample", "seed_sequence"]


def seed_sequence(seed: int, *path: int | str) -> np.random.SeedSequence:
    """A SeedSequence for the stream named by ``path`` under ``seed`` (strings are hashed
    stably), so every random stream of a run is derived, never global."""
    words: list[int] = [int(seed)]
    for p in path:
        if isinstance(p, str):
            words.extend(p.encode())
        else:
            words.append(int(p))
    return np.random.SeedSequence(words)


def sample(
    density: np.ndarray,
    batch: int,
    rng: np.random.Generator,
    *,
    groups: Sequence[FeatureGroup] = (),
    values: str = "uniform01",
    dtype: type[np.floating] = np.float64,
) -> np.ndarray:
    """Draw ``batch`` samples per instance.

    Args:
        density: (instances, n) probabilities that each feature is non-zero.
        batch: samples per instance.
        rng: the generator to draw from.
        groups: correlated / anticorrelated sets (members share a density).
        values: ``uniform01`` or ``uniform_pm1``.
    Returns:
        (instances, batch, n) array.
    """
    density = np.asarray(density, dtype=np.float64)
    if density.ndim != 2:
        raise ValueError(f"density must be (instances, n), got shape {density.shape}")
    inst, n = density.shape
    mag = rng.random((inst, batch, n))
    if values == "uniform_pm1":
        mag = 2.0 * mag - 1.0
    elif values != "uniform01":
        raise ValueError(f"values must be 'uniform01' or 'uniform_pm1', got {values!r}")
    active = rng.random((inst, batch, n)) < density[:, None, :]
    for g in groups:
        idx = np.asarray(g.features)
        lead = active[:, :, idx[0]]
        if g.kind == "correlated":
            active[:, :, idx] = lead[:, :, None]
        else:  # anticorrelated: the group fires with its density, one member carries it
            pick = rng.integers(0, len(idx), size=(inst, batch))
            onehot = pick[:, :, None] == np.arange(len(idx))[None, None, :]
            active[:, :, idx] = lead[:, :, None] & onehot
    return np.where(active, mag, 0.0).astype(dtype, copy=False)


EVAL_CHUNK = 4096


def eval_chunks(spec: Spec, setting: int, dtype: type[np.floating] = np.float64) -> Iterator[np.ndarray]:
    """The fixed held-out sample of one setting, as (rows, n) chunks of at most EVAL_CHUNK rows.

    Chunk c is drawn from the stream ``(seed, "eval", setting, c)``, so the sample depends only
    on the spec's seed, density and groups, and is shared by all restarts of the setting (common
    random numbers): restarts are ranked on the same data.
    """
    density = spec.density_array()[setting : setting + 1]
    for c, start in enumerate(range(0, spec.eval_samples, EVAL_CHUNK)):
        rows = min(EVAL_CHUNK, spec.eval_samples - start)
        rng = np.random.Generator(np.random.PCG64(seed_sequence(spec.seed, "eval", setting, c)))
        yield sample(density, rows, rng, groups=spec.groups, values=str(spec.values), dtype=dtype)[0]


def eval_batch(spec: Spec, setting: int, dtype: type[np.floating] = np.float64) -> np.ndarray:
    """The whole held-out sample of one setting, (eval_samples, n)."""
    return np.concatenate(list(eval_chunks(spec, setting, dtype)), axis=0)
