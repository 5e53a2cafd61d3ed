"""The reference's general sampler: batches drawn with a torch generator, for feature groups,
``uniform_pm1`` values, CUDA and any caller (the CPU's independent features take the fast step of
:mod:`toymodel.reference.pipeline` instead)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data import seed_sequence
from ..spec import FeatureGroup, Spec

__all__ = ["RANDOM_CHUNK_BYTES", "batches", "sample", "torch_generator"]

Tensor = torch.Tensor
#: upper bound on the bytes of random numbers drawn in one call (several steps at once)
RANDOM_CHUNK_BYTES = 16 * 2**20


def torch_generator(spec: Spec, stream: str, device: torch.device) -> torch.Generator:
    """A generator for the named stream of the spec's seed."""
    seed = int(seed_sequence(spec.seed, stream).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def sample(
    density: Tensor,
    batch: int,
    gen: torch.Generator,
    *,
    groups: tuple[FeatureGroup, ...] = (),
    values: str = "uniform01",
    steps: int = 1,
) -> Tensor:
    """``steps`` batches of inputs, (steps, instances, batch, n), float32.

    Independent uniform01 features use one uniform r per element: relu(1 - r/p) is 0 with
    probability 1 - p and otherwise U[0, 1]. Groups and U[-1, 1] values use a magnitude draw and
    an activity draw per element, as :func:`toymodel.data.sample`.
    """
    inst, n = density.shape
    shape = (steps, inst, batch, n)
    dev = density.device
    if not groups and values == "uniform01":
        r = torch.rand(shape, generator=gen, device=dev)
        inv_p = torch.where(density > 0, 1.0 / density.clamp_min(1e-30), torch.zeros_like(density))
        x = r.mul_(inv_p[:, None, :].neg()).add_(1.0).clamp_(min=0.0)
        if bool((density == 0).any()):
            x.mul_((density > 0)[:, None, :])
        return x
    mag = torch.rand(shape, generator=gen, device=dev)
    if values == "uniform_pm1":
        mag.mul_(2.0).sub_(1.0)
    active = torch.rand(shape, generator=gen, device=dev) < density[:, None, :]
    for g in groups:
        idx = torch.tensor(g.features, device=dev)
        lead = active[..., g.features[0]]
        if g.kind == "correlated":
            active[..., idx] = lead[..., None].expand(*lead.shape, len(g.features))
        else:
            pick = torch.randint(0, len(g.features), lead.shape, generator=gen, device=dev)
            onehot = pick[..., None] == torch.arange(len(g.features), device=dev)
            active[..., idx] = lead[..., None] & onehot
    return mag.mul_(active)


def batches(spec: Spec, density: Tensor, gen: torch.Generator) -> Iterator[Tensor]:
    """Fresh (instances, batch, n) batches forever, drawn several steps per random call."""
    per_step = 4 * spec.instances * spec.train.batch_size * spec.n
    chunk = int(max(1, min(64, RANDOM_CHUNK_BYTES // max(per_step, 1))))
    while True:
        block = sample(
            density, spec.train.batch_size, gen, groups=spec.groups, values=str(spec.values), steps=chunk
        )
        yield from block
