"""An independent numpy implementation (``--impl numpy``): hand-derived gradients and its own
AdamW, no torch.

Its modules mirror the reference's: :mod:`~toymodel.numpy_impl.training` (the loop, and the entry
point :func:`~toymodel.numpy_impl.training.train`), :mod:`~toymodel.numpy_impl.gradients`,
:mod:`~toymodel.numpy_impl.optimiser` and :mod:`~toymodel.numpy_impl.sampling`; none of them imports
the reference, so the claims cross-check both.

It trains every instance of a spec (settings x restarts, setting-major) as one batched program
in float32, with the semantics the reference implementation has (CLAIMS.md, Conventions):

- init from :func:`toymodel.models.initial_weights` on its own stream ``(seed, "numpy-init", k)``
  (not the reference's: the two are independent samples at one seed); fresh data every step through
  :class:`~toymodel.numpy_impl.sampling.Sampler` (equal in distribution to
  :func:`toymodel.data.sample`, one uniform per entry), shard k of the instances (below) drawing
  from the stream ``(seed, "numpy-train", k)``;
- the loss of :func:`toymodel.models.loss` per instance (with the hidden L1 term), instances
  summed, so each instance's gradient is its own;
- AdamW with ``torch.optim.AdamW`` semantics on all parameters, the learning rate scaled by the
  spec's schedule;
- the loss curve is the mean training-minibatch loss (before each step's update) over windows of
  ``log_every`` steps; the held-out loss is the suite's to compute (:func:`toymodel.result.validate`).

Parameters and gradients each live in one flat buffer (``Trainer.theta``, ``Trainer.grad``, in
:mod:`~toymodel.numpy_impl.gradients`) with per-weight views, so the optimiser is a handful of
vector operations per step.

The instances are split into shards of at most
:data:`~toymodel.numpy_impl.gradients.SHARD_ENTRIES` batch entries (instances x n x batch, at least
one instance), each with its own sampler, random stream and work buffers: a
shard's batch is drawn and trained on while it is still in cache, and ``threads`` worker threads
share the shards (numpy releases the GIL in its loops and in BLAS, which runs on one thread
meanwhile): at paper scale several times faster than one block (`tox -e bench`, docs/performance.md).
The shards depend on the spec only, so results are
deterministic for a given seed, platform and BLAS whatever the thread count; float32 sums may
differ across BLAS builds.
"""
