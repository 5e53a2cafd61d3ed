"""The reference implementation: every instance trained as one batched torch program.

Why it is fast (see ../PERF-NOTES.md and ``benchmarks/``), and why it is still faithful:

- **Hand-derived gradients** (:func:`loss_and_grads`) instead of autograd, written into
  preallocated buffers; ``tests/test_impl_torch.py`` proves them equal to autograd to float32
  rounding for every model kind.
- **One fused AdamW update** on a single flat parameter buffer (:class:`FlatAdamW`), the same
  arithmetic as ``torch.optim.AdamW`` (decoupled weight decay, bias corrections, eps outside the
  square root); trajectories over hundreds of steps are tested equal to ``torch.optim.AdamW``.
- **One uniform per input element** for independent features: ``x = relu(1 - r/p)`` is exactly
  "0 with probability 1 - p, else U[0, 1]" (:func:`sample`), and several steps' randoms are drawn
  per call. Correlated / anticorrelated groups use the general two-draw sampler.

Determinism: one ``torch.Generator`` per run, seeded from ``(spec.seed, "torch-train")``; the
init is :func:`toymodel.models.initial_weights` (shared with every implementation). The same spec
gives the same result on the same platform, thread count and torch version. Matrix products may
differ in the last bits across thread counts and devices (blocking order), which is why the
regression baselines carry measured tolerances.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from . import models
from .data import seed_sequence
from .result import Result
from .spec import FeatureGroup, Spec

__all__ = ["FlatAdamW", "loss_and_grads", "lr_factor", "sample", "train"]

Tensor = torch.Tensor
#: upper bound on the bytes of random numbers drawn in one call (several steps at once)
RANDOM_CHUNK_BYTES = 16 * 2**20


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning-rate multiplier at 0-based ``step`` of ``steps`` (official notebook's)."""
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - step / steps
    if schedule == "cosine":
        return 1.0 if steps == 1 else math.cos(0.5 * math.pi * step / (steps - 1))
    raise ValueError(f"unknown schedule {schedule!r}")


def torch_generator(spec: Spec, stream: str, device: torch.device) -> torch.Generator:
    """A generator for the named stream of the spec's seed."""
    seed = int(seed_sequence(spec.seed, stream).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
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
        block = sample(density, spec.train.batch_size, gen, groups=spec.groups,
                       values=str(spec.values), steps=chunk)
        yield from block


# ------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------
@dataclass
class Params:
    """Views into one flat buffer: W (I, m, n), b (I, n), and W2 (I, n, m) for ``abs``."""

    flat: Tensor
    W: Tensor
    b: Tensor
    W2: Tensor | None

    @classmethod
    def allocate(cls, model: str, inst: int, m: int, n: int, device: torch.device) -> Params:
        sizes = [inst * m * n, inst * n] + ([inst * n * m] if model == "abs" else [])
        flat = torch.zeros(sum(sizes), device=device)
        parts = flat.split(sizes)
        W2 = parts[2].view(inst, n, m) if model == "abs" else None
        return cls(flat, parts[0].view(inst, m, n), parts[1].view(inst, n), W2)

    def as_dict(self) -> dict[str, Tensor]:
        d = {"W": self.W, "b": self.b}
        if self.W2 is not None:
            d["W2"] = self.W2
        return d


def loss_and_grads(
    model: str,
    p: Params,
    g: Params,
    x: Tensor,
    importance: Tensor,
    hidden_l1: Tensor | None,
) -> Tensor:
    """Write d(loss)/d(params) into ``g`` and return the per-instance loss, (I,).

    loss_k = mean_b sum_i I_ki (y_kbi - y'_kbi)^2 + l1_k mean_b sum_j |h_kbj|, for the model
    kinds of :mod:`toymodel.models`. Instances are independent (the total is their sum).
    """
    B = x.shape[1]
    W, b = p.W, p.b
    pre = torch.bmm(x, W.transpose(1, 2))  # (I, B, m)
    h = pre.relu() if model in ("relu_hidden", "abs") else pre
    if model == "abs":
        assert p.W2 is not None
        z = torch.baddbmm(b[:, None, :], h, p.W2.transpose(1, 2))
    else:
        z = torch.baddbmm(b[:, None, :], h, W)
    out = z if model == "linear" else z.relu()
    diff = out - (x.abs() if model == "abs" else x)
    weighted = diff * importance[:, None, :]
    loss = torch.einsum("kbi,kbi->k", weighted, diff).div_(B)
    gz = weighted.mul_(2.0 / B)
    if model != "linear":
        gz.mul_(z > 0)
    torch.sum(gz, dim=1, out=g.b)
    if model == "abs":
        assert p.W2 is not None
        assert g.W2 is not None
        torch.bmm(gz.transpose(1, 2), h, out=g.W2)
        gh = torch.bmm(gz, p.W2)
    else:
        torch.bmm(h.transpose(1, 2), gz, out=g.W)  # decoder side of the tied weights
        gh = torch.bmm(gz, W.transpose(1, 2))
    if hidden_l1 is not None:
        loss += hidden_l1 * h.abs().sum(dim=(1, 2)) / B
        gh.add_(torch.sign(h).mul_((hidden_l1 / B)[:, None, None]))
    if model in ("relu_hidden", "abs"):
        gh.mul_(pre > 0)
    if model == "abs":
        torch.bmm(gh.transpose(1, 2), x, out=g.W)
    else:
        g.W.baddbmm_(gh.transpose(1, 2), x)  # encoder side
    return loss


# ------------------------------------------------------------------------------------------
# optimiser
# ------------------------------------------------------------------------------------------
class FlatAdamW:
    """``torch.optim.AdamW``'s arithmetic on one flat buffer, in a handful of fused ops."""

    def __init__(self, param: Tensor, betas: tuple[float, float], eps: float, weight_decay: float):
        self.param = param
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.denom = torch.empty_like(param)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0

    def step(self, grad: Tensor, lr: float) -> None:
        self.t += 1
        bc1 = 1.0 - self.beta1**self.t
        bc2_sqrt = math.sqrt(1.0 - self.beta2**self.t)
        self.param.mul_(1.0 - lr * self.weight_decay)
        self.exp_avg.lerp_(grad, 1.0 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
        torch.sqrt(self.exp_avg_sq, out=self.denom)
        self.denom.div_(bc2_sqrt).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, self.denom, value=-lr / bc1)


# ------------------------------------------------------------------------------------------
# the training loop
# ------------------------------------------------------------------------------------------
def _device(spec: Spec) -> torch.device:
    dev = torch.device(spec.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"spec.device={spec.device!r} but CUDA is not available here")
    return dev


def fit(
    spec: Spec,
    data: Iterator[Tensor] | None = None,
    on_step: Callable[[int, Params], None] | None = None,
) -> tuple[Params, np.ndarray, np.ndarray]:
    """Train ``spec``; return final params, loss_steps and loss_curve (windows of log_every).

    ``data`` overrides the input stream (tests feed the same batches to other trainers);
    ``on_step(t, params)`` is called after each update (for trajectory checks and dynamics).
    """
    dev = _device(spec)
    tc = spec.train
    init = models.initial_weights(spec)
    p = Params.allocate(spec.model, spec.instances, spec.m, spec.n, dev)
    g = Params.allocate(spec.model, spec.instances, spec.m, spec.n, dev)
    with torch.inference_mode():
        for name, view in p.as_dict().items():
            view.copy_(torch.from_numpy(init[name]))
    importance = torch.tensor(spec.importance_array(per_instance=True), dtype=torch.float32, device=dev)
    density = torch.tensor(spec.density_array(per_instance=True), dtype=torch.float32, device=dev)
    l1 = spec.hidden_l1_array(per_instance=True)
    hidden_l1 = torch.tensor(l1, dtype=torch.float32, device=dev) if np.any(l1 > 0) else None
    if data is None:
        data = batches(spec, density, torch_generator(spec, "torch-train", dev))
    opt = FlatAdamW(p.flat, tc.betas, tc.eps, tc.weight_decay)

    windows = math.ceil(tc.steps / tc.log_every)
    curve = torch.zeros(windows, spec.instances, dtype=torch.float64, device=dev)
    acc = torch.zeros(spec.instances, dtype=torch.float64, device=dev)
    steps_out = np.minimum((np.arange(windows) + 1) * tc.log_every, tc.steps)
    with torch.inference_mode():
        for t in range(tc.steps):
            x = next(data)
            loss = loss_and_grads(spec.model, p, g, x, importance, hidden_l1)
            acc += loss
            opt.step(g.flat, tc.lr * lr_factor(tc.schedule, t, tc.steps))
            if on_step is not None:
                on_step(t, p)
            if (t + 1) % tc.log_every == 0 or t + 1 == tc.steps:
                k = t // tc.log_every
                span = t + 1 - k * tc.log_every
                curve[k] = acc / span
                acc.zero_()
    return p, steps_out, curve.T.cpu().numpy()


def train(spec: Spec) -> Result:
    """The reference implementation (``--impl torch``)."""
    start = time.perf_counter()
    p, steps, curve = fit(spec)
    params = {k: v.detach().cpu().double().numpy().copy() for k, v in p.as_dict().items()}
    wall = time.perf_counter() - start
    return Result(
        spec=spec,
        W=params["W"],
        b=params["b"],
        W2=params.get("W2"),
        loss_steps=steps.astype(np.float64),
        loss_curve=curve,
        eval_loss=models.eval_loss(spec, params),
        implementation="torch",
        meta={
            "torch": torch.__version__,
            "numpy": np.__version__,
            "threads": torch.get_num_threads(),
            "device": spec.device,
            "train_seconds": wall,
            "steps_per_second": spec.train.steps / wall,
        },
    )
