"""The state of a claims session: its options, checked before any test runs, the implementation
under test, the result cache and the baselines, the results trained so far and the claim records
(:class:`SuiteState`, one per pytest session, kept by :mod:`toymodel.suite.plugin`), and with an
executor the training of every spec the claims ask for before they run (:meth:`SuiteState.prefetch`)."""

from __future__ import annotations

import datetime
import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .. import __version__
from ..report.figures import figures_unavailable
from ..report.records import summary
from ..result import Result, eval_loss_disagreement
from ..spec import Spec
from .baselines import BaselineStore
from .cache import (
    CacheDirError,
    ResultCache,
    cache_dir_source,
    check_cache_dir,
    default_cache_dir,
    fingerprint,
)
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
from .progress import BatchProgress, TrainingProgress, describe, work
from .shipped import shipped_baselines

__all__ = [
    "DEVICE_ENV",
    "SEED_LIMIT",
    "TRAIN_TIMEOUT",
    "NotCached",
    "OptionError",
    "SuiteState",
    "full_tracebacks",
    "is_worker",
]

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


class SuiteState:
    """Per-session state: the implementation, the caches, and the collected claim records."""

    def __init__(self, config: pytest.Config):
        """Check every option (OptionError on the first that cannot work) and, when it is named,
        import the implementation."""
        self.config = config
        option = config.getoption("--impl")
        self.impl_name = selected_name(option)
        self.impl_source = selection_source(option)
        self.seed = _int_option(
            "--claims-seed",
            config.getoption("--claims-seed"),
            0,
            SEED_LIMIT - 1,
            "the base seed added to every claim's spec seeds",
        )
        self.train_timeout = _train_timeout(config)
        self.regen = bool(config.getoption("--regen-baselines"))
        self.no_cache = bool(config.getoption("--no-cache"))
        self.cache_only = bool(config.getoption("--cache-only"))
        if self.cache_only and self.no_cache:
            raise OptionError(
                "--cache-only reads results from the cache and --no-cache ignores it: give one of them"
            )
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
            why = (
                [f"this run tests implementation {self.impl_name!r} ({self.impl_source})"]
                if (not self.is_reference)
                else []
            )
            why += [f"--claims-seed is {self.seed}"] if self.seed != 0 else []
            raise OptionError(
                f"--regen-baselines rewrites the reference implementation's own numbers "
                f"('{DEFAULT}', claims seed 0), and {' and '.join(why)}: nothing would be "
                "written; drop --regen-baselines, or regenerate with the reference at seed 0"
            )
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
        threads = _int_option(
            "--worker-threads",
            config.getoption("--worker-threads"),
            1,
            4096,
            "threads of one training on an executor's workers",
        )
        try:
            executor = parse_executor(raw, threads=threads)
        except ExecutorError as exc:
            raise OptionError(str(exc).replace(f"--executor {raw}", source, 1)) from None
        if self.cache_only:
            raise OptionError(
                f"{source} trains the claims' specs and --cache-only trains nothing: give one of them"
            )
        if (config.getoption("numprocesses", None) or 0) and not is_worker(config):
            raise OptionError(
                f"{source} trains every spec before the claims run and -n (pytest-xdist) "
                "runs the claims in worker processes that train what they need: give one of "
                "them (e.g. --executor processes:N)"
            )
        return executor

    def _train_seeds_option(self, config: pytest.Config) -> list[int]:
        raw = config.getoption("--train-seeds")
        if raw is None:
            return [self.seed]
        if not self.train_only:
            raise OptionError(
                "--train-seeds says which claims seeds --train-only trains for: give "
                "--train-only too (a run that checks claims checks them at --claims-seed)"
            )
        seeds: list[int] = []
        try:
            for part in str(raw).split(","):
                lo, _, hi = part.strip().partition("-")
                seeds.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            seeds = []
        if not seeds or any(not 0 <= k < SEED_LIMIT for k in seeds):
            raise OptionError(
                f"--train-seeds {raw}: give claims seeds from 0 to {SEED_LIMIT - 1}, e.g. 0-3 or 0,5,9"
            )
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
            if full_tracebacks(self.config) and exc.__cause__ is not None:
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
                raise OptionError(
                    f"--baselines-dir {explicit}: no such folder (--regen-baselines creates it)"
                )
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
                raise NotCached(
                    f"not in the result cache {self.cache.root if self.cache else ''}: spec "
                    f"{s.hash()} ({s.name or s.model}); --cache-only trains nothing"
                )
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
        """Train every spec the claim tests ``items`` (those that ask for ``trained``) ask for, at each
        of --train-seeds, through the executor into the cache, before any claim runs (see
        :mod:`toymodel.suite.plugin`). OptionError when the executor cannot start."""
        executor = self.executor
        assert executor is not None
        self.implementation()  # loaded after collection; its fingerprint keys what comes back
        found = discover(items, impl_name=self.impl_name, seed=self.seed)
        specs: dict[str, Spec] = {}
        for k in self.train_seeds:
            for raw in found.specs:
                s = self.reseed(raw, k)
                specs.setdefault(s.hash(), s)
        todo = [
            s
            for h, s in specs.items()
            if h not in self.memory
            and not (self.cache is not None and self.cache.has(s, self.impl_name, self._code))
        ]
        seeds = f" at claims seeds {_seed_list(self.train_seeds)}" if len(self.train_seeds) > 1 else ""
        quiet = self.progress.mode == "off"

        def say(line: str) -> None:
            if not quiet:
                self.progress.write(line)

        say(
            f"toymodel: the claims ask for {len(specs)} spec(s){seeds} (found in {found.seconds:.1f} s); "
            f"{len(specs) - len(todo)} cached, {len(todo)} to train on {executor.text}"
        )
        self.prefetched = True
        if not todo:
            return
        job = Job(
            self.impl_name,
            search_path=str(self.config.invocation_params.dir),
            timeout=self.train_timeout or None,
            threads=executor.threads,
        )
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
        say(
            f"toymodel: {len(todo) - failed} of {len(todo)} spec(s) trained on {executor.text} in "
            f"{seconds:.1f} s" + (f"; {failed} failed (their claims fail with its error)" if failed else "")
        )
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
            self.warn(
                f"worker {out.worker} has other code for implementation {self.impl_name!r} than this "
                f"process (fingerprint {out.code}, toymodel {out.version}; here {self._code}, "
                f"{__version__}): its results are used in this run, not cached"
            )
        if not (
            keep and self.cache is not None and self.cache.store(spec, self.impl_name, self._code, out.result)
        ):
            self.memory[key] = out.result
        self.progress.trained += 1
        notice = eval_loss_disagreement(out.result)
        if notice is not None:
            self.notices.setdefault(key, notice)
        return (
            f"toymodel: trained {describe(spec)!r} ({spec.instances} instances × {spec.train.steps} "
            f"steps) on {out.worker} in {out.seconds:.1f} s"
        )

    def payload(self, interrupted: bool = False) -> dict[str, Any]:
        """The claims report of this session so far (:mod:`toymodel.report.records`)."""
        claims = [r for r in self.records if r.get("tier") != "theory"]
        theory = [r for r in self.records if r.get("tier") == "theory"]
        payload = {
            "toymodel": __version__,
            "implementation": self.impl_name,
            "claims_seed": self.seed,
            "started": self.started,
            "unknown_xfail_ids": self.unknown_xfails,
            "notices": list(self.notices.values()),
            "warnings": list(self.warnings),
            "figures_skipped": figures_unavailable() if self.report_path is not None else None,
            "summary": summary(claims),
            "claims": claims,
            "theory_summary": summary(theory),
            "theory": theory,
        }
        if interrupted:
            payload["interrupted"] = True
        return payload


def _seed_list(seeds: list[int]) -> str:
    """``0-3,7`` for [0, 1, 2, 3, 7]."""
    runs: list[list[int]] = []
    for k in seeds:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


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


def full_tracebacks(config: pytest.Config) -> bool:
    """-v or --tb=long/native: the user asked for tracebacks, so failures keep pytest's report."""
    return config.getoption("verbose") > 0 or config.getoption("tbstyle") in ("long", "native")


def is_worker(config: pytest.Config) -> bool:
    """A pytest-xdist worker (its controller writes the report and shows progress)."""
    return hasattr(config, "workerinput")
