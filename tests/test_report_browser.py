"""The HTML report as a person sees it: rendered by headless Chromium, every figure decoded,
every claim id on the page, a failing claim visibly marked, and a screenshot taken.

Needs Chromium (Debian's ``chromium``; ``.ci/run`` installs it): without it these tests are
skipped, unless ``$TOYMODEL_REQUIRE_BROWSER`` is set (``tox -e report``), where a missing browser
fails. ``$TOYMODEL_BROWSER_REPORT`` names more reports to check (a real run's, ``os.pathsep``
separated); screenshots go to ``$TOYMODEL_SCREENSHOT_DIR`` (default: the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from report_kit import fake_report

from toymodel import report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: flags that work in a container without a display, a sandbox or a network
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
#: the colour of a failing row (``--fail-bg`` of the page's style sheet), as the browser computes it
FAIL_BACKGROUND = "rgb(253, 231, 231)"
#: the colour of a failed verdict's badge (``--fail``), looked for in the screenshot
FAIL_BADGE = (198, 40, 40)


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("TOYMODEL_REQUIRE_BROWSER"):
        pytest.fail("no Chromium found (apt-get install chromium), and $TOYMODEL_REQUIRE_BROWSER is set")
    pytest.skip("no Chromium here (apt-get install chromium)")


def _chromium(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="toymodel-chromium-") as profile:
        cmd = [_browser(), *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def seen(page: Path) -> dict[str, Any]:
    """What the page's own check wrote once loaded: images and how many decoded, the claim ids of
    its rows, and the computed background of each failing row."""
    proc = _chromium(page, "--dump-dom")
    found = re.search(r'<pre id="report-selfcheck"[^>]*>(.*?)</pre>', proc.stdout, flags=re.S)
    assert found and found.group(1), (
        f"the page did not report itself (exit {proc.returncode}): {proc.stderr[-2000:]}"
    )
    return dict(json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")))


def screenshot(page: Path, out: Path) -> Path:
    """The page's first screen, 1280 pixels wide, as PNG."""
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = _chromium(page, f"--screenshot={out.resolve()}", "--window-size=1280,2000", "--hide-scrollbars")
    assert out.exists() and out.stat().st_size > 10_000, proc.stderr[-2000:]
    return out


def _shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("TOYMODEL_SCREENSHOT_DIR") or tmp_path)


def _check(page: Path, data: dict[str, Any], shot: Path) -> None:
    result = seen(page)
    assert result["images"] == result["decoded"], (
        f"{page}: {result['images'] - result['decoded']} figure(s) not decoded"
    )
    expected = [r["claim"] for r in [*(data.get("claims") or []), *(data.get("theory") or [])]]
    assert sorted(result["claims"]) == sorted(expected)
    failing = {r["claim"] for r in data.get("claims") or [] if r["verdict"] in report.FAILING}
    assert {f["claim"] for f in result["failing"]} == failing
    for row in result["failing"]:
        assert row["background"] == FAIL_BACKGROUND and row["visible"], row
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot(page, shot)).convert("RGB")).reshape(-1, 3).astype(int)
    red = int(np.sum(np.all(np.abs(pixels - np.array(FAIL_BADGE)) <= 6, axis=1)))
    if failing:  # the red of a failed verdict is on the first screen
        assert red > 50, f"{page}: no failed badge in the screenshot"


def test_a_report_with_a_failing_claim_as_a_browser_shows_it(tmp_path: Path) -> None:
    data = fake_report(tmp_path)
    page = tmp_path / "fake.html"
    page.write_text(report.render_html(data, base=tmp_path))
    _check(page, data, _shots(tmp_path) / "fake-report.png")


def test_a_comparison_as_a_browser_shows_it(tmp_path: Path) -> None:
    a = fake_report(tmp_path)
    b = json.loads(json.dumps(a))
    b["claims"][1]["verdict"] = "passed"
    page = tmp_path / "compare.html"
    page.write_text(report.render_compare(a, b, names=["a", "b"], bases=[tmp_path, tmp_path]))
    result = seen(page)
    assert result["images"] == result["decoded"] == 2
    assert {"good_claim", "bad_claim", "declared_claim", "closed_form"} <= set(result["claims"])
    assert {f["claim"] for f in result["failing"]} == {"bad_claim", "declared_claim"}
    screenshot(page, _shots(tmp_path) / "fake-compare.png")


def test_a_real_report_as_a_browser_shows_it(tmp_path: Path) -> None:
    paths = [Path(p) for p in os.environ.get("TOYMODEL_BROWSER_REPORT", "").split(os.pathsep) if p]
    if not paths:
        pytest.skip("no real report to check: $TOYMODEL_BROWSER_REPORT is not set (tox -e report sets it)")
    for page in paths:
        _check(page, report.load(page.with_suffix(".json")), _shots(tmp_path) / f"{page.stem}.png")
