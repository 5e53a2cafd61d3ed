"""The claims suite can fail: every deliberately broken implementation in ``mutants.py`` fails at
least one claim, and a broken result is reported in one clear line.

Each case runs the claims in a subprocess with ``--impl mutants:<name>``, restricted to claims
chosen to catch that mistake cheaply (the full catalogue of which claims catch which mutant is
in the README), and reads the verdicts from ``--claims-report``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# mutant -> the claim selection (-k) expected to catch it
CAUGHT_BY = {
    "relu_dropped": "intro_pentagon",
    "importance_ignored": "linear_top_m",
    "density_swapped": "linear_top_m",
    "bias_frozen": "linear_top_m",
    "too_few_steps": "linear_top_m",
    "correlation_ignored": "correlated_orthogonal or correlated_side_by_side or local_orthogonal_bases",
}


def _run_claims(impl: str, select: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / "report.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("TOYMODEL_IMPL", None)
    env.pop("PYTEST_ADDOPTS", None)
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "claims"), "-k", select, "--impl", impl,
           "--no-cache", "-p", "no:cacheprovider", "-q", "--claims-report", str(report),
           "-W", "error"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc, data


@pytest.mark.parametrize("mutant", sorted(CAUGHT_BY))
def test_mutant_fails_a_claim(mutant: str, tmp_path: Path) -> None:
    proc, report = _run_claims(f"mutants:{mutant}", CAUGHT_BY[mutant], tmp_path)
    verdicts = {c["claim"]: c["verdict"] for c in report.get("claims", [])}
    assert verdicts, f"no claim ran for {mutant}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "failed" in verdicts.values(), f"{mutant} passed every selected claim: {verdicts}"


@pytest.mark.parametrize(("mutant", "expected"), [
    ("returns_nan", "result field 'W' holds a non-finite value (nan) at index (0, 0, 0)"),
    ("wrong_shape", "result field 'W' has shape (14, 20, 5), expected (14, 5, 20)"),
    ("raises", "raised RuntimeError on spec"),
])
def test_broken_result_is_one_clear_line(mutant: str, expected: str, tmp_path: Path) -> None:
    proc, _ = _run_claims(f"mutants:{mutant}", "linear_top_m", tmp_path)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stdout.splitlines() if expected in ln]
    assert lines, proc.stdout[-3000:]
    assert f"implementation 'mutants:{mutant}'" in lines[0]
    assert "Traceback" not in proc.stdout
