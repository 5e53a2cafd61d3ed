"""The reference implementation (``--impl torch``): every instance trained as one batched torch program.

Its modules, one idea each:

- :mod:`~toymodel.reference.training`: the training loop (:func:`~toymodel.reference.training.fit`,
  :func:`~toymodel.reference.training.train`, the entry point) and its device and thread settings;
- :mod:`~toymodel.reference.gradients`: hand-derived loss gradients into reused buffers;
- :mod:`~toymodel.reference.optimiser`: AdamW on one flat buffer, and the learning-rate schedule;
- :mod:`~toymodel.reference.sampling`: the general sampler (feature groups, any device, given data);
- :mod:`~toymodel.reference.pipeline`: the CPU fast step, the instances split into runs, each
  sampled by :mod:`~toymodel.reference.dense` or :mod:`~toymodel.reference.sparse`;
- :mod:`~toymodel.reference.kernel`: the fused C kernel, its build and the calls into it (no torch).

Why it is fast (``benchmarks/``: ``pytest benchmarks --benchmark-only`` prints the ratios to the
plain loop), and why it is still faithful:

- **A fused C kernel** (:mod:`toymodel.reference.kernel.fused`, ``_fused.c``) for models with
  m * n <= 16384 on CPU: forward pass, loss and gradients in one pass over the batch, eight samples
  per vector, the inputs made from the sampler's 32-bit words on the fly, instances split over the
  torch thread count. Every step of the unfused path streams (instances, batch, n) tensors through
  memory 15-20 times; the kernel reads each sample once. Built on first use with the machine's C
  compiler (gcc or clang); without one (or with ``TOYMODEL_FUSED=0``) the unfused step runs. A
  result's ``meta`` records the path taken (``training_path``) and the build (``kernel``:
  compiler, version, flags). ``tests/test_fused.py`` and ``tests/test_impl_torch.py`` prove both
  equal to autograd.
- **Hand-derived gradients** (:func:`~toymodel.reference.gradients.loss_and_grads`) instead of
  autograd, into reused buffers; ``tests/test_impl_torch.py`` proves them equal to autograd to
  float32 rounding for every model kind. Small batched products go through numpy's matmul
  (:func:`~toymodel.reference.gradients.bmm`), several times faster than ``torch.bmm`` at these
  skinny shapes.
- **torch's fused AdamW kernel** on a single flat parameter buffer
  (:class:`~toymodel.reference.optimiser.FlatAdamW`), one call per step; trajectories over
  hundreds of steps are tested equal to ``torch.optim.AdamW``.
- **Fresh samples from numpy's SFC64 stream** (:mod:`~toymodel.reference.dense`,
  :mod:`~toymodel.reference.sparse`): one 32-bit word per input element, turned into "0 with
  probability 1 - p, else U[0, 1]" by one multiply-add and a clamp; at density <= 0.02 only the
  non-zeros are drawn, only the samples with a non-zero feature are computed, and the all-zero
  samples enter in closed form (their output is act(b), their gradient only on b). Instances are
  split into runs by density so that the densest one does not set the cost of all. Both samplers
  are tested equal in distribution to the canonical numpy sampler, and the sparse step equal to
  the dense one (``tests/test_sparse_step.py``). Correlated / anticorrelated groups, CUDA and
  caller-supplied ``data`` use :func:`~toymodel.reference.sampling.sample`.

Determinism: one numpy SFC64 stream per run, seeded from ``(spec.seed, "torch-train-sfc64")``
(torch Generator ``"torch-train"`` on the general path); the init is
:func:`toymodel.models.initial_weights` (shared with every implementation). The same spec gives
the same result on the same platform, thread count and torch/numpy versions. Matrix products may
differ in the last bits across thread counts and devices (blocking order), which is why the
regression baselines carry measured tolerances. The fused kernel's sums run in a fixed order
whatever the thread count; its last bits depend on the compiled code (FMA on CPUs with AVX2+FMA).

This package's ``__init__`` imports nothing: the kernel (:mod:`toymodel.reference.kernel`) is
torch-free, and the claims engine asks it for the build it records without loading torch.
"""
