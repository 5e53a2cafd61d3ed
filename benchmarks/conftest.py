"""Benchmark session setup and the ratio table printed at the end of ``pytest benchmarks``.

Every figure is a ratio measured in the same run: the reference implementation
(:mod:`toymodel.reference`) against the plain autograd + ``torch.optim.AdamW`` loop
(:mod:`toymodel.plain`), and the training core's matrix work against the machine's
fp32 ``torch.mm`` rate. Threads: ``$BENCH_THREADS`` (default 2).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from .common import RESULTS, table


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if RESULTS:
        gpu = f", GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
        threads = torch.get_num_threads()
        terminalreporter.write_sep("=", f"toymodel throughput (torch threads = {threads}{gpu})")
        terminalreporter.write_line(table())
