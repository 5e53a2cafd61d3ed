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
                              ``dask://HOST:PORT`` (:mod:`toymodel.executors`; default
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

With an executor, a discovery pass (:mod:`toymodel.prefetch`) first calls every selected claim
test on placeholder results to collect the specs it asks for; those not yet cached go to the
executor, which shows progress as they finish, and each result is written to the cache as it comes
back. A spec whose training failed there (or whose implementation cannot be imported on the worker)
fails the claims that need it with that one line, without being trained again; a spec the pass did
not find is trained in process when its claim asks, and the summary names it. Ctrl-C while the
executor trains cancels the rest and keeps what came back.

Fixtures: ``trained(spec) -> Result`` (cached, validated, scored by the suite, reseeded),
``claim`` (a :class:`toymodel.claim.Claim` for the test's claim id), ``impl_name``, ``claims_seed``.

Progress (:mod:`toymodel.progress`): on a terminal, a training longer than two seconds shows a
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

import contextlib
import datetime
import inspect
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .baselines import BaselineError, BaselineStore
from .cache import (
    CacheDirError,
    ResultCache,
    cache_dir_source,
    check_cache_dir,
    default_cache_dir,
    fingerprint,
)
from .claim import Claim, ClaimFailure
from .executors import ENV_VAR as EXECUTOR_ENV
from .executors import Executor, ExecutorError, Job, Outcome
from .executors import parse as parse_executor
from .implementations import (
    DEFAULT,
    ENV_VAR,
    ImplementationError,
    resolve,
    run,
    selected_name,
    selection_source,
)
from .prefetch import discover
from .progress import BatchProgress, Mode, TrainingProgress, describe, work
from .report import jsonable, verdict_lines, write
from .report.figures import figures_unavailable
from .result import ContractError, Result, eval_loss_disagreement
from .spec import Spec

SECTIONS = ("superposition", "phase", "geometry", "nonuniform", "correlated", "dynamics",
            "privileged", "computation", "adversarial")
_CLAIM_KEY = pytest.StashKey[Claim]()
_STATE_KEY = pytest.StashKey["SuiteState"]()
#: the sessions' states, innermost last, for the hooks that are not given the config
_SESSIONS: list[SuiteState] = []


def _current() -> SuiteState | None:
    return _SESSIONS[-1] if _SESSIONS else None


class ImplementationFailure(Exception):
    """The implementation under test raised or broke the result contract: a failure of every claim
    that needs it, never an expected failure."""


_ONE_LINE = (ClaimFailure, BaselineError, ContractError, ImplementationError, ImplementationFailure)
#: --claims-seed lies in [0, SEED_LIMIT): every spec's own seed plus it stays a 32-bit seed
SEED_LIMIT = 2**31
#: --train-timeout's default, seconds (the fast tier's longest training takes minutes)
TRAIN_TIMEOUT = 1800.0
#: the environment variable read when no --device is given
DEVICE_ENV = "TOYMODEL_DEVICE"


class NotCached(Exception):
    """--cache-only and a spec whose result is not in the cache: the claim is skipped."""


class OptionError(Exception):
    """An option or setting that cannot work: the run ends before any test, with this one line
    and exit status 2."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("toymodel", "toymodel claims suite")
    group.addoption("--impl", default=None, metavar="NAME|module:attr",
                    help="implementation under test (default: $TOYMODEL_IMPL, else 'torch')")
    group.addoption("--claims-seed", default="0", metavar="N",
                    help=f"base seed added to every claim's spec seeds, 0 to {SEED_LIMIT - 1} (default 0)")
    group.addoption("--regen-baselines", action="store_true",
                    help="rewrite the regression baselines from this run")
    group.addoption("--baselines-dir", default=None, metavar="PATH", help="folder of baselines/*.json")
    group.addoption("--no-cache", action="store_true", help="train afresh, ignoring cached results")
    group.addoption("--xfails-file", default=None, metavar="PATH",
                    help="claim ids expected to fail for this implementation (one per line, # comments)")
    group.addoption("--claims-report", default=None, metavar="PATH",
                    help="write the claims report here: .json, or .html (one self-contained page, the JSON "
                         "beside it)")
    group.addoption("--claims-table", action="store_true",
                    help="end with a verdict table: one line per claim test, its key check against its bound")
    group.addoption("--cache-only", action="store_true",
                    help="train nothing: claims whose results are not cached are skipped")
    group.addoption("--train-timeout", default=None, metavar="SECONDS",
                    help=f"time limit of one training (default {TRAIN_TIMEOUT:g}; none when -m selects "
                         "slow; 0: none)")
    group.addoption("--executor", default=None, metavar="SPEC",
                    help="train the selected claims' specs first, on: inprocess, processes[:N], "
                         f"dask-local[:N] or dask://HOST:PORT (default: ${EXECUTOR_ENV}, else each claim "
                         "trains when it runs)")
    group.addoption("--worker-threads", default="1", metavar="N",
                    help="threads of one training on an executor's workers (default 1)")
    group.addoption("--device", default=None, metavar="NAME",
                    help=f"train every spec on this device: cpu, cuda (default: ${DEVICE_ENV}, else each "
                         "spec's own)")
    group.addoption("--train-only", action="store_true",
                    help="train what the selected claims need into the cache (through --executor), "
                         "check nothing")
    group.addoption("--train-seeds", default=None, metavar="LIST",
                    help="with --train-only: the claims seeds to train for, e.g. 0-3 (default --claims-seed)")


class SuiteState:
    """Per-session state: the implementation, the caches, and the collected claim records."""

    def __init__(self, config: pytest.Config):
        """Check every option (OptionError on the first that cannot work) and, when it is named,
        import the implementation."""
        self.config = config
        option = config.getoption("--impl")
        self.impl_name = selected_name(option)
        self.impl_source = selection_source(option)
        self.seed = _int_option("--claims-seed", config.getoption("--claims-seed"), 0, SEED_LIMIT - 1,
                                "the base seed added to every claim's spec seeds")
        self.train_timeout = _train_timeout(config)
        self.regen = bool(config.getoption("--regen-baselines"))
        self.no_cache = bool(config.getoption("--no-cache"))
        self.cache_only = bool(config.getoption("--cache-only"))
        if self.cache_only and self.no_cache:
            raise OptionError("--cache-only reads results from the cache and --no-cache ignores it: "
                              "give one of them")
        self._impl: Callable[[Spec], Any] | None = None
        self._impl_error: ImplementationError | None = None
        self._code = ""
        self.memory: dict[str, Result] = {}
        self.records: list[dict[str, Any]] = []
        self.started = datetime.datetime.now().isoformat(timespec="seconds")
        #: the test now running, as pytest_runtest_logstart gave it (nodeid, location)
        self.running: tuple[str, tuple[str, int | None, str]] | None = None
        self.progress = TrainingProgress("off", write=lambda line: None)
        #: one line per spec whose reported held-out losses the suite's recomputation contradicts
        self.notices: dict[str, str] = {}
        #: cache faults (a file retrained, a result not written), each said once in the summary
        self.warnings: dict[str, None] = {}
        if self.regen and (not self.is_reference or self.seed != 0):
            why = [f"this run tests implementation {self.impl_name!r} ({self.impl_source})"] if (
                not self.is_reference) else []
            why += [f"--claims-seed is {self.seed}"] if self.seed != 0 else []
            raise OptionError(f"--regen-baselines rewrites the reference implementation's own numbers "
                              f"('{DEFAULT}', claims seed 0), and {' and '.join(why)}: nothing would be "
                              "written; drop --regen-baselines, or regenerate with the reference at seed 0")
        self.xfail_ids, self.unknown_xfails = self._read_xfails(config.getoption("--xfails-file"))
        self.said_unknown_xfails = False
        report = config.getoption("--claims-report")
        self.report_path = _writable_file("--claims-report", Path(report)) if report else None
        self.baselines = BaselineStore(self._baselines_dir(config), regen=self.regen)
        self.cache = None if self.no_cache else self._open_cache()
        self.device = self._device_option(config)
        self.train_only = bool(config.getoption("--train-only"))
        self.executor = self._executor_option(config)
        self.train_seeds = self._train_seeds_option(config)
        #: spec hash -> the one line of an executor's failed training (not trained again in process)
        self.failed: dict[str, str] = {}
        #: whether an executor trained this run's specs before the claims ran
        self.prefetched = False
        #: specs the discovery pass did not find, trained in process when a claim asked (hash -> name)
        self.missed: dict[str, str] = {}
        if option or os.environ.get(ENV_VAR):
            self.load_implementation()

    @staticmethod
    def _device_option(config: pytest.Config) -> str | None:
        raw = config.getoption("--device") or os.environ.get(DEVICE_ENV) or None
        if raw is None:
            return None
        device = raw.strip()
        if not device or any(c.isspace() for c in device):
            raise OptionError(f"--device {raw!r}: give a device name such as 'cpu' or 'cuda'")
        return device

    def _executor_option(self, config: pytest.Config) -> Executor | None:
        """The executor (--executor, else $TOYMODEL_EXECUTOR; ``inprocess`` for --train-only), checked
        against the options it cannot go with; None: each claim trains when it runs."""
        raw = config.getoption("--executor")
        source = f"--executor {raw}" if raw else f"{EXECUTOR_ENV}={os.environ.get(EXECUTOR_ENV)}"
        raw = raw or os.environ.get(EXECUTOR_ENV) or ("inprocess" if self.train_only else None)
        if raw is None:
            return None
        threads = _int_option("--worker-threads", config.getoption("--worker-threads"), 1, 4096,
                              "threads of one training on an executor's workers")
        try:
            executor = parse_executor(raw, threads=threads)
        except ExecutorError as exc:
            raise OptionError(str(exc).replace(f"--executor {raw}", source, 1)) from None
        if self.cache_only:
            raise OptionError(f"{source} trains the claims' specs and --cache-only trains nothing: give "
                              "one of them")
        if (config.getoption("numprocesses", None) or 0) and not _is_worker(config):
            raise OptionError(f"{source} trains every spec before the claims run and -n (pytest-xdist) "
                              "runs the claims in worker processes that train what they need: give one of "
                              "them (e.g. --executor processes:N)")
        return executor

    def _train_seeds_option(self, config: pytest.Config) -> list[int]:
        raw = config.getoption("--train-seeds")
        if raw is None:
            return [self.seed]
        if not self.train_only:
            raise OptionError("--train-seeds says which claims seeds --train-only trains for: give "
                              "--train-only too (a run that checks claims checks them at --claims-seed)")
        seeds: list[int] = []
        try:
            for part in str(raw).split(","):
                lo, _, hi = part.strip().partition("-")
                seeds.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            seeds = []
        if not seeds or any(not 0 <= k < SEED_LIMIT for k in seeds):
            raise OptionError(f"--train-seeds {raw}: give claims seeds from 0 to {SEED_LIMIT - 1}, e.g. "
                              "0-3 or 0,5,9")
        return sorted(set(seeds))

    def _open_cache(self) -> ResultCache:
        root = default_cache_dir()
        try:
            check_cache_dir(root, cache_dir_source())
        except CacheDirError as exc:
            raise OptionError(str(exc)) from None
        return ResultCache(root, warn=self.warn, lock_timeout=self.train_timeout or None)

    def warn(self, line: str) -> None:
        """Note a cache fault once; printed in the terminal summary."""
        self.warnings.setdefault(line, None)

    def load_implementation(self) -> None:
        """Import the implementation now; OptionError (naming what chose it) if it cannot be."""
        try:
            self._impl = resolve(self.impl_name, search_path=str(self.config.invocation_params.dir))
        except ImplementationError as exc:
            if _full_tracebacks(self.config) and exc.__cause__ is not None:
                traceback.print_exception(exc.__cause__, file=sys.stderr)
            text = str(exc).removeprefix(f"implementation {self.impl_name!r}: ")  # the source names it
            raise OptionError(f"{self.impl_source}: {text}") from None

    @staticmethod
    def _baselines_dir(config: pytest.Config) -> Path:
        explicit = config.getoption("--baselines-dir")
        if explicit:
            path = Path(explicit)
            if path.exists() and not path.is_dir():
                raise OptionError(f"--baselines-dir {explicit}: is a file, not a folder")
            if not path.exists() and not config.getoption("--regen-baselines"):
                raise OptionError(f"--baselines-dir {explicit}: no such folder "
                                  "(--regen-baselines creates it)")
            return path
        local = Path(config.rootpath) / "baselines"
        if local.is_dir():
            return local
        installed = shipped_baselines()
        return installed if installed.is_dir() else local

    @staticmethod
    def _read_xfails(path: str | None) -> tuple[dict[str, str], list[str]]:
        if not path:
            return {}, []
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise OptionError(f"--xfails-file {path}: cannot read it ({reason})") from None
        ids: dict[str, str] = {}
        for line in lines:
            text = line.split("#", 1)[0].strip()
            if text:
                ids[text] = f"declared as a known failure in {path}"
        return ids, []

    @property
    def loaded(self) -> bool:
        """Whether the implementation is imported (at the start when named, else after collection)."""
        return self._impl is not None

    @property
    def is_reference(self) -> bool:
        return self.impl_name == DEFAULT

    def implementation(self) -> Callable[[Spec], Any]:
        if self._impl_error is not None:
            raise self._impl_error
        if self._impl is None:  # a test that asks for `trained` only at run time
            try:
                self._impl = resolve(self.impl_name, search_path=str(self.config.invocation_params.dir))
            except ImplementationError as exc:
                self._impl_error = exc
                raise
        if not self._code:
            # once, at the first training, for the code this process imported (an edit made later
            # in the session must not label results of the old code with the new code's hash)
            self._code = fingerprint(self._impl)
        return self._impl

    def reseed(self, spec: Spec, seed: int | None = None) -> Spec:
        """``spec`` as this run trains it: its seed plus the claims seed (``seed``, default
        --claims-seed), on --device when one is given."""
        offset = self.seed if seed is None else seed
        changes: dict[str, Any] = {"seed": spec.seed + offset} if offset else {}
        if self.device is not None and spec.device != self.device:
            changes["device"] = self.device
        return spec.replace(**changes) if changes else spec

    def train(self, spec: Spec) -> Result:
        spec = self.reseed(spec)
        key = spec.hash()
        if key in self.memory:
            return self.memory[key]
        if key in self.failed:  # the executor's training failed: said once per claim, not retrained
            raise ImplementationError(self.failed[key])
        impl = self.implementation()

        def fresh(s: Spec) -> Result:
            if self.cache_only:
                raise NotCached(f"not in the result cache {self.cache.root if self.cache else ''}: spec "
                                f"{s.hash()} ({s.name or s.model}); --cache-only trains nothing")
            if self.prefetched:
                self.missed[s.hash()] = describe(s)
            with self.progress.training(s):
                return run(self.impl_name, s, impl, timeout=self.train_timeout or None)

        if self.cache is not None:
            result = self.cache.get_or_train(spec, self.impl_name, self._code, fresh)
        else:
            result = fresh(spec)
        self.memory[key] = result
        notice = eval_loss_disagreement(result)
        if notice is not None:
            self.notices.setdefault(key, notice)
        return result


    def prefetch(self, items: list[pytest.Item]) -> None:
        """Train every spec the claim tests in ``items`` ask for (at each of --train-seeds) through
        the executor into the cache, before any claim runs (see the module docstring). OptionError
        when the executor cannot start."""
        executor = self.executor
        assert executor is not None
        self.implementation()  # loaded after collection; its fingerprint keys what comes back
        found = discover([i for i in items if _trains(i)], impl_name=self.impl_name, seed=self.seed)
        specs: dict[str, Spec] = {}
        for k in self.train_seeds:
            for raw in found.specs:
                s = self.reseed(raw, k)
                specs.setdefault(s.hash(), s)
        todo = [s for h, s in specs.items() if h not in self.memory and not (
            self.cache is not None and self.cache.has(s, self.impl_name, self._code))]
        seeds = f" at claims seeds {_seed_list(self.train_seeds)}" if len(self.train_seeds) > 1 else ""
        quiet = self.progress.mode == "off"

        def say(line: str) -> None:
            if not quiet:
                self.progress.write(line)
        say(f"toymodel: the claims ask for {len(specs)} spec(s){seeds} (found in {found.seconds:.1f} s); "
            f"{len(specs) - len(todo)} cached, {len(todo)} to train on {executor.text}")
        self.prefetched = True
        if not todo:
            return
        job = Job(self.impl_name, search_path=str(self.config.invocation_params.dir),
                  timeout=self.train_timeout or None, threads=executor.threads)
        start = datetime.datetime.now()
        try:
            executor.start()
        except ExecutorError as exc:
            executor.close()
            raise OptionError(str(exc)) from None
        progress = BatchProgress(self.progress.mode, write=say, visible=self.progress.visible)
        try:
            where = executor.where()
            say(f"toymodel: training on {where}")
            with progress.batch(len(todo), f"{len(todo)} spec(s) on {executor.text}"):
                for out in executor.train(job, sorted(todo, key=work, reverse=True)):
                    progress.finished(self._receive(out))
        finally:
            executor.close()
        seconds = (datetime.datetime.now() - start).total_seconds()
        failed = sum(s.hash() in self.failed for s in todo)
        say(f"toymodel: {len(todo) - failed} of {len(todo)} spec(s) trained on {executor.text} in "
            f"{seconds:.1f} s" + (f"; {failed} failed (their claims fail with its error)" if failed else ""))
        self.progress.resume()

    def _receive(self, out: Outcome) -> str:
        """Keep what one job brought back (the cache, else memory; a failure's line); its line."""
        spec, key = out.spec, out.spec.hash()
        if out.result is None:
            self.failed[key] = out.error
            return f"toymodel: FAILED {describe(spec)!r}: {out.error}"
        keep = self.cache is not None
        if out.code != self._code or out.version != __version__:
            keep = False
            self.warn(f"worker {out.worker} has other code for implementation {self.impl_name!r} than this "
                      f"process (fingerprint {out.code}, toymodel {out.version}; here {self._code}, "
                      f"{__version__}): its results are used in this run, not cached")
        if not (keep and self.cache is not None and self.cache.store(spec, self.impl_name, self._code,
                                                                       out.result)):
            self.memory[key] = out.result
        self.progress.trained += 1
        notice = eval_loss_disagreement(out.result)
        if notice is not None:
            self.notices.setdefault(key, notice)
        return (f"toymodel: trained {describe(spec)!r} ({spec.instances} instances × {spec.train.steps} "
                f"steps) on {out.worker} in {out.seconds:.1f} s")


def _seed_list(seeds: list[int]) -> str:
    """``0-3,7`` for [0, 1, 2, 3, 7]."""
    runs: list[list[int]] = []
    for k in seeds:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def shipped_baselines() -> Path:
    """The baselines shipped beside the installed claims (``toymodel/baselines/`` in a wheel, the
    checkout's ``baselines/`` in an editable install)."""
    try:
        import toymodel.claims as claims

        return Path(claims.__file__).resolve().parents[1] / "baselines"
    except (ImportError, TypeError):
        return Path(__file__).with_name("baselines")


def default_calibration_dir() -> Path:
    """``calibration/`` beside the installed claims (the checkout's in an editable install)."""
    return shipped_baselines().parent / "calibration"


def _state(config: pytest.Config) -> SuiteState:
    return config.stash[_STATE_KEY]


def _int_option(option: str, raw: object, lo: int, hi: int, what: str) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise OptionError(f"{option} {raw}: must be an integer from {lo} to {hi} ({what})")
    return value


def _train_timeout(config: pytest.Config) -> float:
    """Seconds one training may take (0: no limit): the option, else TRAIN_TIMEOUT, else none
    when the -m expression selects the paper-scale tier."""
    raw = config.getoption("--train-timeout")
    if raw is None:
        marks = config.getoption("-m") or ""
        return 0.0 if "slow" in marks and "not slow" not in marks else TRAIN_TIMEOUT
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise OptionError(f"--train-timeout {raw}: must be a number of seconds >= 0 (0: no limit)")
    return value


def _writable_file(option: str, path: Path) -> Path:
    """``path`` if a file can be written there (its folder is created now); else OptionError."""
    if path.is_dir():
        raise OptionError(f"{option} {path}: is a folder; give a file name, e.g. {path / 'report.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(f"{option} {path}: its folder cannot be created ({exc.strerror or exc})") from None
    if not os.access(path.parent, os.W_OK):
        raise OptionError(f"{option} {path}: its folder {path.parent} is not writable")
    return path


def _full_tracebacks(config: pytest.Config) -> bool:
    """-v or --tb=long/native: the user asked for tracebacks, so failures keep pytest's report."""
    return config.getoption("verbose") > 0 or config.getoption("tbstyle") in ("long", "native")


def _trains(item: pytest.Item) -> bool:
    return "trained" in getattr(item, "fixturenames", ()) and item.get_closest_marker("skip") is None


def _is_worker(config: pytest.Config) -> bool:
    """A pytest-xdist worker (its controller writes the report and shows progress)."""
    return hasattr(config, "workerinput")


def _progress_mode(config: pytest.Config) -> Mode:
    if config.getoption("verbose") < 0 or _is_worker(config) or (
            config.pluginmanager.get_plugin("terminalreporter") is None):
        return "off"
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "live" if tty and os.environ.get("TERM") != "dumb" else "lines"


@contextlib.contextmanager
def _uncaptured(config: pytest.Config) -> Iterator[None]:
    """pytest's output capture suspended: what is written here reaches the terminal."""
    capman = config.pluginmanager.get_plugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


def _writer(config: pytest.Config) -> Callable[[str], None]:
    """Write one line of our own between pytest's progress output, on a fresh line, outside the
    capture; pytest's next result starts a new line and repeats the file name."""

    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        with _uncaptured(config):
            reporter.ensure_newline()
            tw = config.get_terminal_writer()
            if tw.width_of_current_line:
                tw.line()
            tw.write(line, flush=True)

    return write


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
    kept = (f"are kept in the cache {st.cache.root}, and a rerun reuses them" if st.cache is not None
            else "are not kept (--no-cache)")
    st.progress = TrainingProgress("off", write=_writer(config), visible=lambda: _uncaptured(config),
                                   resume=lambda: _resume(config), kept=kept)
    _SESSIONS.append(st)


def _resume(config: pytest.Config) -> None:
    """After a line of ours inside a test: repeat what pytest wrote when the test started (its
    file, or with -v its name), so that its result lands on that line, not after ours."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    st = config.stash.get(_STATE_KEY, None)
    if reporter is None or st is None or st.running is None:
        return
    with _uncaptured(config):
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
        st.progress.mode = _progress_mode(session.config)


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
    if (st is None or st.executor is None or _is_worker(session.config) or session.testsfailed
            or session.config.option.collectonly):
        return None
    if any(_trains(item) for item in session.items):
        try:
            st.prefetch(session.items)
        except OptionError as exc:
            pytest.exit(f"toymodel: {exc}", returncode=2)
    if not st.train_only:
        return None
    session.testsfailed += len(st.failed)  # exit status 1 when a training failed
    return True


def pytest_report_header(config: pytest.Config) -> list[str]:
    st = _state(config)
    limit = f"{st.train_timeout:g} s" if st.train_timeout else "none"
    lines = [f"toymodel {__version__}: implementation under test = {st.impl_name!r}, claims seed = "
             f"{st.seed}, result cache = {st.cache.root if st.cache else 'off'}, "
             f"baselines = {st.baselines.root}{' (regenerating)' if st.regen else ''}, "
             f"time limit per training = {limit}"]
    if st.executor is not None:
        threads = f", {st.executor.threads} thread(s) per training" if st.executor.threads else ""
        lines.append(f"toymodel: executor = {st.executor.text}{threads}"
                     + (" (--train-only: no claim is checked)" if st.train_only else ""))
    if st.device is not None:
        lines.append(f"toymodel: every spec trains on device {st.device!r}")
    if st.xfail_ids:
        lines.append(f"toymodel: {len(st.xfail_ids)} claim(s) declared as known failures")
    if st.report_path is not None and figures_unavailable() is not None:
        lines.append(f"toymodel: the report has no figures: {figures_unavailable()}")
    import importlib.util

    # without torch, a run that trains with the reference stops after collection with one line
    if st.is_reference and importlib.util.find_spec("torch") is not None:
        from .reference.kernel import fused

        if not fused.available():
            lines.append(f"toymodel: fused kernel unavailable ({fused.unavailable_reason()}): "
                         "training takes the unfused path, ~2-5x slower")
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
        if st.unknown_xfails and not _is_worker(config):
            st.said_unknown_xfails = True
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            text = (f"toymodel WARNING: --xfails-file names claim ids that no collected test has: "
                    f"{', '.join(st.unknown_xfails)}")
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
    """The :class:`toymodel.claim.Claim` of this test."""
    st = _state(request.config)
    cid = _claim_id(request.node) or request.node.name
    fig_dir = None
    if st.report_path is not None:
        fig_dir = st.report_path.parent / f"{st.report_path.stem}-figures"
    theory = request.node.get_closest_marker("theory") is not None
    # the regression baselines are the reference's numbers on the CPU
    reference = st.is_reference and st.device in (None, "cpu")
    c = Claim(id=cid, implementation=st.impl_name, seed=st.seed, reference=reference,
              baselines=st.baselines, figure_dir=fig_dir, tier="theory" if theory else "implementation")
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
        strict_xpass = (report.when == "call" and report.failed and error is None
                        and str(report.longrepr or "").startswith("[XPASS(strict)]"))
        if isinstance(error, BaselineError):
            verdict = "regression-failed"
        elif isinstance(error, ImplementationFailure):
            verdict = "implementation-error"
        elif strict_xpass:
            declared = st.xfail_ids.get(c.id)
            verdict = "xpassed-declared" if declared else "xpassed"
            why = declared or f"the suite expects it to fail: {str(report.longrepr).split('] ', 1)[-1]}"
            advice = ": remove it from that file" if declared else ""
            message = (f"[{c.id}] passed, but it is {why}{advice} (implementation {c.implementation!r}, "
                       f"claims seed {c.seed})")
            if not _full_tracebacks(item.config):
                report.longrepr = _OneLine(f"{item.nodeid}: {message}")  # type: ignore[assignment]
        elif hasattr(report, "wasxfail"):
            verdict = "xfailed" if report.skipped else "xpassed"
        else:
            verdict = report.outcome
        record = c.as_dict()
        record.update({"test": item.nodeid, "verdict": verdict, "message": message,
                       "section": next((m for m in SECTIONS if item.get_closest_marker(m) is not None), ""),
                       "statement": _statement(item), "duration": report.duration})
        st.records.append(record)
    if report.failed and isinstance(error, _ONE_LINE) and not _full_tracebacks(item.config):
        report.longrepr = _OneLine(f"{item.nodeid}: {error}")  # type: ignore[assignment]
    return report


def _statement(item: pytest.Item) -> str:
    """The claim as the test's docstring states it (the paper's sentence), on one paragraph per
    paragraph."""
    doc = inspect.getdoc(getattr(item, "function", None)) or ""
    return "\n\n".join(" ".join(p.split()) for p in doc.split("\n\n") if p.strip())


class _OneLine:
    """A failure reported as one line: the message says it all. Without a ``reprcrash`` pytest's
    short summary names the test and does not repeat the line; ``str`` is what xdist carries."""

    def __init__(self, line: str):
        self.line = line

    def toterminal(self, tw: Any) -> None:
        tw.line(self.line)

    def __str__(self) -> str:
        return self.line


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    st = config.stash.get(_STATE_KEY, None)
    if st is None or not (st.records or st.notices or st.regen or st.warnings or st.missed):
        return
    terminalreporter.write_sep("=", f"toymodel: implementation {st.impl_name!r}, claims seed {st.seed}")
    impl = _summary([r for r in st.records if r.get("tier") != "theory"])
    theory = _summary([r for r in st.records if r.get("tier") == "theory"])
    if impl:
        terminalreporter.write_line("verdicts on the implementation: " + _counts(impl))
    if theory:
        terminalreporter.write_line("theory tier (the suite's closed forms, no implementation involved): "
                                    + _counts(theory))
    if st.unknown_xfails and not st.said_unknown_xfails:
        terminalreporter.write_line("toymodel WARNING: --xfails-file names claim ids that no collected test "
                                    f"has: {', '.join(st.unknown_xfails)}", yellow=True)
    if st.missed:
        terminalreporter.write_line(f"toymodel: {len(st.missed)} spec(s) the discovery pass did not find "
                                    "were trained in process when their claims asked: "
                                    + ", ".join(st.missed.values()))
    for line in st.notices.values():
        terminalreporter.write_line(f"NOTE: {line}", yellow=True)
    for line in st.warnings:
        terminalreporter.write_line(f"toymodel WARNING: {line}", yellow=True)
    if config.getoption("--claims-table"):
        for line, failing in verdict_lines(_payload(st), default_calibration_dir()):
            terminalreporter.write_line(line, red=failing)
    if st.regen:
        changes = st.baselines.changes
        terminalreporter.write_line(f"--regen-baselines wrote {len(changes)} change(s) to {st.baselines.root}"
                                    + (":" if changes else ""))
        for line in changes:
            terminalreporter.write_line(f"  {line}")


def _counts(summary: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(summary.items()))


def _payload(st: SuiteState, interrupted: bool = False) -> dict[str, Any]:
    claims = [r for r in st.records if r.get("tier") != "theory"]
    theory = [r for r in st.records if r.get("tier") == "theory"]
    payload = {"toymodel": __version__, "implementation": st.impl_name, "claims_seed": st.seed,
               "started": st.started, "unknown_xfail_ids": st.unknown_xfails,
               "notices": list(st.notices.values()), "warnings": list(st.warnings),
               "figures_skipped": figures_unavailable() if st.report_path is not None else None,
               "summary": _summary(claims), "claims": claims,
               "theory_summary": _summary(theory), "theory": theory}
    if interrupted:
        payload["interrupted"] = True
    return payload


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    st = session.config.stash.get(_STATE_KEY, None)
    if st is None:
        return
    if _is_worker(session.config):  # the controller merges the workers' records (pytest_testnodedown)
        session.config.workeroutput["toymodel"] = json.dumps(jsonable({  # type: ignore[attr-defined]
            "records": st.records, "notices": st.notices, "warnings": list(st.warnings),
            "unknown_xfails": st.unknown_xfails}))
        return
    if st.report_path is None:
        return
    base = st.report_path.parent.resolve()
    for record in st.records:  # figure paths relative to the report, so that the folder can move
        record["figures"] = [os.path.relpath(Path(f).resolve(), base) for f in record.get("figures", [])]
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    try:
        write(_payload(st, interrupted), st.report_path, calibration=default_calibration_dir())
    except Exception as exc:  # the JSON is written first; a page that cannot be rendered is said
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = (f"toymodel WARNING: the report {st.report_path} could not be written "
                f"({type(exc).__name__}: {exc})")
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
    if st is None or _is_worker(st.config):
        return
    lines = [] if st.progress.interrupted is not None else [  # else the cut-short training said it
        f"toymodel: interrupted; the {st.progress.trained} result(s) trained in this run {st.progress.kept}"]
    if st.report_path is not None:
        lines.append(f"toymodel: the report {st.report_path} holds the claims finished before the interrupt")
    for line in lines:
        _writer(st.config)(line + "\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    st = config.stash.get(_STATE_KEY, None)
    if st in _SESSIONS:
        _SESSIONS.remove(st)


def _summary(records: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r["verdict"]] = out.get(r["verdict"], 0) + 1
    return out
