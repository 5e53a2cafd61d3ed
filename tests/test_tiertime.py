"""The fast tier's timing record (toymodel.suite.tiertime) and its generated page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from toymodel.suite import docs, tiertime


def _fake_result(path: Path, name: str, seconds: float) -> None:
    header = {"spec": {"name": name}, "meta": {"train_seconds": seconds}}
    np.savez(path, header=np.array(json.dumps(header)), W=np.zeros(1))


def test_train_seconds_per_spec_name(tmp_path: Path) -> None:
    _fake_result(tmp_path / "a.npz", "sweep", 10.0)
    _fake_result(tmp_path / "b.npz", "sweep", 2.5)  # the same spec at another seed adds up
    _fake_result(tmp_path / "c.npz", "pairs", 1.0)
    assert tiertime._train_seconds(tmp_path) == {"sweep": 12.5, "pairs": 1.0}


def test_time_tier_records_a_run() -> None:
    """One small claim timed through the real command: its verdict, exit status and training."""
    record = tiertime.time_tier("torch", jobs=1, select="abs_value_basic")
    assert record["exit_status"] == 0
    assert record["verdicts"] == {"passed": 1} and record["theory_verdicts"] == {}
    assert record["failed"] == [] and list(record["train_seconds"]) == ["abs-basic-n3-m6"]
    assert record["wall_seconds"] > 0 and "-k 'abs_value_basic'" in record["command"]


def test_timing_page_lists_the_costliest_specs(tmp_path: Path) -> None:
    run = {
        "wall_seconds": 667.5,
        "jobs": 2,
        "verdicts": {"passed": 27, "failed": 1},
        "failed": ["pca_collapse"],
        "train_seconds": {"a": 1.0, "b": 30.0, "c": 20.0, "d": 5.0},
        "machine": {"cpus": 2, "python": "3.11"},
        "date": "2026-12-01",
        "commit": "abc1234",
    }
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / "tier_times.json").write_text(json.dumps({"runs": {"x": run}}))
    page = docs.timing_page(tmp_path)
    row = next(line for line in page.splitlines() if line.startswith("| `x`"))
    assert "11 min 8 s" in row and "`pca_collapse`" in row
    assert "56 in all; b 30, c 20, d 5" in row


def test_timing_page_without_data(tmp_path: Path) -> None:
    assert "No timing yet." in docs.timing_page(tmp_path)
