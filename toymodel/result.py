"""Results: what an implementation returns, as plain float64 numpy, validated and scored.

This is the line no torch type crosses. :func:`validate` is the implementation contract: any
implementation's output is checked here, and a wrong shape, dtype, a NaN or a missing field is
reported as :class:`ContractError` naming the implementation, the field and the problem.

The suite judges with its own numbers only: :func:`validate` recomputes every instance's held-out
loss on the spec's fixed sample (:func:`toymodel.models.eval_loss_and_se`), and that is the
``eval_loss`` every claim ranks restarts and checks losses with. A held-out loss the
implementation reports about itself is optional; it is kept as ``reported_eval_loss`` and compared
with the recomputation (:func:`eval_loss_disagreement`), never used for a verdict.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .models import eval_loss_and_se
from .spec import Spec

__all__ = [
    "ContractError",
    "Result",
    "eval_loss_disagreement",
    "expected_loss_steps",
    "load",
    "save",
    "validate",
]

#: a reported held-out loss further than this many standard errors of the difference from the
#: suite's recomputation is reported (the implementation may have scored on a sample of its own,
#: assumed at least REPORTED_SAMPLES_MIN samples, so the difference's standard error is
#: se * sqrt(1 + eval_samples / REPORTED_SAMPLES_MIN))
REPORTED_SE_TOL = 6.0
REPORTED_SAMPLES_MIN = 4096


class ContractError(ValueError):
    """An implementation returned something that breaks the result contract."""


@dataclass(frozen=True, eq=False)
class Result:
    """Trained weights and curves of every instance of ``spec``.

    Fields (I = spec.instances, K = logged points):
        W: (I, m, n); b: (I, n); W2: (I, n, m) for ``abs`` models, else None.
        loss_steps: (K,) the steps at which the training loss was logged (increasing).
        loss_curve: (I, K) training loss per instance at those steps.
        eval_loss: (I,) held-out loss per instance, recomputed by the suite on the spec's fixed
            sample (the only loss claims use).
        eval_loss_se: (I,) standard error of ``eval_loss``.
        reported_eval_loss: (I,) the held-out loss the implementation reported, if any (compared
            with ``eval_loss`` by :func:`eval_loss_disagreement`, never used for a verdict).
        implementation: the name the implementation was selected by.
        meta: free-form provenance (versions, threads, wall time).
    """

    spec: Spec
    W: np.ndarray
    b: np.ndarray
    loss_steps: np.ndarray
    loss_curve: np.ndarray
    eval_loss: np.ndarray
    W2: np.ndarray | None = None
    implementation: str = "unknown"
    meta: Mapping[str, Any] = field(default_factory=dict)
    eval_loss_se: np.ndarray | None = None
    reported_eval_loss: np.ndarray | None = None

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The model weights by name, as :mod:`toymodel.models` takes them."""
        p = {"W": self.W, "b": self.b}
        if self.W2 is not None:
            p["W2"] = self.W2
        return p

    def by_setting(self, array: np.ndarray) -> np.ndarray:
        """Reshape a per-instance array (I, ...) to (settings, restarts, ...)."""
        return np.asarray(array).reshape(self.spec.settings, self.spec.restarts, *np.shape(array)[1:])


#: the fields an implementation returns ("eval_loss" optional; "W2" only for ``abs`` models)
_FIELDS = ("W", "b", "loss_steps", "loss_curve", "eval_loss", "W2")
_STORED = ("W", "b", "W2", "loss_steps", "loss_curve", "eval_loss", "eval_loss_se", "reported_eval_loss")


def expected_loss_steps(spec: Spec) -> np.ndarray:
    """The logged steps the contract asks for: the end of every ``log_every`` window,
    ``min((k + 1) * log_every, steps)`` for k = 0 .. ceil(steps / log_every) - 1."""
    every, steps = spec.train.log_every, spec.train.steps
    windows = math.ceil(steps / every)
    return np.minimum((np.arange(windows) + 1) * every, steps).astype(np.float64)


def _expected_shapes(spec: Spec, k: int) -> dict[str, tuple[int, ...]]:
    i, m, n = spec.instances, spec.m, spec.n
    shapes = {"W": (i, m, n), "b": (i, n), "loss_steps": (k,), "loss_curve": (i, k), "eval_loss": (i,)}
    if spec.model == "abs":
        shapes["W2"] = (i, n, m)
    return shapes


def _array(who: str, name: str, value: object, shape: tuple[int, ...], *, finite: bool = True) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ContractError(f"{who}: result field {name!r} is not numeric: {exc}") from None
    if arr.shape != shape:
        raise ContractError(f"{who}: result field {name!r} has shape {arr.shape}, expected {shape}")
    if finite and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ContractError(
            f"{who}: result field {name!r} holds a non-finite value "
            f"({arr[tuple(bad)]}) at index {tuple(int(x) for x in bad)}"
        )
    arr.setflags(write=False)
    return arr


def _checked_fields(data: Mapping[str, Any], spec: Spec, who: str) -> dict[str, np.ndarray]:
    """The contract's fields as read-only float64 arrays; ContractError on the first problem.
    ``eval_loss`` is optional and may hold any numbers (it is only compared, never used)."""
    want = expected_loss_steps(spec)
    shapes = _expected_shapes(spec, len(want))
    clean: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        value = data.get(name)
        if value is None:
            if name == "eval_loss":
                continue
            raise ContractError(f"{who}: result field {name!r} is missing (expected shape {shape})")
        clean[name] = _array(who, name, value, shape, finite=name != "eval_loss")
        if name == "loss_steps" and not np.array_equal(clean[name], want):
            raise ContractError(
                f"{who}: result field 'loss_steps' is {_brief(clean[name])}, expected {_brief(want)} "
                f"(the end of every train.log_every = {spec.train.log_every} window of train.steps = "
                f"{spec.train.steps})"
            )
    if spec.model != "abs" and data.get("W2") is not None:
        raise ContractError(f"{who}: result field 'W2' is only for 'abs' models, not {spec.model!r}")
    return clean


def _brief(arr: np.ndarray) -> str:
    return np.array2string(arr, precision=6, separator=", ", threshold=6, edgeitems=2)


def validate(raw: object, spec: Spec, implementation: str) -> Result:
    """Check an implementation's output against the contract and return a Result scored by the
    suite (``eval_loss`` recomputed on the spec's held-out sample).

    Accepts a :class:`Result` or a mapping with the fields W, b, loss_steps, loss_curve, W2 (``abs``
    models only) and, optionally, eval_loss. Arrays are converted to float64; anything
    non-numeric, mis-shaped, non-finite or missing raises ContractError naming the implementation
    and the field; ``loss_steps`` must be exactly :func:`expected_loss_steps`.
    """
    who = f"implementation {implementation!r}"
    if isinstance(raw, Result):
        data: dict[str, Any] = {f: getattr(raw, f) for f in _FIELDS}
        meta = dict(raw.meta)
    elif isinstance(raw, Mapping):
        data = dict(raw)
        meta = data.get("meta") or {}
        if not isinstance(meta, Mapping):
            raise ContractError(f"{who}: result field 'meta' must be a mapping, not {type(meta).__name__}")
        meta = dict(meta)
    else:
        raise ContractError(
            f"{who} returned {type(raw).__name__}; expected a Result or a mapping "
            f"with fields {list(_FIELDS[:4])} (and 'W2' for abs models)"
        )
    if data.get("loss_steps") is None:
        raise ContractError(f"{who}: result field 'loss_steps' is missing")
    clean = _checked_fields(data, spec, who)
    params = {k: clean[k] for k in spec.model_weights}
    suite, se = eval_loss_and_se(spec, params)
    for arr in (suite, se):
        arr.setflags(write=False)
    return Result(
        spec=spec,
        W=clean["W"],
        b=clean["b"],
        W2=clean.get("W2"),
        loss_steps=clean["loss_steps"],
        loss_curve=clean["loss_curve"],
        eval_loss=suite,
        eval_loss_se=se,
        reported_eval_loss=clean.get("eval_loss"),
        implementation=implementation,
        meta=meta,
    )


def eval_loss_disagreement(result: Result) -> str | None:
    """One line when the held-out loss the implementation reported is impossible (negative or
    non-finite) or further from the suite's recomputation than sampling explains (more than
    ``REPORTED_SE_TOL`` standard errors of the difference, see :data:`REPORTED_SAMPLES_MIN`); else None.
    Names the implementation, the spec, the first offending instance and both values."""
    reported, suite = result.reported_eval_loss, result.eval_loss
    if reported is None:
        return None
    se = result.eval_loss_se if result.eval_loss_se is not None else np.zeros_like(suite)
    spec = result.spec
    tol = REPORTED_SE_TOL * se * math.sqrt(1.0 + spec.eval_samples / REPORTED_SAMPLES_MIN)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(reported) | (reported < 0) | (np.abs(reported - suite) > tol)
    if not bad.any():
        return None
    k = int(np.flatnonzero(bad)[0])
    return (
        f"implementation {result.implementation!r} reported held-out losses the suite does not "
        f"confirm on spec {spec.hash()} ({spec.name or spec.model}): instance {k} reported "
        f"{reported[k]:.6g}, recomputed {suite[k]:.6g} ± {se[k]:.2g} (tolerance {tol[k]:.2g}); "
        f"{int(bad.sum())} of {bad.size} instances differ. The suite's numbers are used."
    )


def save(result: Result, path: str | Path) -> None:
    """Write a result to ``.npz`` with its spec and meta embedded as JSON (atomic rename)."""
    path = Path(path)
    arrays = {f: getattr(result, f) for f in _STORED if getattr(result, f) is not None}
    header = {
        "spec": result.spec.to_dict(),
        "implementation": result.implementation,
        "meta": dict(result.meta),
    }
    buf = io.BytesIO()
    np.savez(buf, header=np.array(json.dumps(header, default=str)), **arrays)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(buf)}.tmp")
    try:
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
    except BaseException:  # a failed write (disk full) leaves no partial file behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def load(path: str | Path) -> Result:
    """Read a result written by :func:`save`; the arrays are re-checked against the contract
    (the stored suite losses are trusted: :func:`save` wrote what :func:`validate` computed)."""
    # the file is opened here so that it is closed whatever np.load makes of it (np.load leaks the
    # handle of a file it cannot read as a zip archive)
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # np.load would try it as .npy or pickle data
            raise ValueError(f"{Path(path).name} is not a result archive (an .npz zip file)")
        fh.seek(0)
        with np.load(fh, allow_pickle=False) as f:
            header = json.loads(str(f["header"]))
            data: dict[str, Any] = {k: f[k] for k in f.files if k != "header"}
    spec = Spec.from_dict(header["spec"])
    implementation = str(header.get("implementation", "unknown"))
    who = f"stored result {Path(path).name}"
    suite = data.pop("eval_loss", None)
    if suite is None or data.get("eval_loss_se") is None:
        raise ContractError(f"{who}: no suite held-out loss stored")
    clean = _checked_fields({**data, "eval_loss": None}, spec, who)
    shape = (spec.instances,)
    extra = {
        k: _array(who, k, data[k], shape, finite=k != "reported_eval_loss")
        for k in ("eval_loss_se", "reported_eval_loss")
        if data.get(k) is not None
    }
    return Result(
        spec=spec,
        W=clean["W"],
        b=clean["b"],
        W2=clean.get("W2"),
        loss_steps=clean["loss_steps"],
        loss_curve=clean["loss_curve"],
        eval_loss=_array(who, "eval_loss", suite, shape),
        implementation=implementation,
        meta=header.get("meta", {}),
        **extra,
    )
