"""What the claims suite writes to pytest's terminal: how training progress shows, lines of our own
between pytest's (outside its output capture), and failures reported as one line."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .progress import Mode
from .state import is_worker

__all__ = ["OneLine", "progress_mode", "uncaptured", "writer"]


def progress_mode(config: pytest.Config) -> Mode:
    if (
        config.getoption("verbose") < 0
        or is_worker(config)
        or (config.pluginmanager.get_plugin("terminalreporter") is None)
    ):
        return "off"
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "live" if tty and os.environ.get("TERM") != "dumb" else "lines"


@contextlib.contextmanager
def uncaptured(config: pytest.Config) -> Iterator[None]:
    """pytest's output capture suspended: what is written here reaches the terminal."""
    capman = config.pluginmanager.get_plugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


def writer(config: pytest.Config) -> Callable[[str], None]:
    """Write one line of our own between pytest's progress output, on a fresh line, outside the
    capture; pytest's next result starts a new line and repeats the file name."""

    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        with uncaptured(config):
            reporter.ensure_newline()
            tw = config.get_terminal_writer()
            if tw.width_of_current_line:
                tw.line()
            tw.write(line, flush=True)

    return write


class OneLine:
    """A failure reported as one line: the message says it all. Without a ``reprcrash`` pytest's
    short summary names the test and does not repeat the line; ``str`` is what xdist carries."""

    def __init__(self, line: str):
        self.line = line

    def toterminal(self, tw: Any) -> None:
        tw.line(self.line)

    def __str__(self) -> str:
        return self.line
