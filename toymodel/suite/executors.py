"""Where the specs of a run are trained: in this process, in local worker processes, or on a Dask
``distributed`` cluster. The claims engine collects every spec the selected claims need, hands
them to an executor, writes each result to its cache as it comes back, and only then runs the
claims, which read from the cache (:mod:`toymodel.suite.plugin`, ``--executor``).

Executors (``--executor``, else ``$TOYMODEL_EXECUTOR``; :func:`parse`):

- ``inprocess``: one spec after another in this process (the default run trains the same way,
  lazily, inside each claim test, and needs no collecting pass);
- ``processes[:N]``: ``N`` local worker processes (:class:`concurrent.futures.ProcessPoolExecutor`,
  spawned; default: one per core);
- ``dask-local[:N]``: a ``distributed.LocalCluster`` of ``N`` single-threaded worker processes
  started for the run and closed after it;
- ``dask://HOST:PORT`` (or ``tcp://``, ``tls://``): the Dask scheduler of a running cluster.

The unit of work is one spec trained by one implementation (:func:`train_job`). A job runs
wherever the executor puts it: the worker imports the implementation by its name (a registered
one or ``module:attr``), sets its thread count (``threads``: BLAS through threadpoolctl and torch's
intra-op pool; the reference's last bits depend on it, so the same spec, implementation and thread
count give the same bits wherever they run), trains and validates. The job never raises: what goes
wrong comes back as an :class:`Outcome` with a one-line ``error``, which the engine reports as that
implementation's error (the existing one-line path) without training the spec again: an
implementation that raises or breaks the contract (``kind="implementation"``), one that cannot be
imported on that worker (``kind="import"``, naming the worker), a job that the executor lost
(``kind="lost"``: its worker died too often, or the job could not run there at all).

The result comes back to the client with the worker's code fingerprint
(:func:`toymodel.suite.cache.fingerprint`) and package version: the client stores it under the key
the in-process run would use, ``(spec hash, implementation name, fingerprint, version)``, and a
worker whose code differs from the client's is reported (its results are then kept under the
worker's own fingerprint).

Faults: a worker process that dies mid-job has its jobs run again on another worker (Dask's
scheduler does it, up to its ``distributed.scheduler.allowed-failures`` deaths per job; the
``processes`` executor rebuilds its pool and resubmits, up to :data:`MAX_DEATHS`); Ctrl-C cancels
every job not finished (the local executors stop their workers; a remote cluster's running jobs
finish and are dropped) and keeps the results already returned. The ``--train-timeout`` limit
holds in process and in the ``processes`` workers (the job runs in a main thread); Dask runs
jobs in worker threads, where the limit cannot stop a training (it is not enforced there).
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .. import __version__
from ..result import ContractError, Result
from ..spec import Spec
from .cache import fingerprint
from .implementations import ImplementationError, resolve, run

__all__ = [
    "ENV_VAR",
    "MAX_DEATHS",
    "Executor",
    "ExecutorError",
    "Outcome",
    "describe_choices",
    "parse",
    "train_job",
]

#: the environment variable read when no ``--executor`` is given
ENV_VAR = "TOYMODEL_EXECUTOR"
#: deaths of a ``processes`` worker while a job was running, after which the job is given up
MAX_DEATHS = 3

OutcomeKind = Literal["ok", "implementation", "import", "lost"]


class ExecutorError(Exception):
    """An executor that cannot be used (bad text, ``distributed`` not installed, no scheduler)."""


@dataclass(frozen=True)
class Outcome:
    """What came back for one spec: a result, or a one-line error; where and how long it ran."""

    spec: Spec
    result: Result | None
    error: str
    kind: OutcomeKind
    worker: str
    seconds: float
    code: str = ""
    version: str = __version__


# ------------------------------------------------------------------------------------------
# the job, run on a worker
# ------------------------------------------------------------------------------------------
_IMPLS: dict[str, tuple[Callable[[Spec], Any], str]] = {}


def _worker_name() -> str:
    """This worker as a person finds it: the Dask worker's address, else host and process id."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()} process {os.getpid()}"


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """BLAS, torch and ``$OMP_NUM_THREADS`` (which implementations read for their own thread
    pools, the numpy one among them) at ``count`` threads inside the block (None: as they are)."""
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    env = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(count)
    if torch is not None and before != count:
        torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        if torch is not None and before is not None and before != count:
            torch.set_num_threads(before)
        if env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env


def _start_worker(threads: int) -> None:
    """A local worker process: Ctrl-C is the client's (it cancels the jobs), and libraries that
    size their thread pools when imported see the jobs' thread count."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def train_job(
    name: str,
    spec: Spec,
    *,
    search_path: str | None = None,
    timeout: float | None = None,
    threads: int | None = 1,
) -> Outcome:
    """Train ``spec`` with the implementation ``name`` here (on a worker); never raises but for
    KeyboardInterrupt. The implementation and its fingerprint are kept per process."""
    start = time.monotonic()
    worker = _worker_name()

    def failed(kind: OutcomeKind, error: str, code: str = "") -> Outcome:
        return Outcome(spec, None, error, kind, worker, time.monotonic() - start, code)

    if name not in _IMPLS:
        try:
            fn = resolve(name, search_path=search_path)
        except ImplementationError as exc:
            return failed("import", f"{exc} (on worker {worker})")
        _IMPLS[name] = (fn, fingerprint(fn))
    fn, code = _IMPLS[name]
    try:
        with _threads(threads):
            result = run(name, spec, fn, timeout=timeout)
    except (ImplementationError, ContractError) as exc:
        return failed("implementation", str(exc), code)
    return Outcome(spec, result, "", "ok", worker, time.monotonic() - start, code)


# ------------------------------------------------------------------------------------------
# executors
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """The arguments of :func:`train_job` for every spec of one dispatch."""

    name: str
    search_path: str | None
    timeout: float | None
    threads: int | None


class Executor(abc.ABC):
    """Trains specs somewhere; :meth:`train` yields each spec's :class:`Outcome` as it finishes."""

    #: how the run names it (``processes:2``, ``dask://host:8786``)
    text: str = ""
    #: the thread count of a job (None: leave the process's own)
    threads: int | None = 1

    @abc.abstractmethod
    def train(self, job: Job, specs: Sequence[Spec]) -> Iterator[Outcome]:
        """Yield one Outcome per spec, in the order they finish. Ctrl-C (KeyboardInterrupt while
        waiting) cancels what has not finished and propagates."""

    def where(self) -> str:
        """Where the jobs run, for the run's header (after :meth:`start`)."""
        return self.text

    def start(self) -> None:  # noqa: B027 - optional hook
        """Connect or start workers (may raise ExecutorError)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the workers."""

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcess(Executor):
    """Every spec in this process, one after another, with the process's own threads."""

    text = "inprocess"
    threads = None

    def train(self, job: Job, specs: Sequence[Spec]) -> Iterator[Outcome]:
        for spec in specs:
            yield train_job(
                job.name, spec, search_path=job.search_path, timeout=job.timeout, threads=job.threads
            )


class Processes(Executor):
    """``workers`` spawned local processes (spawned, not forked: torch and threads do not survive
    a fork); a pool broken by a dead worker is rebuilt and its unfinished jobs resubmitted."""

    def __init__(self, workers: int, threads: int = 1):
        self.workers = workers
        self.threads = threads
        self.text = f"processes:{workers}"
        self._pool: cf.ProcessPoolExecutor | None = None

    def where(self) -> str:
        return f"{self.workers} local worker process(es), {self.threads} thread(s) each"

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        spawn = multiprocessing.get_context("spawn")
        return cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=spawn,
            initializer=functools.partial(_start_worker, self.threads or 1),
        )

    def train(self, job: Job, specs: Sequence[Spec]) -> Iterator[Outcome]:
        deaths = {s.hash(): 0 for s in specs}
        todo = list(specs)
        while todo:
            pool = self._pool = self._new_pool()
            futures = {
                pool.submit(
                    train_job,
                    job.name,
                    s,
                    search_path=job.search_path,
                    timeout=job.timeout,
                    threads=job.threads,
                ): s
                for s in todo
            }
            todo = []
            try:
                for fut in cf.as_completed(futures):
                    spec = futures[fut]
                    try:
                        yield fut.result()
                    except cf.process.BrokenProcessPool:
                        deaths[spec.hash()] += 1
                        if deaths[spec.hash()] >= MAX_DEATHS:
                            yield Outcome(
                                spec,
                                None,
                                f"a worker process died while training spec "
                                f"{spec.hash()} ({spec.name or spec.model}), {MAX_DEATHS} times; "
                                "gave it up",
                                "lost",
                                "a local worker process",
                                0.0,
                            )
                        else:
                            todo.append(spec)
            except BaseException:
                self._stop()
                raise
            pool.shutdown(wait=True)
            self._pool = None

    def _stop(self) -> None:
        """Cancel what has not started and stop the workers (their running jobs are lost)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            with contextlib.suppress(Exception):
                p.terminate()
        for p in processes:
            with contextlib.suppress(Exception):
                p.join(timeout=5)

    def close(self) -> None:
        self._stop()


class Dask(Executor):
    """A ``distributed`` cluster: an existing scheduler at ``address``, or a ``LocalCluster`` of
    ``workers`` single-threaded processes started here (``address`` None)."""

    def __init__(self, address: str | None, workers: int | None = None, threads: int = 1):
        self.address = address
        self.workers = workers
        self.threads = threads
        self.text = f"dask://{address.split('://', 1)[-1]}" if address else f"dask-local:{workers}"
        self._client: Any = None
        self._cluster: Any = None

    def start(self) -> None:
        try:
            import distributed
        except ImportError:
            raise ExecutorError(
                f"--executor {self.text} needs dask's distributed package, which is not "
                "installed: pip install 'toymodel[dask]'"
            ) from None
        if self.address is None:
            # no dashboard (its port may be taken, and nobody looks at it during a run); worker logs
            # below ERROR stay out of the run's output
            self._cluster = distributed.LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
                env={"OMP_NUM_THREADS": str(self.threads)},
            )
            target: Any = self._cluster
        else:
            target = self.address if "://" in self.address else f"tcp://{self.address}"
        try:
            self._client = distributed.Client(target, set_as_default=False, timeout="30s")
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ExecutorError(
                f"--executor {self.text}: cannot reach the Dask scheduler "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
            ) from None

    def where(self) -> str:
        if self._client is None:
            return self.text
        info = self._client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        kind = "a LocalCluster" if self._cluster is not None else f"the Dask scheduler {info.get('address')}"
        return f"{kind}: {len(workers)} worker(s), {threads} thread(s) in all, {self.threads} per job"

    def train(self, job: Job, specs: Sequence[Spec]) -> Iterator[Outcome]:
        from distributed import as_completed

        client = self._client
        run_id = uuid.uuid4().hex[:8]
        futures = {}
        for s in specs:
            fut = client.submit(
                train_job,
                job.name,
                s,
                search_path=job.search_path,
                timeout=job.timeout,
                threads=job.threads,
                key=f"toymodel-train-{s.hash()}-{run_id}",
                pure=False,
            )
            futures[fut.key] = (fut, s)
        pending = {key for key in futures}
        try:
            for fut in as_completed([f for f, _ in futures.values()], loop=client.loop):
                spec = futures[fut.key][1]
                pending.discard(fut.key)
                try:
                    out = fut.result()
                except Exception as exc:  # KilledWorker, or the job could not run there at all
                    out = Outcome(spec, None, self._lost(spec, exc), "lost", "a Dask worker", 0.0)
                fut.release()
                yield out
        except BaseException:
            with contextlib.suppress(Exception):
                client.cancel([futures[k][0] for k in pending], force=True)
            raise

    def _lost(self, spec: Spec, exc: BaseException) -> str:
        what = f"spec {spec.hash()} ({spec.name or spec.model})"
        text = " ".join(str(exc).split())[:300]
        if type(exc).__name__ == "KilledWorker":
            return f"the Dask workers running {what} died while training it, too often; gave it up ({text})"
        if isinstance(exc, ImportError):
            return (
                f"a Dask worker of {self.text} could not run the job for {what}: {type(exc).__name__}: "
                f"{text} (install toymodel {__version__} on every worker)"
            )
        return f"the Dask job for {what} failed on {self.text}: {type(exc).__name__}: {text}"

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()


def describe_choices() -> str:
    return "inprocess, processes[:N], dask-local[:N] or dask://HOST:PORT"


def _count(text: str, part: str) -> int:
    try:
        value = int(part)
    except ValueError:
        value = 0
    if value < 1:
        raise ExecutorError(f"--executor {text}: {part!r} is not a number of workers (a positive integer)")
    return value


def parse(text: str, *, threads: int = 1) -> Executor:
    """The executor ``text`` names (see the module docstring); ExecutorError (one line) otherwise.
    Nothing is started: :meth:`Executor.start` (or ``with``) connects."""
    raw = text.strip()
    kind, colon, rest = raw.partition(":")
    cores = os.cpu_count() or 1
    if raw == "inprocess":
        return InProcess()
    if kind == "processes":
        workers = _count(raw, rest) if colon else cores
        return Processes(workers, threads)
    if kind == "dask-local":
        workers = _count(raw, rest) if colon else cores
        return Dask(None, workers, threads)
    if kind in ("dask", "tcp", "tls") and rest.startswith("//") and len(rest) > 2:
        address = rest[2:] if kind == "dask" else raw
        return Dask(address, threads=threads)
    raise ExecutorError(f"--executor {text}: unknown executor; use {describe_choices()}")
