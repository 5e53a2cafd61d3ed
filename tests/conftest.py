"""Hypothesis profiles: ``ci`` (derandomised, selected when $CI is set) and ``dev``; and every test
forgets the modules it imported from a temporary folder (a fake implementation written there), so
that a later test's module of the same name, in another folder, is not shadowed by it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True)
def _forget_modules_from_temporary_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = set(sys.modules)
    yield
    base = str(tmp_path_factory.getbasetemp())
    for name in set(sys.modules) - before:
        source = getattr(sys.modules[name], "__file__", None) or ""
        if source.startswith(base):
            del sys.modules[name]
