"""pytest plugin of the claims suite (registered through the ``pytest11`` entry point, so the
options work from any directory and for the installed claims, ``pytest --pyargs toymodel.claims``).

Options:
    --impl NAME|module:attr   implementation under test (else $TOYMODEL_IMPL, else ``torch``)
    --claims-seed N           re-run every claim under another base seed (added to each spec's seed)
    --regen-baselines         rewrite baselines/<claim>.json from this run (reference impl, seed 0)
    --baselines-dir PATH      where baselines live (default: ./baselines of the rootdir, else the
                              copy installed with the package)
    --no-cache                train everything afresh (results are otherwise cached on disk, in
                              $TOYMODEL_CACHE_DIR, else ~/.cache/toymodel/results: one folder shared
                              by pytest, tox and ``toymodel-claims``)
    --xfails-file PATH        claim ids expected to fail for this implementation, one per line
                              (one that passes fails the run, with the verdict ``xpassed-declared``)
    --claims-report PATH      write the claims report: ``.json``, or ``.html`` for one self-contained
                              page (:mod:`toymodel.report`) with the JSON beside it; the figures
                              are PNG files in ``<name>-figures/`` beside it. Under pytest-xdist the
                              workers' records are merged into one report by the controller.
    --claims-table            end with a verdict table, one line per claim test with its key check
                              against its bound (``toymodel check`` passes it)
    --cache-only              train nothing: a claim whose result is not in the cache is skipped
                              (re-renders a report from cached results)
    --train-timeout SECONDS   time limit of one training (default 1800; none when -m selects slow;
                              0: none); a training past it fails its claims with one line
    --executor SPEC           train every spec the selected claims need before any claim runs, on
                              ``inprocess``, ``processes[:N]``, ``dask-local[:N]`` or
                              ``dask://HOST:PORT`` (:mod:`toymodel.suite.executors`; default
                              $TOYMODEL_EXECUTOR, else none: each claim trains what it needs when
                              it runs); the claims then read the results from the cache
    --worker-threads N        threads of one training on an executor's workers (default 1)
    --device NAME             train every spec on this device (``cpu``, ``cuda``; default
                              $TOYMODEL_DEVICE, else each spec's own): part of the spec, so of its
                              cache key; the regression tier applies on ``cpu`` only
    --train-only              train what the selected claims need (through --executor, default
                              ``inprocess``) into the cache, then stop: no claim is checked
    --train-seeds LIST        with --train-only: the claims seeds to train for (``0-3``, ``0,5``;
                              default --claims-seed)

Options are checked before any test runs, and a bad one ends the run with one line and exit
status 2 (pytest's ``Exit: toymodel: ...``): numbers out of range (a seed below 0), an unreadable
``--xfails-file``, a ``--claims-report`` or ``--baselines-dir`` that cannot be used, a result
cache folder that cannot be created or written (named with the variable that chose it), and
``--regen-baselines`` with anything but the reference implementation at claims seed 0. The
implementation is imported then too when it is named (``--impl`` or ``$TOYMODEL_IMPL``): an
unknown name, an import error, a missing attribute or a non-callable ends the run the same way.
The default one is imported after collection, and only when a collected test trains (uses
``trained``): ``pytest tests`` loads this plugin as well, and must neither fail where torch is not
installed nor load and check an implementation it does not use. A ``module:attr`` whose module
is not on ``sys.path`` is also looked for in the folder pytest was started in, as
``python -m pytest`` would.

With an executor, a discovery pass (:mod:`toymodel.suite.prefetch`) first calls every selected claim
test on placeholder results to collect the specs it asks for; those not yet cached go to the
executor, which shows progress as they finish, and each result is written to the cache as it comes
back. A spec whose training failed there (or whose implementation cannot be imported on the worker)
fails the claims that need it with that one line, without being trained again; a spec the pass did
not find is trained in process when its claim asks, and the summary names it. Ctrl-C while the
executor trains cancels the rest and keeps what came back.

Fixtures: ``trained(spec) -> Result`` (cached, validated, scored by the suite, reseeded),
``claim`` (a :class:`toymodel.suite.claim.Claim` for the test's claim id), ``impl_name``, ``claims_seed``.

Progress (:mod:`toymodel.suite.progress`): on a terminal, a training longer than two seconds shows a
live line (the experiment, the claim test out of how many, elapsed time, ETA); when output is not
a terminal, one line per finished training; nothing under ``-q``. Ctrl-C stops the run; results
trained before it stay in the cache, and the report holds the claims finished so far.

A claim test's id is its function name without ``test_`` (or ``@pytest.mark.claim("id")``).
Tests marked ``slow`` are skipped unless the ``-m`` expression names ``slow``. Tests marked
``theory`` train nothing: they check the suite's closed forms and geometry, are reported in a
section of their own and never count as verdicts on the implementation. A broken implementation
(an exception, ``SystemExit`` included, a result that breaks the contract, a training past the time
limit) fails every claim that needs it, even a claim declared as an expected failure, with one
line per claim (the full traceback with ``-v`` or ``--tb=long``). Cache faults (an unreadable file
retrained, a result that could not be written) never fail a test: each is one warning line in the
summary.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from .. import __version__
from ..report import jsonable, verdict_lines, write
from ..report.figures import figures_unavailable
from ..report.records import summary
from ..result import ContractError, Result
from ..spec import Spec
from .baselines import BaselineError
from .claim import SECTIONS, Claim, ClaimFailure
from .executors import ENV_VAR as EXECUTOR_ENV
from .implementations import ImplementationError
from .progress import TrainingProgress
from .shipped import default_calibration_dir
from .state import (
    DEVICE_ENV,
    SEED_LIMIT,
    TRAIN_TIMEOUT,
    NotCached,
    OptionError,
    SuiteState,
    full_tracebacks,
    is_worker,
)
from .terminal import OneLine, progress_mode, uncaptured, writer

_CLAIM_KEY = pytest.StashKey[Claim]()
_STATE_KEY = pytest.StashKey[SuiteState]()
#: the sessions' states, innermost last, for the hooks that are not given the config
_SESSIONS: list[SuiteState] = []


def _current() -> SuiteState | None:
    return _SESSIONS[-1] if _SESSIONS else None


class ImplementationFailure(Exception):
    """The implementation under test raised or broke the result contract: a failure of every claim
    that needs it, never an expected failure."""


_ONE_LINE = (ClaimFailure, BaselineError, ContractError, ImplementationError, ImplementationFailure)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("toymodel", "toymodel claims suite")
    group.addoption(
        "--impl",
        default=None,
        metavar="NAME|module:attr",
        help="implementation under test (default: $TOYMODEL_IMPL, else 'torch')",
    )
    group.addoption(
        "--claims-seed",
        default="0",
        metavar="N",
        help=f"base seed added to every claim's spec seeds, 0 to {SEED_LIMIT - 1} (default 0)",
    )
    group.addoption(
        "--regen-baselines", action="store_true", help="rewrite the regression baselines from this run"
    )
    group.addoption("--baselines-dir", default=None, metavar="PATH", help="folder of baselines/*.json")
    group.addoption("--no-cache", action="store_true", help="train afresh, ignoring cached results")
    group.addoption(
        "--xfails-file",
        default=None,
        metavar="PATH",
        help="claim ids expected to fail for this implementation (one per line, # comments)",
    )
    group.addoption(
        "--claims-report",
        default=None,
        metavar="PATH",
        help="write the claims report here: .json, or .html (one self-contained page, the JSON beside it)",
    )
    group.addoption(
        "--claims-table",
        action="store_true",
        help="end with a verdict table: one line per claim test, its key check against its bound",
    )
    group.addoption(
        "--cache-only",
        action="store_true",
        help="train nothing: claims whose results are not cached are skipped",
    )
    group.addoption(
        "--train-timeout",
        default=None,
        metavar="SECONDS",
        help=f"time limit of one training (default {TRAIN_TIMEOUT:g}; none when -m selects slow; 0: none)",
    )
    group.addoption(
        "--executor",
        default=None,
        metavar="SPEC",
        help="train the selected claims' specs first, on: inprocess, processes[:N], "
        f"dask-local[:N] or dask://HOST:PORT (default: ${EXECUTOR_ENV}, else each claim "
        "trains when it runs)",
    )
    group.addoption(
        "--worker-threads",
        default="1",
        metavar="N",
        help="threads of one training on an executor's workers (default 1)",
    )
    group.addoption(
        "--device",
        default=None,
        metavar="NAME",
        help=f"train every spec on this device: cpu, cuda (default: ${DEVICE_ENV}, else each spec's own)",
    )
    group.addoption(
        "--train-only",
        action="store_true",
        help="train what the selected claims need into the cache (through --executor), check nothing",
    )
    group.addoption(
        "--train-seeds",
        default=None,
        metavar="LIST",
        help="with --train-only: the claims seeds to train for, e.g. 0-3 (default --claims-seed)",
    )


def _state(config: pytest.Config) -> SuiteState:
    return config.stash[_STATE_KEY]


def _trains(item: pytest.Item) -> bool:
    return "trained" in getattr(item, "fixturenames", ()) and item.get_closest_marker("skip") is None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: paper-scale claims; skipped unless -m selects 'slow'")
    config.addinivalue_line("markers", "gpu: needs CUDA; skipped without it")
    config.addinivalue_line("markers", "theory: trains nothing; checks the suite's theory (its own tier)")
    config.addinivalue_line("markers", "claim(id): the claim id of a test, when not its name")
    for section in SECTIONS:
        config.addinivalue_line("markers", f"{section}: claims of the paper's section '{section}'")
    if config.getoption("help", False) or config.getoption("version", False):
        return  # pytest --help / --version: nothing to check
    try:
        st = config.stash[_STATE_KEY] = SuiteState(config)
    except OptionError as exc:
        pytest.exit(f"toymodel: {exc}", returncode=2)
    kept = (
        f"are kept in the cache {st.cache.root}, and a rerun reuses them"
        if st.cache is not None
        else "are not kept (--no-cache)"
    )
    st.progress = TrainingProgress(
        "off",
        write=writer(config),
        visible=lambda: uncaptured(config),
        resume=lambda: _resume(config),
        kept=kept,
    )
    _SESSIONS.append(st)


def _resume(config: pytest.Config) -> None:
    """After a line of ours inside a test: repeat what pytest wrote when the test started (its
    file, or with -v its name), so that its result lands on that line, not after ours."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    st = config.stash.get(_STATE_KEY, None)
    if reporter is None or st is None or st.running is None:
        return
    with uncaptured(config):
        reporter.pytest_runtest_logstart(nodeid=st.running[0], location=st.running[1])


@pytest.hookimpl(trylast=True)
def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    st = _current()
    if st is not None:
        st.running = (nodeid, location)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Choose how training shows (the terminal reporter is registered by now)."""
    st = session.config.stash.get(_STATE_KEY, None)
    if st is not None:
        st.progress.mode = progress_mode(session.config)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Import the default implementation when a collected test trains (see the module docstring)."""
    st = session.config.stash.get(_STATE_KEY, None)
    if st is not None:
        st.progress.tests_total = sum(_trains(item) for item in session.items)
    if st is None or st.loaded or not any(_trains(item) for item in session.items):
        return
    try:
        st.load_implementation()
    except OptionError as exc:
        pytest.exit(f"toymodel: {exc}", returncode=2)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """With an executor: train what the selected claims need before the first of them runs (and
    with --train-only, stop there: True ends the loop)."""
    st = session.config.stash.get(_STATE_KEY, None)
    if (
        st is None
        or st.executor is None
        or is_worker(session.config)
        or session.testsfailed
        or session.config.option.collectonly
    ):
        return None
    trains = [item for item in session.items if _trains(item)]
    if trains:
        try:
            st.prefetch(trains)
        except OptionError as exc:
            pytest.exit(f"toymodel: {exc}", returncode=2)
    if not st.train_only:
        return None
    session.testsfailed += len(st.failed)  # exit status 1 when a training failed
    return True


def pytest_report_header(config: pytest.Config) -> list[str]:
    st = _state(config)
    limit = f"{st.train_timeout:g} s" if st.train_timeout else "none"
    lines = [
        f"toymodel {__version__}: implementation under test = {st.impl_name!r}, claims seed = "
        f"{st.seed}, result cache = {st.cache.root if st.cache else 'off'}, "
        f"baselines = {st.baselines.root}{' (regenerating)' if st.regen else ''}, "
        f"time limit per training = {limit}"
    ]
    if st.executor is not None:
        threads = f", {st.executor.threads} thread(s) per training" if st.executor.threads else ""
        lines.append(
            f"toymodel: executor = {st.executor.text}{threads}"
            + (" (--train-only: no claim is checked)" if st.train_only else "")
        )
    if st.device is not None:
        lines.append(f"toymodel: every spec trains on device {st.device!r}")
    if st.xfail_ids:
        lines.append(f"toymodel: {len(st.xfail_ids)} claim(s) declared as known failures")
    if st.report_path is not None and figures_unavailable() is not None:
        lines.append(f"toymodel: the report has no figures: {figures_unavailable()}")
    import importlib.util

    # without torch, a run that trains with the reference stops after collection with one line
    if st.is_reference and importlib.util.find_spec("torch") is not None:
        from ..reference.kernel import fused

        if not fused.available():
            lines.append(
                f"toymodel: fused kernel unavailable ({fused.unavailable_reason()}): "
                "training takes the unfused path, ~2-5x slower"
            )
    return lines


def _claim_id(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("claim")
    if mark is not None and mark.args:
        return str(mark.args[0])
    name = getattr(item, "originalname", item.name)
    return name[5:] if name.startswith("test_") else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    st = _state(config)
    run_slow = "slow" in (config.getoption("-m") or "")
    skip_slow = pytest.mark.skip(reason="slow tier: select it with -m slow")
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    # asked of torch at every collection, as before: importing torch later, first inside a pytester
    # in-process run, lets pytester unload it, and the next run's re-import of its C extension
    # crashes the interpreter
    cuda = _cuda_available()
    seen: set[str] = set()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not cuda:
            item.add_marker(skip_gpu)
        cid = _claim_id(item)
        if cid is not None:
            seen.add(cid)
            item.extra_keyword_matches.add(cid)  # `-k <claim id>` selects it whatever its name
            if cid in st.xfail_ids:
                item.add_marker(pytest.mark.xfail(reason=st.xfail_ids[cid], strict=True))
    if st.xfail_ids:
        st.unknown_xfails = sorted(set(st.xfail_ids) - seen)
        if st.unknown_xfails and not is_worker(config):
            st.said_unknown_xfails = True
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            text = (
                f"toymodel WARNING: --xfails-file names claim ids that no collected test has: "
                f"{', '.join(st.unknown_xfails)}"
            )
            if reporter is not None:
                reporter.write_line(text, yellow=True)
            else:
                print(text, file=sys.stderr)


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


@pytest.fixture(scope="session")
def impl_name(request: pytest.FixtureRequest) -> str:
    """The implementation under test."""
    return _state(request.config).impl_name


@pytest.fixture(scope="session")
def claims_seed(request: pytest.FixtureRequest) -> int:
    """The base seed of this run (``--claims-seed``)."""
    return _state(request.config).seed


@pytest.fixture
def trained(request: pytest.FixtureRequest) -> Callable[[Spec], Result]:
    """``trained(spec)``: the implementation's validated result for ``spec`` (reseeded by
    ``--claims-seed``, cached). A failing or contract-breaking implementation fails the test
    with a one-line message naming it."""
    st = _state(request.config)

    def get(spec: Spec) -> Result:
        try:
            result = st.train(spec)
        except (ImplementationError, ContractError) as exc:
            raise ImplementationFailure(str(exc)) from exc  # the chain shows with -v / --tb=long
        except NotCached as exc:
            pytest.skip(str(exc))
        claim: Claim | None = request.node.stash.get(_CLAIM_KEY, None)
        if claim is not None:
            claim.uses_spec(result.spec)
        return result

    st.progress.next_test()

    return get


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> Claim:
    """The :class:`toymodel.suite.claim.Claim` of this test."""
    st = _state(request.config)
    cid = _claim_id(request.node) or request.node.name
    fig_dir = None
    if st.report_path is not None:
        fig_dir = st.report_path.parent / f"{st.report_path.stem}-figures"
    theory = request.node.get_closest_marker("theory") is not None
    # the regression baselines are the reference's numbers on the CPU
    reference = st.is_reference and st.device in (None, "cpu")
    c = Claim(
        id=cid,
        implementation=st.impl_name,
        seed=st.seed,
        reference=reference,
        baselines=st.baselines,
        figure_dir=fig_dir,
        tier="theory" if theory else "implementation",
    )
    request.node.stash[_CLAIM_KEY] = c
    return c


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    error = call.excinfo.value if call.excinfo else None
    if isinstance(error, ImplementationFailure) and hasattr(report, "wasxfail"):
        # a broken implementation is never the expected failure of a claim
        del report.wasxfail
        report.outcome = "failed"
    c = item.stash.get(_CLAIM_KEY, None)
    if c is not None and (report.when == "call" or (report.when == "setup" and report.outcome != "passed")):
        st = _state(item.config)
        message = str(error).splitlines()[0] if error is not None and str(error) else ""
        strict_xpass = (
            report.when == "call"
            and report.failed
            and error is None
            and str(report.longrepr or "").startswith("[XPASS(strict)]")
        )
        if isinstance(error, BaselineError):
            verdict = "regression-failed"
        elif isinstance(error, ImplementationFailure):
            verdict = "implementation-error"
        elif strict_xpass:
            declared = st.xfail_ids.get(c.id)
            verdict = "xpassed-declared" if declared else "xpassed"
            why = declared or f"the suite expects it to fail: {str(report.longrepr).split('] ', 1)[-1]}"
            advice = ": remove it from that file" if declared else ""
            message = (
                f"[{c.id}] passed, but it is {why}{advice} (implementation {c.implementation!r}, "
                f"claims seed {c.seed})"
            )
            if not full_tracebacks(item.config):
                report.longrepr = OneLine(f"{item.nodeid}: {message}")  # type: ignore[assignment]
        elif hasattr(report, "wasxfail"):
            verdict = "xfailed" if report.skipped else "xpassed"
        else:
            verdict = report.outcome
        record = c.as_dict()
        record.update(
            {
                "test": item.nodeid,
                "verdict": verdict,
                "message": message,
                "section": next((m for m in SECTIONS if item.get_closest_marker(m) is not None), ""),
                "statement": _statement(item),
                "duration": report.duration,
            }
        )
        st.records.append(record)
    if report.failed and isinstance(error, _ONE_LINE) and not full_tracebacks(item.config):
        report.longrepr = OneLine(f"{item.nodeid}: {error}")  # type: ignore[assignment]
    return report


def _statement(item: pytest.Item) -> str:
    """The claim as the test's docstring states it (the paper's sentence), on one paragraph per
    paragraph."""
    doc = inspect.getdoc(getattr(item, "function", None)) or ""
    return "\n\n".join(" ".join(p.split()) for p in doc.split("\n\n") if p.strip())


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    st = config.stash.get(_STATE_KEY, None)
    if st is None or not (st.records or st.notices or st.regen or st.warnings or st.missed):
        return
    terminalreporter.write_sep("=", f"toymodel: implementation {st.impl_name!r}, claims seed {st.seed}")
    impl = summary([r for r in st.records if r.get("tier") != "theory"])
    theory = summary([r for r in st.records if r.get("tier") == "theory"])
    if impl:
        terminalreporter.write_line("verdicts on the implementation: " + _counts(impl))
    if theory:
        terminalreporter.write_line(
            "theory tier (the suite's closed forms, no implementation involved): " + _counts(theory)
        )
    if st.unknown_xfails and not st.said_unknown_xfails:
        terminalreporter.write_line(
            "toymodel WARNING: --xfails-file names claim ids that no collected test "
            f"has: {', '.join(st.unknown_xfails)}",
            yellow=True,
        )
    if st.missed:
        terminalreporter.write_line(
            f"toymodel: {len(st.missed)} spec(s) the discovery pass did not find "
            "were trained in process when their claims asked: " + ", ".join(st.missed.values())
        )
    for line in st.notices.values():
        terminalreporter.write_line(f"NOTE: {line}", yellow=True)
    for line in st.warnings:
        terminalreporter.write_line(f"toymodel WARNING: {line}", yellow=True)
    if config.getoption("--claims-table"):
        for line, failing in verdict_lines(st.payload(), default_calibration_dir()):
            terminalreporter.write_line(line, red=failing)
    if st.regen:
        changes = st.baselines.changes
        terminalreporter.write_line(
            f"--regen-baselines wrote {len(changes)} change(s) to {st.baselines.root}"
            + (":" if changes else "")
        )
        for line in changes:
            terminalreporter.write_line(f"  {line}")


def _counts(summary: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(summary.items()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    st = session.config.stash.get(_STATE_KEY, None)
    if st is None:
        return
    if is_worker(session.config):  # the controller merges the workers' records (pytest_testnodedown)
        session.config.workeroutput["toymodel"] = json.dumps(  # type: ignore[attr-defined]
            jsonable(
                {
                    "records": st.records,
                    "notices": st.notices,
                    "warnings": list(st.warnings),
                    "unknown_xfails": st.unknown_xfails,
                }
            )
        )
        return
    if st.report_path is None:
        return
    base = st.report_path.parent.resolve()
    for record in st.records:  # figure paths relative to the report, so that the folder can move
        record["figures"] = [os.path.relpath(Path(f).resolve(), base) for f in record.get("figures", [])]
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    try:
        write(st.payload(interrupted), st.report_path, calibration=default_calibration_dir())
    except Exception as exc:  # the JSON is written first; a page that cannot be rendered is said
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = (
            f"toymodel WARNING: the report {st.report_path} could not be written "
            f"({type(exc).__name__}: {exc})"
        )
        if reporter is not None:
            reporter.write_line(line, yellow=True)
        else:
            print(line, file=sys.stderr)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: a worker finished; keep its records for the one report the controller writes."""
    st = node.config.stash.get(_STATE_KEY, None)
    raw = getattr(node, "workeroutput", {}).get("toymodel")
    if st is None or raw is None:
        return
    data = json.loads(raw)
    st.records.extend(data["records"])
    for key, line in data["notices"].items():
        st.notices.setdefault(key, line)
    for line in data["warnings"]:
        st.warn(line)
    if data["unknown_xfails"]:
        st.unknown_xfails = data["unknown_xfails"]


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Ctrl-C: say what is kept (unless the training that was cut short said it already)."""
    st = _current()
    if st is None or is_worker(st.config):
        return
    lines = (
        []
        if st.progress.interrupted is not None
        else [  # else the cut-short training said it
            f"toymodel: interrupted; the {st.progress.trained} result(s) "
            f"trained in this run {st.progress.kept}"
        ]
    )
    if st.report_path is not None:
        lines.append(f"toymodel: the report {st.report_path} holds the claims finished before the interrupt")
    for line in lines:
        writer(st.config)(line + "\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    st = config.stash.get(_STATE_KEY, None)
    if st in _SESSIONS:
        _SESSIONS.remove(st)
