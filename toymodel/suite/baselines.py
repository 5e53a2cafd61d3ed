"""Regression baselines: the reference implementation's own numbers, with provenance.

One JSON file per claim, ``baselines/<claim_id>.json``::

    {"claim": "...", "provenance": {spec hashes, package/torch/numpy versions, threads, seed, date,
                                    kernel: training path, compiler, its version and flags},
     "values": {"name": number or list of numbers, ...},
     "specs": {"name": [hashes of the specs the value was computed from], ...}}

A missing or malformed file is a failure with a message saying how to regenerate it; so is a value
computed from other specs than the run's (the experiment changed: the stored number no longer
describes it). Files are only written by an explicit ``--regen-baselines``, which lists every
value it changes, old against new (:attr:`BaselineStore.changes`). Tolerances live in the claim tests, next to
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

from .. import __version__
from ..reference.kernel import fused

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
        self._before: dict[str, Mapping[str, Any]] = {}
        #: under ``regen``: one line per value written that differs from the file's old one
        self.changes: list[str] = []

    def _file(self, claim_id: str) -> Path:
        return self.root / f"{claim_id}.json"

    def load(self, claim_id: str) -> Mapping[str, Any]:
        path = self._file(claim_id)
        if not path.exists():
            raise BaselineError(
                f"[{claim_id}] baseline file {path} is missing: run the reference "
                "implementation with --regen-baselines to create it"
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BaselineError(f"[{claim_id}] baseline file {path} is malformed: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
            raise BaselineError(f"[{claim_id}] baseline file {path} is malformed: no 'values' object")
        return data

    def check(
        self,
        claim_id: str,
        name: str,
        value: object,
        *,
        rtol: float,
        atol: float,
        spec_hashes: list[str],
        seed: int,
    ) -> str:
        """Compare ``value`` with the stored one (or record it under regen); return a summary."""
        measured = _as_number_list(value)
        hashes = sorted(set(spec_hashes))
        if self.regen:
            self._note_change(claim_id, name, measured, hashes)
            # the file's other values stay: regenerating some of a claim's tests (one parameter,
            # a -k selection) must not drop the baselines of the others
            old = self._before[claim_id]
            entry = self._pending.setdefault(
                claim_id,
                {"values": dict(old.get("values", {})), "specs": dict(old.get("specs") or {}), "hashes": []},
            )
            entry["values"][name] = measured if np.ndim(np.asarray(value)) else measured[0]
            entry["specs"][name] = hashes
            entry["hashes"].extend(spec_hashes)
            self._write(claim_id, seed)
            return f"{name}: recorded {measured}"
        data = self.load(claim_id)
        if name not in data["values"]:
            raise BaselineError(
                f"[{claim_id}] baseline {self._file(claim_id)} has no value {name!r}: "
                "regenerate with --regen-baselines"
            )
        made_from = (data.get("specs") or {}).get(name)
        if made_from is None:
            raise BaselineError(
                f"[{claim_id}] baseline {self._file(claim_id)} does not record which specs "
                f"{name!r} came from: regenerate with --regen-baselines"
            )
        if sorted(made_from) != hashes:
            raise BaselineError(
                f"[{claim_id}] baseline {name!r} in {self._file(claim_id)} was computed "
                f"from specs {sorted(made_from)}, this run used {hashes}: the experiment "
                "changed, so the stored number does not describe it; regenerate with "
                "--regen-baselines"
            )
        try:
            stored = _as_number_list(data["values"][name])
        except (TypeError, ValueError):
            raise BaselineError(
                f"[{claim_id}] baseline value {name!r} is not numeric: {data['values'][name]!r}"
            ) from None
        if len(stored) != len(measured):
            raise BaselineError(
                f"[{claim_id}] baseline {name!r} has {len(stored)} numbers, the run gave {len(measured)}"
            )
        bad = [
            (i, s, m)
            for i, (s, m) in enumerate(zip(stored, measured, strict=True))
            if not (math.isfinite(m) and abs(m - s) <= atol + rtol * abs(s))
        ]
        if bad:
            i, s, m = bad[0]
            raise BaselineError(
                f"[{claim_id}] regression: {name}[{i}] = {m:.6g}, baseline {s:.6g} "
                f"(rtol {rtol:g}, atol {atol:g}; {len(bad)} of {len(stored)} entries outside)"
            )
        return f"{name}: within rtol {rtol:g}/atol {atol:g} of the baseline"

    def _note_change(self, claim_id: str, name: str, measured: list[float], hashes: list[str]) -> None:
        """Record, for the regeneration summary, how ``name`` differs from the file's old value."""
        if claim_id not in self._before:
            try:
                self._before[claim_id] = self.load(claim_id)
            except BaselineError:
                self._before[claim_id] = {"values": {}}
        old = self._before[claim_id]
        where = f"{self._file(claim_id).name} {name}"
        if name not in old.get("values", {}):
            self.changes.append(f"{where}: new, {_numbers(measured)}")
            return
        try:
            before = _as_number_list(old["values"][name])
        except (TypeError, ValueError):
            before = []
        if before != measured:
            self.changes.append(f"{where}: {_numbers(before)} -> {_numbers(measured)}")
        if sorted((old.get("specs") or {}).get(name) or []) != hashes:
            self.changes.append(f"{where}: now computed from specs {hashes}")

    def _write(self, claim_id: str, seed: int) -> None:
        entry = self._pending[claim_id]
        self.root.mkdir(parents=True, exist_ok=True)
        payload = {
            "claim": claim_id,
            "provenance": provenance(entry["hashes"], seed),
            "values": entry["values"],
            "specs": entry["specs"],
        }
        path = self._file(claim_id)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)


def _numbers(values: list[float]) -> str:
    text = ", ".join(f"{v:.6g}" for v in values)
    return text if len(values) == 1 else f"[{text}]"
