"""A claims report as data: the JSON a run writes (one record per claim test: verdict, message,
every check with its measured value and bound, also as numbers ``value``, ``lower``, ``upper``,
recorded values, the specs it read, its figures), read back, and its checks in words: a value
against its bound and, where ``calibration/<claim>.json`` exists, against the spread of correct
implementations; the terminal's verdict table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FAILING",
    "ORDER",
    "ReportError",
    "bound_text",
    "calibration_summary",
    "check_line",
    "claim_anchor",
    "claim_label",
    "fmt",
    "jsonable",
    "key_check",
    "load",
    "margin",
    "number",
    "short",
    "spread_text",
    "summary",
    "verdict_counts",
    "verdict_lines",
]

#: verdicts that fail a run (and are drawn red)
FAILING = frozenset({"failed", "implementation-error", "regression-failed", "xpassed-declared"})
#: verdicts in the order a summary lists them, failures first
ORDER = (
    "failed",
    "implementation-error",
    "regression-failed",
    "xpassed-declared",
    "xpassed",
    "passed",
    "xfailed",
    "skipped",
)


class ReportError(Exception):
    """A file that is not a claims report, or cannot be read; the message says which and why."""


def load(path: str | Path) -> dict[str, Any]:
    """A JSON claims report, checked to be one (ReportError otherwise)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read a claims report ({exc})") from None
    if not isinstance(data, dict) or "claims" not in data or "implementation" not in data:
        raise ReportError(f"{path}: not a claims report (no 'claims' and 'implementation')")
    if "seeds" in data and "claims_seed" not in data:
        raise ReportError(
            f"{path}: a multi-seed verdict table (--seeds), not a claims report; "
            "render the report of one seed instead"
        )
    return data


def jsonable(value: Any) -> Any:
    """Numbers, arrays and containers as plain JSON data (NaN/inf as strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return x if math.isfinite(x) else str(x)
    if isinstance(value, (int, str)) or value is None:
        return value
    return str(value)


# ----- numbers and bounds -----------------------------------------------------------------------


def number(x: Any) -> float | None:
    """``x`` as a float if it is a number (not a bool), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def fmt(x: Any, digits: int = 3) -> str:
    """A number in ``digits`` significant figures (integers as they are); other values shortened."""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.{digits}g}"
    return short(x)


def short(value: Any, limit: int = 160) -> str:
    """A measured value on one line: numbers to 4 significant figures, long lists cut."""

    def walk(v: Any, budget: int) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, list):
            parts = [walk(x, budget // 2) for x in v[:12]]
            more = f", … ({len(v)} items)" if len(v) > 12 else ""
            return "[" + ", ".join(parts) + more + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {walk(x, budget // 2)}" for k, x in v.items()) + "}"
        return str(v)

    text = walk(value, limit)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bound_text(check: Mapping[str, Any]) -> str:
    """A check's numeric bound (``≥ lower``, ``≤ upper``, ``in [lower, upper]``), else its text."""
    lo, hi = number(check.get("lower")), number(check.get("upper"))
    if lo is not None and hi is not None:
        return f"in [{fmt(lo)}, {fmt(hi)}]"
    if lo is not None:
        return f"≥ {fmt(lo)}"
    if hi is not None:
        return f"≤ {fmt(hi)}"
    return short(check.get("bound"), 80)


def margin(check: Mapping[str, Any]) -> float | None:
    """Signed distance of a check's value inside its numeric bound (negative: outside)."""
    value = number(check.get("value"))
    lo, hi = number(check.get("lower")), number(check.get("upper"))
    if value is None or (lo is None and hi is None):
        return None
    sides = ([value - lo] if lo is not None else []) + ([hi - value] if hi is not None else [])
    return min(sides)


def calibration_summary(claim: str, folder: Path | None) -> dict[str, dict[str, Any]]:
    """Per check key, the calibrated statistics of correct implementations (``mean``, ``sd``,
    ``runs``, ``passed``, ...) from ``folder/<claim>.json``; empty when there are none."""
    if folder is None:
        return {}
    path = Path(folder) / f"{claim}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    checks = data.get("summary", {}).get("checks", {})
    return checks if isinstance(checks, dict) else {}


def spread_text(check: Mapping[str, Any], cal: Mapping[str, Any] | None) -> str:
    """``correct: 0.013 ± 0.004 (40 runs, value at -0.3 sd)``, or "" without calibration data."""
    if not cal:
        return ""
    mean, sd = number(cal.get("mean")), number(cal.get("sd"))
    if mean is None or sd is None:
        return ""
    text = f"correct: {fmt(mean)} ± {fmt(sd)} ({cal.get('runs', '?')} runs"
    value = number(check.get("value"))
    if value is not None and sd > 0:
        text += f", value at {(value - mean) / sd:+.1f} sd"
    return text + ")"


def key_check(record: Mapping[str, Any], cal: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The check a summary row shows: the first that failed, else the numeric check nearest its
    bound (in calibrated standard deviations where known, else relative to the bound)."""
    checks = list(record.get("checks") or [])
    if not checks:
        return None
    for c in checks:
        if not c.get("passed"):
            return c

    def closeness(c: Mapping[str, Any]) -> tuple[int, float]:
        m = margin(c)
        if m is None:
            return (2, math.inf)
        sd = number((cal.get(c["key"]) or {}).get("sd"))
        if sd:
            return (0, m / sd)
        scale = max(abs(number(c.get("lower")) or 0.0), abs(number(c.get("upper")) or 0.0), 1e-12)
        return (1, m / scale)

    return min(checks, key=closeness)


def check_line(check: Mapping[str, Any], cal: Mapping[str, Any] | None) -> str:
    """``value 0.012, correct: 0.013 ± 0.004 (...), bound ≤ 0.1`` for a summary row."""
    value = check.get("value")
    shown = fmt(value) if number(value) is not None else short(check.get("measured"), 60)
    parts = [f"value {shown}", spread_text(check, cal), f"bound {bound_text(check)}"]
    return ", ".join(p for p in parts if p)


# ----- claim tests ------------------------------------------------------------------------------


def claim_anchor(record: Mapping[str, Any]) -> str:
    """A claim test's HTML anchor: its test name with other characters than letters, digits, - and _
    as -."""
    test = str(record.get("test") or record.get("claim"))
    name = test.rsplit("::", 1)[-1]
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)


def claim_label(record: Mapping[str, Any]) -> str:
    """The claim id, with the test's parameters when it has some (``phase_n2_empirical [fast]``)."""
    test = str(record.get("test") or "")
    params = test.rsplit("[", 1)[1].rstrip("]") if test.endswith("]") else ""
    return f"{record['claim']} [{params}]" if params else str(record["claim"])


def summary(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Verdict -> how many records have it, in the order first met (a report's ``summary``)."""
    out: dict[str, int] = {}
    for r in records:
        out[r["verdict"]] = out.get(r["verdict"], 0) + 1
    return out


def verdict_counts(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(verdict, how many records have it), in :data:`ORDER`, others after."""
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r.get("verdict"))] = counts.get(str(r.get("verdict")), 0) + 1
    return sorted(counts.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else 99, kv[0]))


def verdict_lines(report: Mapping[str, Any], calibration: Path | None = None) -> list[tuple[str, bool]]:
    """The verdict table a terminal shows: a header, then one line per claim test, failures
    first, with its key value against its bound; each with whether it is a failure."""
    records = sorted(
        report.get("claims") or [],
        key=lambda r: (
            ORDER.index(r.get("verdict")) if r.get("verdict") in ORDER else 99,
            str(r.get("test")),
        ),
    )
    if not records:
        return []
    labels = [claim_label(r) for r in records]
    width = max(len(x) for x in labels)
    vwidth = max(len("verdict"), *(len(str(r.get("verdict"))) for r in records))
    lines = [(f"{'claim':<{width}}  {'verdict':<{vwidth}}  key check", False)]
    for label, r in zip(labels, records, strict=True):
        cal = calibration_summary(str(r["claim"]), calibration)
        key = key_check(r, cal)
        detail = (
            short(r.get("message") or "", 120)
            if key is None
            else f"{key['key']}: {check_line(key, cal.get(key['key']))}"
        )
        line = f"{label:<{width}}  {r.get('verdict')!s:<{vwidth}}  {detail}"
        lines.append((line, r.get("verdict") in FAILING))
    return lines
