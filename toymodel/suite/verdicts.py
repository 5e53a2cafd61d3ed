"""Multi-seed verdicts: every claim at K seeds, passed when it passes at enough of them.

A single run of a claim is a random outcome: a correct implementation fails a fragile claim at
some seeds. The calibration data (:mod:`toymodel.suite.calibration`) measure each claim's pass rate for
the bundled correct implementations; this module turns them into a rule for K seeds: a claim's
verdict is a pass when it passes at no fewer than ``t`` of K seeds, ``t`` chosen as the largest
number for which a correct implementation, passing each seed with the lower end of the calibrated
95% interval, falls short with probability at most :data:`FALSE_ALARM`. The kill table of the
deliberately broken implementations (``tests/data/kill_table.json``) gives the rule's power: the
probability that it fails a claim for a mutant, from that mutant's per-seed failure rate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy import stats

__all__ = ["FALSE_ALARM", "ClaimVerdict", "calibrated_pass_rates", "decide", "power", "threshold"]

#: the largest probability with which a correct implementation may fail a claim's verdict
FALSE_ALARM = 0.01


def threshold(seeds: int, pass_rate: float, false_alarm: float = FALSE_ALARM) -> int:
    """The number of passes of ``seeds`` a claim needs: the largest t such that an implementation
    passing each seed with probability ``pass_rate`` has fewer than t passes with probability at
    most ``false_alarm`` (0 when even no pass is that likely)."""
    best = 0
    for t in range(seeds + 1):
        if float(stats.binom.cdf(t - 1, seeds, pass_rate)) <= false_alarm:
            best = t
    return best


def power(seeds: int, need: int, failure_rate: float) -> float:
    """Probability that a claim failing a single seed with probability ``failure_rate`` has fewer
    than ``need`` passes of ``seeds``: the chance the multi-seed verdict catches it."""
    return float(stats.binom.cdf(need - 1, seeds, 1.0 - failure_rate))


def calibrated_pass_rates(folder: Path) -> dict[str, tuple[int, int, float]]:
    """Per claim id, from ``folder/<claim>.json``: (passed, runs, lower end of the 95% interval)."""
    out: dict[str, tuple[int, int, float]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        summary = json.loads(path.read_text()).get("summary", {})
        if summary.get("runs"):
            out[path.stem] = (int(summary["passed"]), int(summary["runs"]), float(summary["pass_rate_95"][0]))
    return out


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim over K seeds: passes, the passes it needs, and the verdict."""

    claim: str
    passes: int
    seeds: int
    need: int
    calibrated: tuple[int, int, float] | None
    failed_seeds: tuple[int, ...]

    @property
    def passed(self) -> bool:
        return self.passes >= self.need

    def as_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "passes": self.passes,
            "seeds": self.seeds,
            "need": self.need,
            "verdict": "passed" if self.passed else "failed",
            "failed_seeds": list(self.failed_seeds),
            "calibrated_pass_rate": None
            if self.calibrated is None
            else {"passed": self.calibrated[0], "runs": self.calibrated[1], "lower_95": self.calibrated[2]},
        }


def decide(
    runs: Mapping[int, Mapping[str, Mapping[str, Any]]],
    calibration: Mapping[str, tuple[int, int, float]],
) -> list[ClaimVerdict]:
    """Verdicts from the runs at each seed (``{seed: {claim: {"verdict": ...}}}``). An uncalibrated
    claim needs every seed."""
    seeds = sorted(runs)
    claims = sorted({c for run in runs.values() for c in run})
    out = []
    for claim in claims:
        failed = tuple(s for s in seeds if runs[s].get(claim, {}).get("verdict") != "passed")
        cal = calibration.get(claim)
        need = threshold(len(seeds), cal[2]) if cal is not None else len(seeds)
        out.append(ClaimVerdict(claim, len(seeds) - len(failed), len(seeds), need, cal, failed))
    return out
