"""Results: what an implementation returns, as plain float64 numpy, validated.

This is the line no torch type crosses. :func:`validate` is the implementation contract: any
implementation's output is checked here, and a wrong shape, dtype, a NaN or a missing field is
reported as :class:`ContractError` naming the implementation, the field and the problem.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .spec import Spec

__all__ = ["ContractError", "Result", "load", "save", "validate"]


class ContractError(ValueError):
    """An implementation returned something that breaks the result contract."""


@dataclass(frozen=True, eq=False)
class Result:
    """Trained weights and curves of every instance of ``spec``.

    Fields (I = spec.instances, K = logged points):
        W: (I, m, n); b: (I, n); W2: (I, n, m) for ``abs`` models, else None.
        loss_steps: (K,) the steps at which the training loss was logged (increasing).
        loss_curve: (I, K) training loss per instance at those steps.
        eval_loss: (I,) held-out loss per instance as the implementation computed it.
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


_FIELDS = ("W", "b", "loss_steps", "loss_curve", "eval_loss", "W2")


def _expected_shapes(spec: Spec, k: int) -> dict[str, tuple[int, ...]]:
    i, m, n = spec.instances, spec.m, spec.n
    shapes = {"W": (i, m, n), "b": (i, n), "loss_steps": (k,), "loss_curve": (i, k), "eval_loss": (i,)}
    if spec.model == "abs":
        shapes["W2"] = (i, n, m)
    return shapes


def validate(raw: object, spec: Spec, implementation: str) -> Result:
    """Check an implementation's output against the contract and return a clean Result.

    Accepts a :class:`Result` or a mapping with the fields above. Arrays are converted to
    float64; anything non-numeric, mis-shaped, non-finite or missing raises ContractError.
    """
    who = f"implementation {implementation!r}"
    if isinstance(raw, Result):
        data: dict[str, Any] = {f: getattr(raw, f) for f in _FIELDS}
        meta = dict(raw.meta)
    elif isinstance(raw, Mapping):
        data = dict(raw)
        meta = dict(data.get("meta") or {})
    else:
        raise ContractError(f"{who} returned {type(raw).__name__}; expected a Result or a mapping "
                            f"with fields {list(_FIELDS[:5])}")
    steps = data.get("loss_steps")
    if steps is None:
        raise ContractError(f"{who}: result field 'loss_steps' is missing")
    try:
        k = int(np.shape(steps)[0]) if np.ndim(steps) == 1 else -1
    except (TypeError, IndexError):
        k = -1
    shapes = _expected_shapes(spec, k)
    clean: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        value = data.get(name)
        if value is None:
            raise ContractError(f"{who}: result field {name!r} is missing (expected shape {shape})")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ContractError(f"{who}: result field {name!r} is not numeric: {exc}") from None
        if arr.shape != shape or (name == "loss_steps" and k < 1):
            raise ContractError(f"{who}: result field {name!r} has shape {arr.shape}, "
                                f"expected {shape if k >= 1 else '(K,) with K >= 1'}")
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise ContractError(f"{who}: result field {name!r} holds a non-finite value "
                                f"({arr[tuple(bad)]}) at index {tuple(int(x) for x in bad)}")
        clean[name] = arr
    if k > 1 and np.any(np.diff(clean["loss_steps"]) <= 0):
        raise ContractError(f"{who}: result field 'loss_steps' must be strictly increasing")
    if spec.model != "abs" and data.get("W2") is not None:
        raise ContractError(f"{who}: result field 'W2' is only for 'abs' models, not {spec.model!r}")
    for arr in clean.values():
        arr.setflags(write=False)
    return Result(
        spec=spec, W=clean["W"], b=clean["b"], W2=clean.get("W2"),
        loss_steps=clean["loss_steps"], loss_curve=clean["loss_curve"],
        eval_loss=clean["eval_loss"], implementation=implementation, meta=meta,
    )


def save(result: Result, path: str | Path) -> None:
    """Write a result to ``.npz`` with its spec and meta embedded as JSON (atomic rename)."""
    path = Path(path)
    arrays = {f: getattr(result, f) for f in _FIELDS if getattr(result, f) is not None}
    header = {"spec": result.spec.to_dict(), "implementation": result.implementation,
              "meta": dict(result.meta)}
    buf = io.BytesIO()
    np.savez(buf, header=np.array(json.dumps(header, default=str)), **arrays)
    tmp = path.with_name(f".{path.name}.{id(buf)}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def load(path: str | Path) -> Result:
    """Read a result written by :func:`save`; the arrays are re-validated."""
    with np.load(Path(path), allow_pickle=False) as f:
        header = json.loads(str(f["header"]))
        data: dict[str, Any] = {k: f[k] for k in f.files if k != "header"}
    spec = Spec.from_dict(header["spec"])
    data["meta"] = header.get("meta", {})
    return validate(data, spec, header.get("implementation", "unknown"))
