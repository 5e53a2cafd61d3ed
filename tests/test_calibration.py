"""The calibration statistics: pass-rate intervals, merged checks and each check's yardstick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from toymodel.suite import calibration
from toymodel.suite.calibration import MARGIN_SD, TAIL, check_summary, clopper_pearson, parse_seeds


def _check(value: float, passed: bool = True, **kw: Any) -> dict[str, Any]:
    return {"passed": passed, "value": value, "bound": "b", **kw}


def test_parse_seeds() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("0-1,9") == [0, 1, 9]


def test_clopper_pearson_matches_the_beta_quantiles() -> None:
    lo, hi = clopper_pearson(40, 40)
    assert hi == 1.0
    assert lo == pytest.approx(0.025 ** (1 / 40))  # all passed: the lower end solves p^n = alpha/2
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(1 - 0.025 ** (1 / 10))
    assert clopper_pearson(0, 0) == (0.0, 1.0)


def test_margin_in_standard_deviations() -> None:
    runs = [_check(v, lower=1.0) for v in (4.0, 5.0, 6.0)]  # mean 5, sd 1
    s = check_summary(runs)
    assert s["margin_sd"] == pytest.approx(4.0)
    assert s["yardstick"] == {"kind": "margin_sd", "figure": pytest.approx(4.0), "met": True}
    near = check_summary([_check(v, upper=1.0) for v in (0.0, 0.5, 1.0)])  # 1 sd from the bound
    assert near["yardstick"]["met"] is False
    assert near["yardstick"]["figure"] == pytest.approx(1.0)
    assert MARGIN_SD > 1.0


def test_a_value_that_never_varied_is_exact_not_minus_infinity() -> None:
    s = check_summary([_check(0, upper=0) for _ in range(5)])
    assert "margin_sd" not in s
    assert s["yardstick"] == {"kind": "exact", "figure": 0.0, "met": True}
    failing = check_summary([_check(0, upper=0)] * 4 + [_check(0, passed=False, upper=0)])
    assert failing["yardstick"]["met"] is False


def test_binomial_yardstick_pools_the_tries() -> None:
    """8 restarts per run, a peak in about 70% of them: missing all eight is rare."""
    runs = [_check(v, lower=1, trials=8) for v in (5, 6, 6, 5, 6) * 8]
    y = check_summary(runs)["yardstick"]
    assert y["kind"] == "binomial"
    assert (y["successes"], y["tries"], y["tries_per_run"]) == (224, 320, 8)
    lo = clopper_pearson(224, 320)[0]
    assert y["figure"] == pytest.approx(stats.binom.cdf(0, 8, lo))
    assert y["met"] is True
    # one restart in ten with the property: eight restarts miss it at 43%
    rare = check_summary(
        [_check(1 if i % 10 == 0 else 0, passed=i % 10 == 0, lower=1, trials=1) for i in range(40)]
    )
    assert rare["yardstick"]["met"] is False
    assert rare["yardstick"]["figure"] > TAIL


def test_binomial_needs_every_run_to_count_its_tries() -> None:
    """A run recorded before the check said its tries falls back to the sd margin."""
    runs = [_check(v, lower=1, trials=8) for v in (3, 4, 5)] + [_check(4, lower=1)]
    assert check_summary(runs)["yardstick"]["kind"] == "margin_sd"


def test_merge_keeps_the_closest_evaluation_and_its_tries() -> None:
    checks: dict[str, Any] = {}
    calibration._merge(checks, {"key": "k", **_check(5, lower=1, trials=8)})
    calibration._merge(checks, {"key": "k", **_check(2, passed=False, lower=1, trials=8)})
    assert checks["k"]["value"] == 2
    assert checks["k"]["trials"] == 8
    assert checks["k"]["passed"] is False


def test_resummarise_recomputes_every_file(tmp_path: Path) -> None:
    run = {"verdict": "passed", "checks": {"k": _check(0, upper=0)}}
    calibration.update(tmp_path, "torch", 0, {"c": run})
    path = tmp_path / "c.json"
    data = json.loads(path.read_text())
    data["summary"] = {"stale": True}
    path.write_text(json.dumps(data))
    assert calibration.main(["--out", str(tmp_path), "--resummarise"]) == 0
    summary = json.loads(path.read_text())["summary"]
    assert summary["runs"] == 1
    assert summary["checks"]["k"]["yardstick"]["kind"] == "exact"


def test_a_run_is_done_when_every_claim_holds_it(tmp_path: Path) -> None:
    run = {"verdict": "passed", "checks": {"k": _check(1.0, upper=2.0)}}
    calibration.update(tmp_path, "torch", 0, {"a": run, "b": run})
    calibration.update(tmp_path, "torch", 1, {"a": run})  # a -k run: claim a only
    assert calibration._done(tmp_path) == {("torch", "0")}
    assert calibration._done(tmp_path / "none") == set()


def test_concurrent_updates_keep_every_run(tmp_path: Path) -> None:
    """Two calibration processes adding runs to one folder lose none of them."""
    import concurrent.futures as cf
    import multiprocessing

    run = {"verdict": "passed", "checks": {"k": _check(1.0, upper=2.0)}}
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(
            pool.map(
                calibration.update, [tmp_path] * 40, ["torch", "numpy"] * 20, range(40), [{"c": run}] * 40
            )
        )
    data = json.loads((tmp_path / "c.json").read_text())
    assert sum(len(seeds) for seeds in data["runs"].values()) == 40
    assert data["summary"]["runs"] == 40
