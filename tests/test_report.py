"""The HTML report and the comparison page (toymodel.report), rendered from hand-made records."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from report_kit import PIXEL, check, fake_report, record

from toymodel import report


def test_page_shows_every_claim_its_checks_and_embedded_figures(tmp_path: Path) -> None:
    html = report.render_html(fake_report(tmp_path), base=tmp_path)
    for claim in ("good_claim", "bad_claim", "declared_claim", "closed_form"):
        assert f'data-claim="{claim}"' in html and f'id="test_{claim}"' in html
    assert "The paper says good_claim." in html and "[bad_claim] the bad: measured 0.9" in html
    assert f"data:image/png;base64,{base64.b64encode(PIXEL).decode()}" in html
    assert "Theory tier" in html and "a notice" in html and "0123456789abcdef" in html
    assert 'data-verdict="failed" class="failing"' in html  # the failing row is marked
    assert 'data-verdict="xpassed-declared" class="failing"' in html
    assert 'data-verdict="passed" class="failing"' not in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from the network
    assert "value 0.9, bound ≥ 1" in html  # the failed check is the summary's key check


def test_missing_figures_are_said_not_dropped(tmp_path: Path) -> None:
    data = fake_report(tmp_path)
    data["claims"][0]["figures"] = ["figs/gone.png"]
    html = report.render_html(data, base=tmp_path)
    assert "figure missing: figs/gone.png" in html


def test_calibrated_spread_beside_each_value(tmp_path: Path) -> None:
    cal = tmp_path / "calibration"
    cal.mkdir()
    (cal / "good_claim.json").write_text(
        json.dumps(
            {
                "summary": {
                    "checks": {
                        "norm": {"mean": 0.97, "sd": 0.01, "runs": 40, "passed": 40},
                        "gap": {"mean": 0.03, "sd": 0.01, "runs": 40, "passed": 40},
                    }
                }
            }
        )
    )
    data = fake_report(tmp_path)
    html = report.render_html(data, base=tmp_path, calibration=cal)
    # the key check is the one nearest its bound in calibrated standard deviations: gap (5 sd), not norm (8)
    assert "value 0.05, correct: 0.03 ± 0.01 (40 runs, value at +2.0 sd), bound ≤ 0.1" in html
    assert "correct: 0.97 ± 0.01 (40 runs, value at +1.0 sd)" in html
    lines = report.verdict_lines(data, cal)
    assert lines[0] == ("claim           verdict           key check", False)
    assert (
        lines[1][0].startswith("bad_claim       failed            bad: value 0.9, bound ≥ 1") and lines[1][1]
    )
    assert [failing for _, failing in lines] == [False, True, True, False]


def test_key_check_without_calibration_is_the_relatively_closest() -> None:
    rec = record(
        "c",
        "passed",
        [check("far", True, 0.1, upper=10.0), check("near", True, 0.9, upper=1.0), check("text", True, None)],
    )
    assert report.key_check(rec, {})["key"] == "near"  # type: ignore[index]
    assert report.key_check(record("c", "passed", []), {}) is None


def test_write_html_puts_the_json_beside_it(tmp_path: Path) -> None:
    data = fake_report(tmp_path)
    written = report.write(data, tmp_path / "out.html")
    assert written == [tmp_path / "out.html", tmp_path / "out.json"]
    assert report.load(tmp_path / "out.json")["claims"][0]["claim"] == "good_claim"
    assert report.write(data, tmp_path / "only.json") == [tmp_path / "only.json"]
    assert not (tmp_path / "only.html").exists()


def test_load_refuses_what_is_not_a_report(tmp_path: Path) -> None:
    (tmp_path / "seeds.json").write_text(json.dumps({"implementation": "x", "seeds": [0, 1], "claims": []}))
    (tmp_path / "junk.json").write_text("{nope")
    with pytest.raises(report.ReportError, match="multi-seed verdict table"):
        report.load(tmp_path / "seeds.json")
    with pytest.raises(report.ReportError, match="cannot read a claims report"):
        report.load(tmp_path / "junk.json")
    with pytest.raises(report.ReportError, match="cannot read"):
        report.load(tmp_path / "absent.json")


def test_compare_lists_verdicts_and_the_values_that_moved(tmp_path: Path) -> None:
    a = fake_report(tmp_path)
    b = json.loads(json.dumps(a))
    b["implementation"] = "other"
    b["claims"][1]["verdict"] = "passed"
    b["claims"][1]["checks"][1].update(passed=True, value=1.5)
    b["claims"][0]["checks"][0]["value"] = 0.99
    rows, moved = report.compare_rows(a, b)
    assert [r["test"] for r in rows] == [
        "test_good_claim",
        "test_bad_claim",
        "test_declared_claim",
        "test_closed_form",
    ]
    assert [r["differs"] for r in rows] == [False, True, False, False]
    assert [(m["label"], m["key"]) for m in moved] == [("bad_claim", "bad"), ("good_claim", "norm")]
    html = report.render_compare(a, b, names=["fake", "other"], bases=[tmp_path, tmp_path])
    assert "1 of 4 claim tests have different verdicts; 2 measured values moved" in html
    assert html.count("data:image/png;base64,") == 2  # the figure of each side
    assert 'data-claim="bad_claim"' in html


def test_repeated_check_keys_are_compared_in_order(tmp_path: Path) -> None:
    a = fake_report(tmp_path)
    a["claims"] = [record("loop", "passed", [check("k", True, 1.0), check("k", True, 2.0)])]
    b = json.loads(json.dumps(a))
    b["claims"][0]["checks"][1]["value"] = 2.5
    _, moved = report.compare_rows(a, b)
    assert [(m["key"], m["a"], m["b"]) for m in moved] == [("k#2", "2", "2.5")]
