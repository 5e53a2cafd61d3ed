"""How long the fast tier takes, as data: the whole fast tier (``pytest claims``, theory included)
run from an empty result cache for each implementation, its wall time, the verdicts and each
spec's training seconds, written to ``calibration/tier_times.json`` (one record per
implementation, the latest run replacing the earlier one) and shown by the generated page
``docs/timing.md`` (:mod:`toymodel.suite.docs`).

    python -m toymodel.suite.tiertime --impl torch-plain,numpy,torch [--jobs 2] [--seed 0]

The claims train through ``--executor processes:JOBS`` (one thread per training), as a user with
that many cores would run them; the machine should be otherwise idle while it runs.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import checkout_commit, claims_report
from .shipped import default_calibration_dir

FAST_TIER = "not slow"
FILE = "tier_times.json"


def _train_seconds(cache: Path) -> dict[str, float]:
    """Training seconds per spec name, from the headers of the results a run left in ``cache``."""
    out: dict[str, float] = {}
    for path in sorted(cache.glob("*.npz")):
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
        seconds = header.get("meta", {}).get("train_seconds")
        if isinstance(seconds, (int, float)):
            name = str(header.get("spec", {}).get("name", path.stem))
            out[name] = round(out.get(name, 0.0) + float(seconds), 1)
    return out


def time_tier(
    implementation: str,
    *,
    seed: int = 0,
    jobs: int = 2,
    select: str | None = None,
    timeout: float = 4 * 3600,
) -> dict[str, Any]:
    """Run the fast tier (or the claims ``select``, a pytest ``-k`` expression) for
    ``implementation`` from an empty cache; its record (see the module docstring)."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.monotonic()
        data, status = claims_report(
            implementation,
            seed,
            select=select,
            marker=FAST_TIER,
            extra=("--executor", f"processes:{jobs}"),
            env={"TOYMODEL_CACHE_DIR": cache},
            timeout=timeout,
        )
        wall = time.monotonic() - start
        trained = _train_seconds(Path(cache))
    records, theory = data["claims"], data.get("theory", [])
    verdicts = collections.Counter(r["verdict"] for r in records)
    return {
        "implementation": implementation,
        "seed": seed,
        "jobs": jobs,
        "wall_seconds": round(wall, 1),
        "exit_status": status,
        "verdicts": dict(sorted(verdicts.items())),
        "theory_verdicts": dict(sorted(collections.Counter(r["verdict"] for r in theory).items())),
        "failed": sorted(r["claim"] for r in records if r["verdict"] not in ("passed", "skipped", "xfailed")),
        "train_seconds": trained,
        "command": f"pytest claims -m '{FAST_TIER}' --impl {implementation} --claims-seed {seed} "
        f"--executor processes:{jobs}" + (f" -k '{select}'" if select else "") + " (empty result cache)",
        "date": datetime.date.today().isoformat(),
        "commit": checkout_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.machine(),
        },
    }


def load(path: Path | None = None) -> dict[str, Any]:
    """The recorded runs (``calibration/tier_times.json`` by default); none if the file is absent."""
    path = path or default_calibration_dir() / FILE
    return json.loads(path.read_text()) if path.exists() else {"runs": {}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", default="torch-plain,numpy,torch", help="comma-separated implementations")
    ap.add_argument("--seed", type=int, default=0, help="claims seed")
    ap.add_argument("--jobs", type=int, default=2, help="training processes (one thread each)")
    ap.add_argument("--out", type=Path, default=None, help=f"default: calibration/{FILE}")
    args = ap.parse_args(argv)
    out: Path = args.out or default_calibration_dir() / FILE
    data = load(out)
    for impl in [s for s in args.impl.split(",") if s]:
        record = time_tier(impl, seed=args.seed, jobs=args.jobs)
        data["runs"][impl] = record
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(
            f"{impl}: {record['wall_seconds'] / 60:.1f} min, verdicts {record['verdicts']}, "
            f"exit {record['exit_status']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
