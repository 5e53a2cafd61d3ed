"""What a run shows while it trains: which experiment, how many so far, time spent and an ETA.

Three modes, chosen by the pytest plugin from the terminal and the verbosity:

- ``live`` (a terminal): a training that lasts longer than ``delay`` seconds gets a live line
  drawn by ``rich`` (spinner, the experiment, the claim test it serves out of how many, a bar over
  the estimated time, elapsed time and ETA), removed when it ends and replaced by one line saying
  what was trained and in how long;
- ``lines`` (output is not a terminal, e.g. CI logs): only that one line per finished training;
- ``off`` (``-q``, pytest-xdist workers): nothing.

The ETA is an estimate of the current training from the run's own pace: the work of a spec
(instances × steps × batch × (n·m + n)) divided by the work done per second by the trainings
finished before it; the first training has none. Cached results never show, as they train
nothing. A Ctrl-C during a training stops the display, says which training it cut short and that
every result finished before it is kept in the cache, and lets the interrupt go on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from ..spec import Spec

__all__ = ["BatchProgress", "Mode", "TrainingProgress", "describe", "work"]

Mode = Literal["live", "lines", "off"]


def describe(spec: Spec) -> str:
    """A spec as a person names it: its name, else its model and shape."""
    return spec.name or f"{spec.model} n={spec.n} m={spec.m}"


def work(spec: Spec) -> float:
    """A spec's training work: instances × steps × batch × (n·m + n) (ETAs, the order of a batch)."""
    return float(spec.instances * spec.train.steps * spec.train.batch_size * (spec.n * spec.m + spec.n))


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class TrainingProgress:
    """Progress of the trainings of one run (see the module docstring).

    ``write``: writes one line where the user sees it, starting on a fresh line (the plugin's
    terminal writer, outside pytest's output capture); ``visible``: a context in which the
    terminal is not captured (the live display runs inside it); ``resume``: called after a
    finished training's line, to give the line back to pytest; ``kept``: says where finished
    results are kept, for the interrupt message.
    """

    def __init__(
        self,
        mode: Mode,
        *,
        write: Callable[[str], None],
        visible: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        resume: Callable[[], None] | None = None,
        kept: str = "",
        delay: float = 2.0,
        min_seconds: float = 1.0,
    ):
        self.mode = mode
        self.write = write
        self.resume = resume or (lambda: None)
        self.visible = visible or contextlib.nullcontext
        self.kept = kept
        self.delay = delay
        self.min_seconds = min_seconds
        self.tests_total = 0
        self.test_index = 0
        self.trained = 0
        self.interrupted: str | None = None
        self._work = 0.0
        self._seconds = 0.0

    def next_test(self) -> None:
        """A claim test that trains starts."""
        self.test_index += 1

    def estimate(self, spec: Spec) -> float | None:
        """Seconds ``spec`` should take at this run's pace so far (None before any training)."""
        if self._seconds <= 0 or self._work <= 0:
            return None
        return work(spec) / (self._work / self._seconds)

    def where(self) -> str:
        """``claim test 5 of 31`` (empty when the total is unknown)."""
        return f"claim test {self.test_index} of {self.tests_total}" if self.tests_total else ""

    @contextlib.contextmanager
    def training(self, spec: Spec) -> Iterator[None]:
        """Show the training of ``spec`` for the duration of the block."""
        if self.mode == "off":
            yield
            return
        start = time.monotonic()
        with self._live(spec, start) if self.mode == "live" else contextlib.nullcontext():
            try:
                yield
            except KeyboardInterrupt:
                self.interrupted = describe(spec)
                self.write(
                    f"toymodel: interrupted while training {describe(spec)!r} after "
                    f"{time.monotonic() - start:.1f} s; {self.trained} result(s) trained before it "
                    f"in this run {self.kept}"
                )
                raise
        seconds = time.monotonic() - start
        self.trained += 1
        self._work += work(spec)
        self._seconds += seconds
        if seconds >= self.min_seconds:
            where = self.where()
            self.write(
                f"toymodel: trained {describe(spec)!r} ({spec.instances} instances × "
                f"{spec.train.steps} steps) in {seconds:.1f} s; {self.trained} trained so far"
                + (f", {where}" if where else "")
            )
            self.resume()

    @contextlib.contextmanager
    def _live(self, spec: Spec, start: float) -> Iterator[None]:
        """A rich live line, started after ``delay`` seconds and removed at the end."""
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        estimate = self.estimate(spec)
        with self.visible():
            progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]training[/] {task.description}"),
                BarColumn(bar_width=24),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                console=Console(highlight=False),
                transient=True,
                auto_refresh=True,
                refresh_per_second=4,
            )
            where = self.where()
            task = progress.add_task(
                f"{describe(spec)}" + (f" · {where}" if where else ""),
                total=estimate,
                eta="ETA after the first training",
            )
            lock = threading.Lock()
            state = {"started": False, "done": False}
            stop_ticking = threading.Event()

            def tick() -> None:
                while not stop_ticking.wait(0.25):
                    elapsed = time.monotonic() - start
                    if estimate is not None:
                        left = estimate - elapsed
                        eta = f"ETA {_clock(left)}" if left > 0 else "ETA soon (past the estimate)"
                        progress.update(task, completed=min(elapsed, estimate * 0.99), eta=eta)

            def begin() -> None:
                with lock:
                    if state["done"]:
                        return
                    state["started"] = True
                    self.write("")  # the live line starts on a line of its own
                    progress.start()
                    threading.Thread(target=tick, daemon=True).start()

            timer = threading.Timer(self.delay, begin)
            timer.daemon = True
            timer.start()
            try:
                yield
            finally:
                timer.cancel()
                stop_ticking.set()
                with lock:
                    state["done"] = True
                    if state["started"]:
                        progress.stop()


class BatchProgress:
    """Progress of a batch of trainings handed to an executor (:mod:`toymodel.suite.executors`): the
    same three modes as :class:`TrainingProgress`. ``live``: a bar over the batch (done out of how
    many, elapsed time, time left at the pace so far), with one line above it per finished
    training; ``lines``: only those lines; ``off``: nothing."""

    def __init__(
        self,
        mode: Mode,
        *,
        write: Callable[[str], None],
        visible: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ):
        self.mode = mode
        self.write = write
        self.visible = visible or contextlib.nullcontext
        self.total = 0
        self.done = 0
        self._bar: Any = None
        self._task: Any = None

    @contextlib.contextmanager
    def batch(self, total: int, what: str) -> Iterator[BatchProgress]:
        """Show the batch of ``total`` trainings (``what``: where they run) for the block."""
        self.total, self.done = total, 0
        if self.mode != "live" or total == 0:
            yield self
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with self.visible():
            self._bar = Progress(
                TextColumn("[bold]training[/] {task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(highlight=False),
                transient=True,
                refresh_per_second=4,
            )
            self._task = self._bar.add_task(what, total=total)
            self.write("")  # the bar starts on a line of its own
            self._bar.start()
            try:
                yield self
            finally:
                self._bar.stop()
                self._bar = None

    def finished(self, line: str) -> None:
        """One training came back: ``line`` says what, where and how long (or why it failed)."""
        self.done += 1
        text = f"{line} [{self.done} of {self.total}]"
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
            self._bar.update(self._task, completed=self.done)
        elif self.mode != "off":
            self.write(text)
