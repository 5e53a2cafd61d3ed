"""Regression baselines: the reference implementation's own numbers, with provenance.

One JSON file per claim, ``baselines/<claim_id>.json``::

    {"claim": "...", "provenance": {spec hashes, package/torch/numpy versions, threads, seed, date},
     "values": {"name": number or list of numbers, ...}}

A missing or malformed file is a failure with a message saying how to regenerate it; files are
only written by an explicit ``--regen-baselines``. Tolerances live in the claim tests, next to
the measurement that calibrated them.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, fused

__all__ = ["BaselineError", "BaselineStore", "provenance"]


class BaselineError(AssertionError):
    """A baseline is missing, malformed, or the value drifted beyond its tolerance."""


def provenance(spec_hashes: list[str], seed: int) -> dict[str, Any]:
    """Where a baseline came from: enough to tell why it may differ on another machine."""
    info: dict[str, Any] = {
        "spec_hashes": sorted(set(spec_hashes)),
        "seed": seed,
        "toymodel": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - installed without the torch extra
        pass
    info["kernel"] = fused.build_info()  # the training path: kernel, compiler, version, flags
    return info


def _as_number_list(value: object) -> list[float]:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    return [float(v) for v in arr]


class BaselineStore:
    """Reads and (with ``regen``) writes ``<root>/<claim_id>.json``."""

    def __init__(self, root: Path, regen: bool = False):
        self.root = Path(root)
        self.regen = regen
        self._pending: dict[str, dict[str, Any]] = {}

    def _file(self, claim_id: str) -> Path:
        return self.root / f"{claim_id}.json"

    def load(self, claim_id: str) -> Mapping[str, Any]:
        path = self._file(claim_id)
        if not path.exists():
            raise BaselineError(f"[{claim_id}] baseline file {path} is missing: run the reference "
                                "implementation with --regen-baselines to create it")
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BaselineError(f"[{claim_id}] baseline file {path} is malformed: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
            raise BaselineError(f"[{claim_id}] baseline file {path} is malformed: no 'values' object")
        return data

    def check(self, claim_id: str, name: str, value: object, *, rtol: float, atol: float,
              spec_hashes: list[str], seed: int) -> str:
        """Compare ``value`` with the stored one (or record it under regen); return a summary."""
        measured = _as_number_list(value)
        if self.regen:
            entry = self._pending.setdefault(claim_id, {"values": {}, "hashes": []})
            entry["values"][name] = measured if np.ndim(np.asarray(value)) else measured[0]
            entry["hashes"].extend(spec_hashes)
            self._write(claim_id, seed)
            return f"{name}: recorded {measured}"
        data = self.load(claim_id)
        if name not in data["values"]:
            raise BaselineError(f"[{claim_id}] baseline {self._file(claim_id)} has no value {name!r}: "
                                "regenerate with --regen-baselines")
        try:
            stored = _as_number_list(data["values"][name])
        except (TypeError, ValueError):
            raise BaselineError(f"[{claim_id}] baseline value {name!r} is not numeric: "
                                f"{data['values'][name]!r}") from None
        if len(stored) != len(measured):
            raise BaselineError(f"[{claim_id}] baseline {name!r} has {len(stored)} numbers, "
                                f"the run gave {len(measured)}")
        bad = [(i, s, m) for i, (s, m) in enumerate(zip(stored, measured, strict=True))
               if not (math.isfinite(m) and abs(m - s) <= atol + rtol * abs(s))]
        if bad:
            i, s, m = bad[0]
            raise BaselineError(
                f"[{claim_id}] regression: {name}[{i}] = {m:.6g}, baseline {s:.6g} "
                f"(rtol {rtol:g}, atol {atol:g}; {len(bad)} of {len(stored)} entries outside)")
        return f"{name}: within rtol {rtol:g}/atol {atol:g} of the baseline"

    def _write(self, claim_id: str, seed: int) -> None:
        entry = self._pending[claim_id]
        self.root.mkdir(parents=True, exist_ok=True)
        payload = {"claim": claim_id, "provenance": provenance(entry["hashes"], seed),
                   "values": entry["values"]}
        path = self._file(claim_id)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
