"""``toymodel`` (and ``python -m toymodel``): the claims suite from the command line.

    toymodel check --impl my_adapter:train [-k EXPR] [-m EXPR] [-n WORKERS] [--report out.html]
    toymodel check --impl numpy --seeds 5 [--jobs 2]        # every claim at seeds 0-4: a verdict table
    toymodel check --impl numpy --seeds 5 --executor dask://scheduler:8786   # training on a cluster
    toymodel train spec.json -o result.npz [--impl numpy]   # one spec through an implementation
    toymodel report out.json [-o out.html]                  # re-render a report from its JSON
    toymodel report --from-cache --impl numpy [-k phase] -o out.html   # from cached results, no training
    toymodel compare torch.json numpy.json -o compare.html  # two reports side by side

``check`` runs the installed claims with pytest (arguments it does not know go to pytest, as with
``toymodel-claims``, its older name) and ends with a verdict table, one line per claim test with
its key check against its bound. ``--executor`` trains every spec the selected claims need first,
in worker processes or on a Dask cluster, and ``--device cuda`` on the GPU (docs/scale-out.md).
``--report PATH`` writes the report: ``.html`` (one
self-contained page, the JSON beside it) or ``.json``. Modules named by ``--impl module:attr``
are found in the current folder, as ``python -m`` finds them.

Exit status: 0 every claim passed (or the command did what it was asked), 1 a claim failed (an
implementation that raises or breaks the result contract while training fails the claims that
need it; for ``train``, the implementation raised), 2 a usage or contract error (a bad option, no
claim selected, an implementation that cannot be imported, a spec or report file that cannot be
read; for ``train``, a result that breaks the contract), 130 interrupted (Ctrl-C; results
trained so far stay in the cache).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

__all__ = ["main"]

PROG = "toymodel"
#: pytest's exit codes as this command reports them (see the module docstring)
_EXIT = {0: 0, 1: 1, 2: 130, 3: 3, 4: 2, 5: 2}


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Check an implementation of the toy models of superposition against the paper's claims.",
        epilog="exit status: 0 all passed, 1 a claim failed, 2 usage or contract error, 130 interrupted",
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser(
        "check",
        help="run the claims against an implementation, then a verdict table",
        description="Run the claims against an implementation; unknown arguments go to pytest.",
    )
    check.add_argument(
        "--impl",
        help="implementation: torch, numpy, torch-plain or module:attr (default: $TOYMODEL_IMPL, else torch)",
    )
    check.add_argument("-k", dest="k", metavar="EXPR", help="select claims by id or section, as pytest -k")
    check.add_argument("-m", dest="m", metavar="EXPR", help="select by marker, as pytest -m (e.g. slow)")
    check.add_argument(
        "--seeds",
        metavar="K|LIST",
        help="run the fast tier at K seeds (or e.g. 0-4,9) and decide each claim over them",
    )
    check.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="with --seeds: runs at a time")
    check.add_argument(
        "--executor",
        metavar="SPEC",
        help="train every spec the claims need first, on: inprocess, processes[:N], "
        "dask-local[:N] or dask://HOST:PORT (default: $TOYMODEL_EXECUTOR, else each "
        "claim trains when it runs)",
    )
    check.add_argument(
        "--device",
        metavar="NAME",
        help="train every spec on this device: cpu, cuda (default: $TOYMODEL_DEVICE, else each spec's own)",
    )
    check.add_argument(
        "-n",
        dest="workers",
        metavar="WORKERS",
        help="pytest-xdist worker processes for one seed (a number or 'auto')",
    )
    check.add_argument(
        "--report", metavar="PATH", help="write the report: .html (with the JSON beside it) or .json"
    )
    check.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    train = sub.add_parser(
        "train",
        help="train one spec (JSON) through an implementation",
        description="Train one spec through an implementation and save the result (.npz).",
    )
    train.add_argument("spec", metavar="SPEC.json", help="a spec as written by Spec.to_json()")
    train.add_argument("-o", "--output", required=True, metavar="RESULT.npz", help="where to save the result")
    train.add_argument("--impl", help="implementation (default: $TOYMODEL_IMPL, else torch)")
    train.add_argument(
        "--timeout", type=float, default=0.0, metavar="SECONDS", help="time limit of the training (0: none)"
    )

    report = sub.add_parser(
        "report",
        help="render a report as HTML, from its JSON or from cached results",
        description="Render a claims report as one HTML page: from a JSON report, or "
        "(--from-cache) by running the claims on cached results only.",
    )
    report.add_argument("source", nargs="?", metavar="REPORT.json", help="a JSON claims report")
    report.add_argument("-o", "--output", metavar="OUT.html", help="the page (default: the JSON's, as .html)")
    report.add_argument(
        "--from-cache",
        action="store_true",
        help="run the claims on cached results only; claims not cached are skipped",
    )
    report.add_argument("--impl", help="with --from-cache: the implementation")
    report.add_argument("-k", dest="k", metavar="EXPR", help="with --from-cache: select claims")
    report.add_argument("-m", dest="m", metavar="EXPR", help="with --from-cache: select by marker")
    report.add_argument("--claims-seed", metavar="N", help="with --from-cache: the claims seed")

    compare = sub.add_parser(
        "compare",
        help="two JSON reports side by side in one HTML page",
        description="Two claims reports (implementations, seeds or commits) side by "
        "side: verdicts, the measured values that moved, the figures.",
    )
    compare.add_argument("a", metavar="A.json")
    compare.add_argument("b", metavar="B.json")
    compare.add_argument(
        "-o", "--output", default="compare.html", metavar="OUT.html", help="the page (default: compare.html)"
    )
    compare.add_argument("--names", nargs=2, metavar=("A", "B"), help="what to call the two reports")
    return ap


def _run_claims(args: list[str], report: Path | None) -> int:
    """The claims under pytest, with the verdict table in its summary."""
    from .suite import check

    sys.path.insert(0, os.getcwd())  # --impl module:attr from the current folder, as python -m finds it
    extra = ["--claims-report", str(report)] if report is not None else []
    code = check.run_pytest([*args, "--claims-table", *extra])
    if report is not None and report.exists():
        beside = report.with_suffix(".json")
        print(f"report: {report}" + (f" (and {beside})" if beside != report else ""))
    return _EXIT.get(code, code)


def _check(ns: argparse.Namespace, rest: list[str]) -> int:
    if ns.seeds is not None:
        from .suite import check

        if ns.workers is not None:
            return _error("-n applies to one seed; with --seeds the runs go in parallel over --jobs")
        if ns.report is not None and not ns.report.endswith(".json"):
            return _error("with --seeds the report is the verdict table, as JSON: give --report PATH.json")
        seeds = argparse.Namespace(
            seeds=ns.seeds,
            jobs=ns.jobs,
            impl=ns.impl,
            k=ns.k,
            m=ns.m,
            claims_report=ns.report,
            executor=ns.executor,
            device=ns.device,
        )
        return check.run_seeds(seeds, rest)
    args = [*rest]
    chosen = (
        ("--impl", ns.impl),
        ("-k", ns.k),
        ("-m", ns.m),
        ("--executor", ns.executor),
        ("--device", ns.device),
    )
    for flag, value in chosen:
        if value is not None:
            args += [flag, value]
    if ns.workers is not None:
        if importlib.util.find_spec("xdist") is None:
            return _error("-n needs pytest-xdist: pip install pytest-xdist")
        args += ["-n", ns.workers]
    if ns.quiet:
        args.append("-q")
    return _run_claims(args, Path(ns.report) if ns.report else None)


def _train(ns: argparse.Namespace) -> int:
    from .result import ContractError, save
    from .spec import Spec, SpecError
    from .suite.implementations import ImplementationError, TrainingTimeout, resolve, run, selected_name
    from .suite.progress import Mode, TrainingProgress

    try:
        spec = Spec.from_json(Path(ns.spec).read_text())
    except OSError as exc:
        return _error(f"{ns.spec}: cannot read it ({exc.strerror or exc})")
    except SpecError as exc:
        return _error(f"{ns.spec}: {exc}")
    name = selected_name(ns.impl)
    try:
        impl = resolve(name, search_path=os.getcwd())
    except ImplementationError as exc:
        return _error(str(exc))
    mode: Mode = "live" if sys.stdout.isatty() else "off"
    progress = TrainingProgress(mode, write=lambda line: print(line, flush=True), min_seconds=float("inf"))
    start = time.monotonic()
    try:
        with progress.training(spec):
            result = run(name, spec, impl, timeout=ns.timeout or None)
    except ContractError as exc:
        return _error(str(exc))
    except TrainingTimeout as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except ImplementationError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing written", file=sys.stderr)
        return 130
    out = Path(ns.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save(result, out)
    except OSError as exc:
        return _error(f"{out}: cannot write the result ({exc.strerror or exc})")
    print(
        f"trained spec {spec.hash()} ({spec.name or spec.model}, {spec.instances} instances) with {name!r} "
        f"in {time.monotonic() - start:.1f} s: {out}"
    )
    return 0


def _report(ns: argparse.Namespace) -> int:
    from .report import ReportError, load, render_html
    from .suite.shipped import default_calibration_dir

    if ns.from_cache:
        if ns.source is not None:
            return _error("give a JSON report or --from-cache, not both")
        if not ns.output:
            return _error("--from-cache needs -o OUT.html")
        args = ["--cache-only"]
        chosen = (("--impl", ns.impl), ("-k", ns.k), ("-m", ns.m), ("--claims-seed", ns.claims_seed))
        for flag, value in chosen:
            if value is not None:
                args += [flag, value]
        return _run_claims(args, Path(ns.output))
    if ns.source is None:
        return _error("give a JSON report to render, or --from-cache")
    if any(v is not None for v in (ns.impl, ns.k, ns.m, ns.claims_seed)):
        return _error("--impl, -k, -m and --claims-seed select claims to run: they need --from-cache")
    source = Path(ns.source)
    try:
        data = load(source)
    except ReportError as exc:
        return _error(str(exc))
    out = Path(ns.output) if ns.output else source.with_suffix(".html")
    if out.resolve() == source.resolve():
        return _error(f"-o {out} would overwrite the JSON report")
    out.write_text(render_html(data, base=source.parent, calibration=default_calibration_dir()))
    print(f"report: {out}")
    return 0


def _compare(ns: argparse.Namespace) -> int:
    from .report import ReportError, load, render_compare
    from .suite.shipped import default_calibration_dir

    try:
        a, b = load(ns.a), load(ns.b)
    except ReportError as exc:
        return _error(str(exc))
    names = ns.names or [f"{r['implementation']} (seed {r.get('claims_seed', '?')})" for r in (a, b)]
    if names[0] == names[1]:
        names = [Path(ns.a).stem, Path(ns.b).stem]
    out = Path(ns.output)
    out.write_text(
        render_compare(
            a,
            b,
            names=names,
            bases=[Path(ns.a).parent, Path(ns.b).parent],
            calibration=default_calibration_dir(),
        )
    )
    print(f"comparison: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if args[:1] == ["check"]:  # what check does not know goes to pytest
        ns, rest = parser.parse_known_args(args)
    else:
        ns, rest = parser.parse_args(args), []
    if ns.command == "check":
        return _check(ns, rest)
    if ns.command == "train":
        return _train(ns)
    if ns.command == "report":
        return _report(ns)
    return _compare(ns)


if __name__ == "__main__":
    raise SystemExit(main())
