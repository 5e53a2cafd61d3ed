"""Make the mutant x claim kill table: every mutant of ``tests/mutants.py`` (and the reference
implementation, for the false-alarm rate at the same seeds) against the whole fast tier at several
claims seeds, written to ``tests/data/kill_table.json`` and read by ``tests/test_mutants.py``.

    python tests/killtable.py --seeds 0-4 [--jobs 2] [--only relu_dropped,bias_frozen]
    python tests/killtable.py --seeds 0-4 --claims privileged_basis_regimes   # refresh one column

Incremental: runs already in the table are kept unless ``--redo`` (or ``--claims``, which reruns
the selected claims, a pytest ``-k`` expression, and replaces their columns in every row it
touches, keeping the other claims' verdicts); trained results come from the shared result cache,
so a rerun retrains nothing. Each run is a ``pytest claims`` subprocess with
``--impl mutants:<name> --claims-seed S --claims-report``; a claim counts as failed when any of its
tests failed (a claim failure or a broken implementation), and a mutant is killed at a seed when
any claim failed there.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from toymodel.suite.calibration import parse_seeds, run_claims

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
TABLE = TESTS / "data" / "kill_table.json"
REFERENCE = "torch"


def run_one(
    name: str, seed: int, threads: int, select: str | None = None, old: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Verdict per claim id of one implementation at one claims seed (fast tier, no theory); with
    ``select``, only those claims are run and ``old``'s other claims are kept."""
    impl = name if name == REFERENCE else f"mutants:{name}"
    pythonpath = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    run = run_claims(impl, seed, select=select, threads=threads, env={"PYTHONPATH": pythonpath})
    if select and not run:
        raise SystemExit(f"--claims {select!r} selects no claim")
    verdicts = {claim: r["verdict"] for claim, r in run.items()}
    failed_checks = [
        f"{claim}:{key}" for claim, r in run.items() for key, c in r["checks"].items() if not c["passed"]
    ]
    if select and old is not None:
        verdicts = {**old["verdicts"], **verdicts}
        failed_checks += [c for c in old["failed_checks"] if c.split(":")[0] not in run]
    failed_checks.sort()
    return {
        "verdicts": verdicts,
        "failed_checks": failed_checks,
        "killed": any(v == "failed" for v in verdicts.values()),
    }


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(TESTS))
    from mutants import MUTANTS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-4", help="claims seeds, e.g. 0-4 or 0,3,7")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--only", default="", help="comma-separated mutant names (default: all, and the reference)"
    )
    ap.add_argument("--redo", action="store_true", help="rerun runs already in the table")
    ap.add_argument(
        "--claims",
        default="",
        help="rerun only these claims (pytest -k) in the selected runs, replacing their columns",
    )
    args = ap.parse_args(argv)
    names = [REFERENCE, *(m.name for m in MUTANTS)]
    if args.only:
        names = [n for n in args.only.split(",") if n]
    table = json.loads(TABLE.read_text()) if TABLE.exists() else {}
    runs = table.setdefault("runs", {})
    todo = [
        (n, s)
        for n in names
        for s in parse_seeds(args.seeds)
        if args.redo or args.claims or str(s) not in runs.get(n, {})
    ]
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    print(f"{len(todo)} runs, {args.jobs} at a time, {threads} thread(s) each", flush=True)
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            pool.submit(run_one, n, s, threads, args.claims or None, runs.get(n, {}).get(str(s))): (n, s)
            for n, s in todo
        }
        for fut in cf.as_completed(futures):
            n, s = futures[fut]
            out = fut.result()
            runs.setdefault(n, {})[str(s)] = out
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            table.update(
                {
                    "commit": commit,
                    "date": datetime.date.today().isoformat(),
                    "mutants": {
                        m.name: {"mistake": m.mistake, "touches": m.touches, "harmless": m.harmless}
                        for m in MUTANTS
                    },
                }
            )
            TABLE.parent.mkdir(exist_ok=True)
            TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
            killers = [k for k, v in out["verdicts"].items() if v == "failed"]
            print(
                f"{n} seed {s}: " + (f"killed by {', '.join(killers)}" if killers else "passed every claim"),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
