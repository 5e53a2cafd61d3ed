"""Hand-made claims reports for the tests of the report, the command line and the browser check."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

#: a 1x1 PNG
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def check(
    key: str,
    passed: bool,
    value: float | None,
    *,
    lower: float | None = None,
    upper: float | None = None,
    bound: Any = "?",
) -> dict[str, Any]:
    return {
        "key": key,
        "what": f"the {key}",
        "passed": passed,
        "measured": value,
        "bound": bound,
        "value": value,
        "lower": lower,
        "upper": upper,
    }


def record(
    claim: str,
    verdict: str,
    checks: list[dict[str, Any]],
    *,
    tier: str = "implementation",
    figures: tuple[str, ...] = (),
    test: str | None = None,
) -> dict[str, Any]:
    return {
        "claim": claim,
        "tier": tier,
        "implementation": "fake",
        "seed": 0,
        "checks": checks,
        "values": {"curve": [1.0, 0.5, 0.25]},
        "spec_hashes": ["0123456789abcdef"],
        "specs": {
            "0123456789abcdef": {
                "name": "sweep",
                "model": "relu_output",
                "n": 5,
                "m": 2,
                "seed": 3,
                "instances": 4,
                "steps": 100,
            }
        },
        "figures": list(figures),
        "figure_errors": [],
        "regression": [],
        "test": test or f"claims/test_x.py::test_{claim}",
        "verdict": verdict,
        "message": f"[{claim}] the bad: measured 0.9" if verdict == "failed" else "",
        "section": "superposition",
        "statement": f"The paper says {claim}.",
        "duration": 0.25,
    }


def fake_report(tmp_path: Path) -> dict[str, Any]:
    """A report with a passing, a failing and a declared-but-passing claim, a figure, a theory claim."""
    (tmp_path / "figs").mkdir(exist_ok=True)
    (tmp_path / "figs" / "good_claim-sweep.png").write_bytes(PIXEL)
    claims = [
        record(
            "good_claim",
            "passed",
            [check("norm", True, 0.98, lower=0.9), check("gap", True, 0.05, upper=0.1)],
            figures=("figs/good_claim-sweep.png",),
        ),
        record(
            "bad_claim", "failed", [check("fine", True, 1.0, upper=2.0), check("bad", False, 0.9, lower=1.0)]
        ),
        record("declared_claim", "xpassed-declared", [check("x", True, 3.0, lower=1.0)]),
    ]
    theory = [record("closed_form", "passed", [check("identity", True, 0.0, upper=1e-12)], tier="theory")]
    return {
        "toymodel": "0.1.0",
        "implementation": "fake",
        "claims_seed": 0,
        "unknown_xfail_ids": [],
        "notices": ["a notice"],
        "warnings": [],
        "summary": {},
        "claims": claims,
        "theory_summary": {},
        "theory": theory,
    }
