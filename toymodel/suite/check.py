"""``toymodel-claims`` / ``python -m toymodel.suite.check``: run the installed claims suite.

Usage::

    toymodel-claims --impl mypackage.mymodule:train            # the fast tier of every claim
    toymodel-claims --impl numpy -k phase --claims-report r.json
    toymodel-claims --impl mymod:train -m slow                  # the paper-scale tier
    toymodel-claims --impl numpy --seeds 5 [--jobs 2]           # every claim at seeds 0-4: a verdict table
    toymodel-claims --impl numpy --seeds 5 --executor dask://scheduler:8786   # their training on a cluster

Every argument is passed to pytest; the claims are collected from the installed package, so no
checkout is needed, and ``--impl module:attr`` finds modules in the current folder (as
``python -m`` does). With ``--seeds K`` (or a list such as ``0-4,9``) the fast tier runs once per
seed, in parallel over ``--jobs`` processes sharing the result cache, and the table gives per
claim the passes, the passes it needs (:mod:`toymodel.suite.verdicts`: at most a 1% chance that a
correct implementation falls short, from the calibrated pass rates) and the verdict. With
``--executor`` (:mod:`toymodel.suite.executors`) the specs of every seed are first trained through it
into the result cache (``pytest --train-only --train-seeds``, in this process), and the seeds' runs
then read them from there; ``--device cuda`` trains every spec on the GPU. Exit status: 0 every claim
passed, 1 a claim failed, 2 a usage or contract error, 130 interrupted while training.

``toymodel check`` (:mod:`toymodel.cli`) is the newer name: the same runs, with ``--report PATH``
(HTML or JSON) and a verdict table at the end of a single-seed run too.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import sys
from pathlib import Path

__all__ = ["main"]


def run_pytest(args: list[str]) -> int:
    """The installed claims under pytest with ``args``; pytest's exit status."""
    import pytest

    # the console script imports this package before pytest loads its plugin from it; the warning
    # that the plugin cannot be assertion-rewritten is about pytest's internals, not the run
    return int(
        pytest.main(["--pyargs", "toymodel.claims", "-W", "ignore::pytest.PytestAssertRewriteWarning", *args])
    )


def run_seeds(ns: argparse.Namespace, rest: list[str]) -> int:
    """The fast tier once per seed of ``ns.seeds`` (in parallel over ``ns.jobs``), then the verdict
    table; the exit status (see the module docstring)."""
    from .calibration import FAST_TIER, parse_seeds, run_claims
    from .shipped import shipped_baselines
    from .verdicts import calibrated_pass_rates, decide, power, threshold

    if rest:
        print(
            "toymodel-claims: with --seeds only --impl, -k, -m, --jobs, --executor, --device and "
            f"--claims-report apply: {rest}",
            file=sys.stderr,
        )
        return 2
    seeds = list(range(int(ns.seeds))) if ns.seeds.isdigit() else parse_seeds(ns.seeds)
    impl = ns.impl or os.environ.get("TOYMODEL_IMPL") or "torch"
    env = {"PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    device = getattr(ns, "device", None)
    if device:
        env["TOYMODEL_DEVICE"] = device
    executor = getattr(ns, "executor", None) or os.environ.get("TOYMODEL_EXECUTOR")
    if executor:
        # every seed's specs through one executor first; the seeds' runs then read them from the cache
        env["TOYMODEL_EXECUTOR"] = ""
        code = _train_seeds(impl, seeds, executor, ns.k, ns.m or FAST_TIER, device)
        if code in (2, 3, 4):
            return 130 if code == 2 else 2
    runs: dict[int, dict] = {}
    with cf.ThreadPoolExecutor(max_workers=max(1, ns.jobs)) as pool:
        futures = {
            pool.submit(run_claims, impl, s, select=ns.k, marker=ns.m or FAST_TIER, env=env): s for s in seeds
        }
        for fut in cf.as_completed(futures):
            seed = futures[fut]
            try:
                runs[seed] = fut.result()
            except RuntimeError as exc:
                print(f"toymodel-claims: {str(exc).splitlines()[0]}", file=sys.stderr)
                return 2
            failed = sorted(c for c, r in runs[seed].items() if r["verdict"] != "passed")
            print(
                f"seed {seed}: {len(runs[seed]) - len(failed)} of {len(runs[seed])} claims passed"
                + (f" (failed: {', '.join(failed)})" if failed else ""),
                flush=True,
            )
    calibration = calibrated_pass_rates(shipped_baselines().parent / "calibration")
    verdicts = decide(runs, calibration)
    width = max(len(v.claim) for v in verdicts)
    print(f"\n{'claim':<{width}}  passes  needs  verdict  calibrated (correct implementations)")
    for v in verdicts:
        cal = (
            "uncalibrated: needs every seed"
            if v.calibrated is None
            else (f"{v.calibrated[0]}/{v.calibrated[1]} passed, rate >= {v.calibrated[2]:.2f}")
        )
        mark = "PASS" if v.passed else "FAIL"
        print(f"{v.claim:<{width}}  {v.passes:>2}/{v.seeds:<3} {v.need:>5}  {mark:<7}  {cal}")
    weak = [v.claim for v in verdicts if v.need == 0]
    if weak:
        print(
            f"note: at {len(seeds)} seed(s) {len(weak)} claim(s) cannot fail within a 1% false-alarm rate "
            f"(their calibrated pass rate is too uncertain): {', '.join(weak)}; run more seeds"
        )
    table = shipped_baselines().parent / "tests" / "data" / "kill_table.json"
    if table.exists():
        kills = json.loads(table.read_text())["runs"]
        caught = []
        for name, by_seed in kills.items():
            if name == "torch":
                continue
            best = 0.0
            for v in verdicts:
                rate = sum(r["verdicts"].get(v.claim) == "failed" for r in by_seed.values()) / len(by_seed)
                best = max(
                    best,
                    power(
                        len(seeds),
                        threshold(len(seeds), v.calibrated[2]) if v.calibrated else len(seeds),
                        rate,
                    ),
                )
            caught.append((name, best))
        strong = sum(p >= 0.95 for _, p in caught)
        print(
            f"power: {strong} of {len(caught)} mutants of the kill table are caught with probability >= 95% "
            f"by some claim at {len(seeds)} seed(s)"
        )
    if ns.claims_report:
        Path(ns.claims_report).write_text(
            json.dumps(
                {"implementation": impl, "seeds": seeds, "claims": [v.as_dict() for v in verdicts]}, indent=1
            )
            + "\n"
        )
    return 0 if all(v.passed for v in verdicts) else 1


def _train_seeds(
    impl: str, seeds: list[int], executor: str, select: str | None, marker: str, device: str | None
) -> int:
    """Train the specs of the selected claims at every seed through ``executor`` into the cache
    (``pytest --train-only``, in this process); pytest's exit status."""
    from .shipped import shipped_baselines

    sys.path.insert(0, os.getcwd())  # --impl module:attr from the current folder, as the runs find it
    args = [
        "-p",
        "no:cacheprovider",
        "-m",
        marker,
        "--impl",
        impl,
        "--train-only",
        "--executor",
        executor,
        "--train-seeds",
        ",".join(str(k) for k in seeds),
        "--baselines-dir",
        str(shipped_baselines()),
    ]
    args += ["-k", select] if select else []
    args += ["--device", device] if device else []
    return run_pytest(args)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--seeds", default=None)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--impl", default=None)
    parser.add_argument("-k", default=None)
    parser.add_argument("-m", default=None)
    parser.add_argument("--claims-report", dest="claims_report", default=None)
    parser.add_argument("--executor", default=None)
    parser.add_argument("--device", default=None)
    ns, rest = parser.parse_known_args(args)
    if ns.seeds is not None:
        return run_seeds(ns, rest)
    # modules named by --impl module:attr are found in the current folder, as with python -m
    sys.path.insert(0, os.getcwd())
    return run_pytest(args)


if __name__ == "__main__":
    raise SystemExit(main())
