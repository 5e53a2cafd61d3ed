"""Calibration as data: the fast tier run at many seeds for the bundled implementations, every
check's measured value kept per claim in ``calibration/<claim_id>.json``.

    python -m toymodel.suite.calibration --impl torch,numpy --seeds 0-19 [-k EXPR] [--jobs 2]
    tox -e calibrate -- --seeds 0-19

Each (implementation, seed) run is one ``pytest --pyargs toymodel.claims`` subprocess writing a
claims report; runs go in parallel over the machine's cores (one thread each), sharing the result
cache, so trained results are reused and a rerun retrains nothing. Incremental: runs already in a
calibration file are kept (``--redo`` repeats them), so the data can grow over several sittings; a
run is done when every calibration file holds it.

Per check a calibration file records the value at every seed and implementation, the pass count
with a Clopper-Pearson 95% interval on the pass rate, the mean and standard deviation of the value
and how many standard deviations the mean sits from the check's bound (``margin_sd``); per claim,
the same pass statistics, and the commit and date of the latest run.

Each check is judged by one yardstick (``yardstick``: kind, figure, met), the one its values allow:

- ``margin_sd``: the mean at least :data:`MARGIN_SD` standard deviations inside the bound;
- ``binomial``, for a count of successes among independent tries (``Claim.check(trials=k)``: say
  "at least one of eight restarts shows a peak"): the per-try success rate pooled over every run,
  its Clopper-Pearson interval, and the probability that ``k`` tries at the interval's lower end
  fall short of the bound, at most :data:`TAIL` (the one-sided tail beyond 3 standard deviations);
- ``exact``: the value never varied (a structural property, e.g. "no restart pairs two partners"),
  so no spread exists to measure a margin in; the pass count is the evidence.

``python -m toymodel.suite.calibration --resummarise`` recomputes every file's statistics from its
runs (after a change to this module) without running anything. A check evaluated several
times in one run (per level, per restart) counts as passed when every evaluation passed, with the
value of the evaluation closest to its bound.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scipy import stats

from .cache import file_lock
from .shipped import default_calibration_dir, shipped_baselines

__all__ = ["check_summary", "clopper_pearson", "parse_seeds", "run_claims", "summarise", "update"]

FAILED = {"failed", "implementation-error"}
#: the distance, in standard deviations of the calibration spread, a check's mean keeps from its bound
MARGIN_SD = 3.0
#: the largest failure probability of a count check at the lower end of its per-try rate: the
#: normal distribution's one-sided tail beyond MARGIN_SD
TAIL = float(stats.norm.sf(MARGIN_SD))
#: the fast tier's implementation claims (theory and paper-scale tests excluded)
FAST_TIER = "not slow and not theory"


def parse_seeds(text: str) -> list[int]:
    """``"0-4"``, ``"0,3,7"`` or ``"0-4,10"`` as a list of seeds."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def clopper_pearson(passed: int, runs: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided ``level`` interval for a binomial proportion (``passed`` of ``runs``)."""
    if runs == 0:
        return 0.0, 1.0
    alpha = 1.0 - level
    lo = 0.0 if passed == 0 else float(stats.beta.ppf(alpha / 2, passed, runs - passed + 1))
    hi = 1.0 if passed == runs else float(stats.beta.ppf(1 - alpha / 2, passed + 1, runs - passed))
    return lo, hi


def claims_command(
    implementation: str,
    seed: int,
    report: Path,
    *,
    marker: str = FAST_TIER,
    select: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``pytest`` command line of one claims run in a subprocess: the installed claims, the
    shipped baselines, a JSON report at ``report``, quiet and without pytest's own cache."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "toymodel.claims",
        "-q",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        "-m",
        marker,
        "--impl",
        implementation,
        "--claims-seed",
        str(seed),
        "--claims-report",
        str(report),
        "--tb=no",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "--baselines-dir",
        str(shipped_baselines()),
        *extra,
    ]
    return cmd + (["-k", select] if select else [])


def claims_report(
    implementation: str,
    seed: int,
    *,
    select: str | None = None,
    marker: str = FAST_TIER,
    extra: Sequence[str] = (),
    threads: int = 1,
    env: Mapping[str, str] | None = None,
    timeout: float = 4 * 3600,
) -> tuple[dict[str, Any], int]:
    """Run one claims run in a subprocess (:func:`claims_command`, ``threads`` for its BLAS and
    torch, ``env`` on top of this process's, without ``$TOYMODEL_IMPL`` or ``$PYTEST_ADDOPTS``):
    its JSON report and exit status. RuntimeError, with the output's tail, when it wrote none."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = claims_command(implementation, seed, report, marker=marker, select=select, extra=extra)
        full_env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": str(threads)}
        full_env.pop("TOYMODEL_IMPL", None)
        full_env.pop("PYTEST_ADDOPTS", None)
        proc = subprocess.run(cmd, cwd=tmp, env=full_env, capture_output=True, text=True, timeout=timeout)
        if not report.exists():
            raise RuntimeError(
                f"{implementation} seed {seed}: no report (exit {proc.returncode})\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return json.loads(report.read_text()), proc.returncode


def run_claims(
    implementation: str,
    seed: int,
    *,
    select: str | None = None,
    marker: str = FAST_TIER,
    threads: int = 1,
    env: Mapping[str, str] | None = None,
    timeout: float = 4 * 3600,
) -> dict[str, Any]:
    """One claims run as data: ``{claim_id: {"verdict", "checks": {key: {"passed", "value",
    "lower", "upper"}}}}``; several tests of one claim (parameters) are merged (failed if any failed)."""
    data, _ = claims_report(
        implementation, seed, select=select, marker=marker, threads=threads, env=env, timeout=timeout
    )
    out: dict[str, Any] = {}
    for record in data["claims"]:
        if record["verdict"] == "skipped":
            continue
        claim = out.setdefault(record["claim"], {"verdict": "passed", "checks": {}})
        if record["verdict"] in FAILED or record["verdict"] == "regression-failed":
            claim["verdict"] = "failed" if record["verdict"] in FAILED else claim["verdict"]
        elif record["verdict"] != "passed" and claim["verdict"] == "passed":
            claim["verdict"] = record["verdict"]
        for c in record["checks"]:
            _merge(claim["checks"], c)
    return out


def _margin(c: Mapping[str, Any]) -> float:
    """Signed distance of a check's value inside its bound (negative: outside); inf if none."""
    value, lower, upper = c.get("value"), c.get("lower"), c.get("upper")
    if not isinstance(value, (int, float)) or (lower is None and upper is None):
        return math.inf
    sides = [value - lower] if isinstance(lower, (int, float)) else []
    sides += [upper - value] if isinstance(upper, (int, float)) else []
    return min(sides) if sides else math.inf


def _merge(checks: dict[str, Any], c: Mapping[str, Any]) -> None:
    new = {k: c.get(k) for k in ("passed", "value", "lower", "upper", "bound", "trials")}
    old = checks.get(c["key"])
    if old is None:
        checks[c["key"]] = new
        return
    keep = new if _margin(new) < _margin(old) else old
    checks[c["key"]] = {**keep, "passed": bool(old["passed"] and new["passed"])}


def check_summary(values: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pass count, Clopper-Pearson interval, and the value's spread against the bound, over the
    runs of one check, with the yardstick that judges it (see the module docstring)."""
    passed = sum(bool(v["passed"]) for v in values)
    lo, hi = clopper_pearson(passed, len(values))
    out: dict[str, Any] = {"runs": len(values), "passed": passed, "pass_rate_95": [lo, hi]}
    texts = [v["bound"] for v in values if isinstance(v.get("bound"), str)]
    if texts:
        out["bound"] = texts[-1]
    nums = [
        float(v["value"])
        for v in values
        if isinstance(v.get("value"), (int, float)) and math.isfinite(float(v["value"]))
    ]
    bounds = [v for v in values if v.get("lower") is not None or v.get("upper") is not None]
    if not (nums and bounds):
        return out
    mean = sum(nums) / len(nums)
    sd = math.sqrt(sum((x - mean) ** 2 for x in nums) / (len(nums) - 1)) if len(nums) > 1 else 0.0
    lower, upper = bounds[-1].get("lower"), bounds[-1].get("upper")
    sides = ([mean - lower] if lower is not None else []) + ([upper - mean] if upper is not None else [])
    margin_sd = min(sides) / sd if sd > 0 else None
    out.update({"mean": mean, "sd": sd, "min": min(nums), "max": max(nums), "lower": lower, "upper": upper})
    if margin_sd is not None:
        out["margin_sd"] = margin_sd
    counted = [v for v in values if v.get("trials") and isinstance(v.get("value"), (int, float))]
    if counted and len(counted) == len(values) and lower is not None and upper is None:
        out["yardstick"] = _binomial(counted, int(lower))
    elif margin_sd is None:
        out["yardstick"] = {"kind": "exact", "figure": nums[0], "met": passed == len(values)}
    else:
        out["yardstick"] = {"kind": "margin_sd", "figure": margin_sd, "met": bool(margin_sd >= MARGIN_SD)}
    return out


def _binomial(values: Sequence[Mapping[str, Any]], need: int) -> dict[str, Any]:
    """The count check's failure probability: ``need`` successes of k tries missed at the lower end
    of the pooled per-try rate's 95% interval (k: the most tries a run had)."""
    successes = sum(int(v["value"]) for v in values)
    tries = sum(int(v["trials"]) for v in values)
    rate_lo, rate_hi = clopper_pearson(successes, tries)
    k = max(int(v["trials"]) for v in values)
    fail = float(stats.binom.cdf(need - 1, k, rate_lo))
    return {
        "kind": "binomial",
        "figure": fail,
        "met": fail <= TAIL,
        "successes": successes,
        "tries": tries,
        "rate_95": [rate_lo, rate_hi],
        "tries_per_run": k,
    }


def summarise(runs: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The statistics of one claim's calibration file from its runs (``{impl: {seed: run}}``)."""
    all_runs = [run for by_seed in runs.values() for run in by_seed.values()]
    passed = sum(run["verdict"] == "passed" for run in all_runs)
    keys = sorted({k for run in all_runs for k in run["checks"]})
    by_impl = {
        impl: {"runs": len(s), "passed": sum(r["verdict"] == "passed" for r in s.values())}
        for impl, s in runs.items()
    }
    checks = {k: check_summary([run["checks"][k] for run in all_runs if k in run["checks"]]) for k in keys}
    return {
        "runs": len(all_runs),
        "passed": passed,
        "pass_rate_95": list(clopper_pearson(passed, len(all_runs))),
        "by_implementation": by_impl,
        "checks": checks,
    }


def checkout_commit() -> str:
    """The commit of the checkout beside the installed claims, ``-dirty`` when its working tree had
    changes; "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=default_calibration_dir().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def update(folder: Path, implementation: str, seed: int, run: Mapping[str, Any]) -> None:
    """Add one run to every claim's calibration file in ``folder`` and recompute its statistics
    (under a lock on the folder, so that several calibration processes can share it)."""
    folder.mkdir(parents=True, exist_ok=True)
    commit = checkout_commit()
    with file_lock(folder / ".lock", None, lambda: None):
        for claim, result in run.items():
            path = folder / f"{claim}.json"
            data: dict[str, Any] = (
                json.loads(path.read_text()) if path.exists() else {"claim": claim, "runs": {}}
            )
            data["runs"].setdefault(implementation, {})[str(seed)] = result
            data.update(
                {
                    "commit": commit,
                    "date": datetime.date.today().isoformat(),
                    "summary": summarise(data["runs"]),
                }
            )
            _write(path, data)


def _write(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_finite(data), indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def _finite(value: Any) -> Any:
    """JSON without NaN/inf (as strings)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _done(folder: Path) -> set[tuple[str, str]]:
    """The (implementation, seed) runs that every calibration file in ``folder`` holds: a run made
    for some claims only (``-k``) is not done for the others."""
    held = [
        {(impl, s) for impl, seeds in json.loads(path.read_text()).get("runs", {}).items() for s in seeds}
        for path in folder.glob("*.json")
    ]
    return set.intersection(*held) if held else set()


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m toymodel.suite.calibration", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--impl", default="torch,numpy", help="comma-separated implementations")
    ap.add_argument("--seeds", default="0-4", help="claims seeds, e.g. 0-19 or 0,3,7")
    ap.add_argument("-k", dest="select", default=None, help="claims selection (pytest -k)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at a time (one thread each)")
    ap.add_argument("--out", default="calibration", help="folder of the calibration files")
    ap.add_argument("--redo", action="store_true", help="repeat runs already in the files")
    ap.add_argument(
        "--resummarise", action="store_true", help="recompute the statistics from the runs; run nothing"
    )
    args = ap.parse_args(list(argv) if argv is not None else None)
    folder = Path(args.out)
    if args.resummarise:
        for path in sorted(folder.glob("*.json")):
            data = json.loads(path.read_text())
            data["summary"] = summarise(data["runs"])
            _write(path, data)
        return 0
    done = set() if args.redo else _done(folder)
    todo = [(i, s) for s in parse_seeds(args.seeds) for i in args.impl.split(",") if (i, str(s)) not in done]
    print(f"{len(todo)} runs, {args.jobs} at a time", flush=True)
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_claims, i, s, select=args.select): (i, s) for i, s in todo}
        for fut in cf.as_completed(futures):
            impl, seed = futures[fut]
            run = fut.result()
            update(folder, impl, seed, run)
            failed = [c for c, r in run.items() if r["verdict"] != "passed"]
            verdict = f"FAILED {', '.join(failed)}" if failed else "all passed"
            print(f"{impl} seed {seed}: {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
