"""The claims report: the JSON a run writes, rendered as one self-contained HTML page, and two
reports compared side by side.

A JSON report (``--claims-report PATH.json``, written by the pytest plugin) holds one record per
claim test: verdict, message, every check with its measured value and bound (also as numbers:
``value``, ``lower``, ``upper``), recorded values, the specs it read and its figures (PNG files
beside the report, paths relative to it). :func:`render_html` turns it into one HTML file with the
figures embedded (base64 PNG) and no network access: a summary table, one card per claim test,
the theory tier apart. Where ``calibration/<claim>.json`` exists (:mod:`toymodel.calibration`),
each numeric check also shows where correct implementations land (mean ± standard deviation), so
a reader sees whether a value is ordinary for a correct implementation or far out.

:func:`render_compare` puts two reports (two implementations, seeds or commits) side by side:
verdicts that differ, then every measured value that moved, largest move first.

The pages carry a small script that, once loaded, writes what a person would see into the
element ``#report-selfcheck`` (images decoded, claim ids shown, the colour of each failing
row), so a headless browser can check the page as rendered (``tests/test_report_browser.py``).
"""

from __future__ import annotations

import base64
import datetime
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "FAILING",
    "ReportError",
    "calibration_summary",
    "default_calibration_dir",
    "key_check",
    "load",
    "render_compare",
    "render_html",
    "verdict_lines",
    "write",
]

#: verdicts that fail a run (and are drawn red)
FAILING = frozenset({"failed", "implementation-error", "regression-failed", "xpassed-declared"})
_ORDER = ("failed", "implementation-error", "regression-failed", "xpassed-declared", "xpassed",
          "passed", "xfailed", "skipped")


class ReportError(Exception):
    """A file that is not a claims report, or cannot be read; the message says which and why."""


def default_calibration_dir() -> Path:
    """``calibration/`` beside the installed claims (the checkout's in an editable install)."""
    from .pytest_plugin import shipped_baselines

    return shipped_baselines().parent / "calibration"


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
        raise ReportError(f"{path}: a multi-seed verdict table (--seeds), not a claims report; "
                          "render the report of one seed instead")
    return data


# ----- numbers and bounds -----------------------------------------------------------------------


def _num(x: Any) -> float | None:
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
    lo, hi = _num(check.get("lower")), _num(check.get("upper"))
    if lo is not None and hi is not None:
        return f"in [{fmt(lo)}, {fmt(hi)}]"
    if lo is not None:
        return f"≥ {fmt(lo)}"
    if hi is not None:
        return f"≤ {fmt(hi)}"
    return short(check.get("bound"), 80)


def margin(check: Mapping[str, Any]) -> float | None:
    """Signed distance of a check's value inside its numeric bound (negative: outside)."""
    value = _num(check.get("value"))
    lo, hi = _num(check.get("lower")), _num(check.get("upper"))
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
    mean, sd = _num(cal.get("mean")), _num(cal.get("sd"))
    if mean is None or sd is None:
        return ""
    text = f"correct: {fmt(mean)} ± {fmt(sd)} ({cal.get('runs', '?')} runs"
    value = _num(check.get("value"))
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
        sd = _num((cal.get(c["key"]) or {}).get("sd"))
        if sd:
            return (0, m / sd)
        scale = max(abs(_num(c.get("lower")) or 0.0), abs(_num(c.get("upper")) or 0.0), 1e-12)
        return (1, m / scale)

    return min(checks, key=closeness)


def check_line(check: Mapping[str, Any], cal: Mapping[str, Any] | None) -> str:
    """``value 0.012, correct: 0.013 ± 0.004 (...), bound ≤ 0.1`` for a summary row."""
    value = check.get("value")
    shown = fmt(value) if _num(value) is not None else short(check.get("measured"), 60)
    parts = [f"value {shown}", spread_text(check, cal), f"bound {bound_text(check)}"]
    return ", ".join(p for p in parts if p)


# ----- the page --------------------------------------------------------------------------------


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("toymodel", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)  # older reports lack newer fields
    env.filters["fmt"] = fmt
    env.filters["short"] = short
    return env


def _figure(path: str, base: Path) -> dict[str, str]:
    """A figure as an embeddable data URI (``src``), or the reason it is missing (``missing``)."""
    file = Path(path)
    if not file.is_absolute():
        file = base / file
    name = file.stem
    try:
        data = file.read_bytes()
    except OSError as exc:
        return {"name": name, "missing": f"{path}: {exc.strerror or exc}"}
    kind = "svg+xml" if file.suffix == ".svg" else "png"
    return {"name": name, "src": f"data:image/{kind};base64,{base64.b64encode(data).decode()}"}


def _anchor(record: Mapping[str, Any]) -> str:
    test = str(record.get("test") or record.get("claim"))
    name = test.rsplit("::", 1)[-1]
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)


def _label(record: Mapping[str, Any]) -> str:
    """The claim id, with the test's parameters when it has some (``phase_n2_empirical [fast]``)."""
    test = str(record.get("test") or "")
    params = test.rsplit("[", 1)[1].rstrip("]") if test.endswith("]") else ""
    return f"{record['claim']} [{params}]" if params else str(record["claim"])


def _card(record: Mapping[str, Any], base: Path, calibration: Path | None) -> dict[str, Any]:
    cal = calibration_summary(str(record["claim"]), calibration)
    key = key_check(record, cal)
    checks = [
        {**c, "bound_numeric": bound_text(c) if (_num(c.get("lower")) is not None
                                                 or _num(c.get("upper")) is not None) else "",
         "spread": spread_text(c, cal.get(c["key"])), "measured_text": short(c.get("measured"))}
        for c in record.get("checks") or []
    ]
    verdict = str(record.get("verdict", "?"))
    return {
        "anchor": _anchor(record),
        "label": _label(record),
        "claim": record["claim"],
        "section": record.get("section") or "",
        "statement": record.get("statement") or "",
        "verdict": verdict,
        "failing": verdict in FAILING,
        "message": record.get("message") or "",
        "test": record.get("test") or "",
        "implementation": record.get("implementation", ""),
        "seed": record.get("seed", ""),
        "specs": [{"hash": h, **(record.get("specs") or {}).get(h, {})}
                  for h in record.get("spec_hashes") or []],
        "checks": checks,
        "key": None if key is None else {"what": key.get("what", key["key"]),
                                          "line": check_line(key, cal.get(key["key"]))},
        "recorded": {k: short(v) for k, v in (record.get("values") or {}).items()},
        "regression": record.get("regression") or [],
        "figures": [_figure(f, base) for f in record.get("figures") or []],
        "figure_errors": record.get("figure_errors") or [],
        "duration": record.get("duration"),
    }


def _counts(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r.get("verdict"))] = counts.get(str(r.get("verdict")), 0) + 1
    return sorted(counts.items(), key=lambda kv: (_ORDER.index(kv[0]) if kv[0] in _ORDER else 99, kv[0]))


def render_html(report: Mapping[str, Any], *, base: Path, calibration: Path | None = None,
                title: str | None = None) -> str:
    """The report as one self-contained HTML page; ``base``: the folder figure paths are relative
    to (the JSON report's); ``calibration``: the folder of calibration files (None: none shown)."""
    claims = [_card(r, base, calibration) for r in report.get("claims") or []]
    theory = [_card(r, base, calibration) for r in report.get("theory") or []]
    calibrated = calibration is not None and any(
        calibration_summary(str(c["claim"]), calibration) for c in claims)
    return str(_environment().get_template("report.html.j2").render(
        title=title or f"toymodel claims: {report.get('implementation')}",
        report=report,
        claims=claims,
        theory=theory,
        counts=_counts(report.get("claims") or []),
        theory_counts=_counts(report.get("theory") or []),
        calibrated=calibrated,
        generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        failing=sorted(FAILING),
    ))


def write(report: Mapping[str, Any], path: Path, *, calibration: Path | None = None) -> list[Path]:
    """Write ``report`` to ``path``: JSON for ``.json``; for ``.html`` the page and, beside it,
    the JSON it came from (same name, ``.json``). Returns the files written."""
    from .claim import jsonable

    path = Path(path)
    text = json.dumps(jsonable(dict(report)), indent=2) + "\n"
    if path.suffix.lower() not in (".html", ".htm"):
        path.write_text(text)
        return [path]
    json_path = path.with_suffix(".json")
    json_path.write_text(text)
    path.write_text(render_html(report, base=path.parent, calibration=calibration))
    return [path, json_path]


# ----- two reports side by side ----------------------------------------------------------------


def _by_test(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for r in [*(report.get("claims") or []), *(report.get("theory") or [])]:
        out[str(r.get("test") or r["claim"]).rsplit("::", 1)[-1]] = r
    return out


def _check_values(record: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """Checks by ``key`` (``key#2`` for the second evaluation of a key)."""
    out: dict[str, Mapping[str, Any]] = {}
    seen: dict[str, int] = {}
    for c in (record or {}).get("checks") or []:
        k = str(c["key"])
        seen[k] = seen.get(k, 0) + 1
        out[k if seen[k] == 1 else f"{k}#{seen[k]}"] = c
    return out


def compare_rows(a: Mapping[str, Any], b: Mapping[str, Any], calibration: Path | None = None
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per claim test in either report, one row per numeric check value that moved,
    largest move first: in calibrated standard deviations where known, else as a share of the
    distance from A's value to its bound, else relative to the values)."""
    ra, rb = _by_test(a), _by_test(b)
    tests = list(dict.fromkeys([*ra, *rb]))
    rows, moved = [], []
    for t in tests:
        x, y = ra.get(t), rb.get(t)
        some = x or y
        assert some is not None
        claim = str(some["claim"])
        cal = calibration_summary(claim, calibration)
        ca, cb = _check_values(x), _check_values(y)
        changes = 0
        for k in dict.fromkeys([*ca, *cb]):
            va, vb = _num((ca.get(k) or {}).get("value")), _num((cb.get(k) or {}).get("value"))
            if va is None or vb is None or va == vb:
                continue
            changes += 1
            sd = _num((cal.get(k.split("#")[0]) or {}).get("sd"))
            check = ca.get(k) or cb.get(k) or {}
            room = margin(ca.get(k) or {})
            if sd:
                size, unit = abs(vb - va) / sd, "sd"
            elif room is not None and room > 0:
                size, unit = abs(vb - va) / room, "margin"
            else:
                size, unit = abs(vb - va) / max(abs(va), abs(vb), 1e-12), "relative"
            moved.append({"test": t, "anchor": _anchor(some), "label": _label(some), "key": k,
                          "what": check.get("what", k), "a": fmt(va), "b": fmt(vb), "delta": fmt(vb - va),
                          "size": size, "unit": unit,
                          "bound": bound_text(check), "passed_a": (ca.get(k) or {}).get("passed"),
                          "passed_b": (cb.get(k) or {}).get("passed")})
        va_ = "absent" if x is None else x.get("verdict", "?")
        vb_ = "absent" if y is None else y.get("verdict", "?")
        rows.append({"test": t, "anchor": _anchor(some), "label": _label(some), "claim": claim,
                     "tier": some.get("tier", "implementation"), "section": some.get("section") or "",
                     "verdict_a": va_, "verdict_b": vb_, "moved": changes,
                     "differs": va_ != vb_ and "absent" not in (va_, vb_), "only": x is None or y is None,
                     "failing_a": va_ in FAILING, "failing_b": vb_ in FAILING,
                     "figures_a": [] if x is None else x.get("figures") or [],
                     "figures_b": [] if y is None else y.get("figures") or []})
    moved.sort(key=lambda m: -m["size"])
    return rows, moved


def render_compare(a: Mapping[str, Any], b: Mapping[str, Any], *, names: Sequence[str], bases: Sequence[Path],
                   calibration: Path | None = None) -> str:
    """Two reports side by side as one self-contained HTML page: every claim test's verdicts,
    the values that moved, and both runs' figures."""
    rows, moved = compare_rows(a, b, calibration)
    for row in rows:
        row["figs_a"] = [_figure(f, bases[0]) for f in row.pop("figures_a")]
        row["figs_b"] = [_figure(f, bases[1]) for f in row.pop("figures_b")]
    return str(_environment().get_template("compare.html.j2").render(
        title=f"toymodel: {names[0]} vs {names[1]}", a=a, b=b, names=names, rows=rows, moved=moved,
        differ=[r for r in rows if r["differs"]],
        generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), failing=sorted(FAILING)))


def verdict_lines(report: Mapping[str, Any], calibration: Path | None = None) -> list[tuple[str, bool]]:
    """The verdict table a terminal shows: a header, then one line per claim test, failures
    first, with its key value against its bound; each with whether it is a failure."""
    records = sorted(report.get("claims") or [], key=lambda r: (
        _ORDER.index(r.get("verdict")) if r.get("verdict") in _ORDER else 99, str(r.get("test"))))
    if not records:
        return []
    labels = [_label(r) for r in records]
    width = max(len(x) for x in labels)
    vwidth = max(len("verdict"), *(len(str(r.get("verdict"))) for r in records))
    lines = [(f"{'claim':<{width}}  {'verdict':<{vwidth}}  key check", False)]
    for label, r in zip(labels, records, strict=True):
        cal = calibration_summary(str(r["claim"]), calibration)
        key = key_check(r, cal)
        detail = (short(r.get("message") or "", 120) if key is None
                  else f"{key['key']}: {check_line(key, cal.get(key['key']))}")
        line = f"{label:<{width}}  {r.get('verdict')!s:<{vwidth}}  {detail}"
        lines.append((line, r.get("verdict") in FAILING))
    return lines
