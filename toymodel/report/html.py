"""The claims report as one self-contained HTML page, and two reports compared side by side.

:func:`write` writes a report (:mod:`toymodel.report.records`) as JSON, or as an HTML page with
the JSON beside it. :func:`render_html` turns it into one HTML file with the figures embedded
(base64 PNG) and no network access: a summary table, one card per claim test, the theory tier
apart. Where ``calibration/<claim>.json`` exists (:mod:`toymodel.suite.calibration`), each numeric
check also shows where correct implementations land (mean ± standard deviation), so a reader sees
whether a value is ordinary for a correct implementation or far out.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .records import (
    FAILING,
    bound_text,
    calibration_summary,
    check_line,
    claim_anchor,
    claim_label,
    fmt,
    jsonable,
    key_check,
    margin,
    number,
    short,
    spread_text,
    verdict_counts,
)

__all__ = ["compare_rows", "render_compare", "render_html", "write"]


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("toymodel.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )  # older reports lack newer fields
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


def _card(record: Mapping[str, Any], base: Path, calibration: Path | None) -> dict[str, Any]:
    cal = calibration_summary(str(record["claim"]), calibration)
    key = key_check(record, cal)
    checks = [
        {
            **c,
            "bound_numeric": bound_text(c)
            if (number(c.get("lower")) is not None or number(c.get("upper")) is not None)
            else "",
            "spread": spread_text(c, cal.get(c["key"])),
            "measured_text": short(c.get("measured")),
        }
        for c in record.get("checks") or []
    ]
    verdict = str(record.get("verdict", "?"))
    return {
        "anchor": claim_anchor(record),
        "label": claim_label(record),
        "claim": record["claim"],
        "section": record.get("section") or "",
        "statement": record.get("statement") or "",
        "verdict": verdict,
        "failing": verdict in FAILING,
        "message": record.get("message") or "",
        "test": record.get("test") or "",
        "implementation": record.get("implementation", ""),
        "seed": record.get("seed", ""),
        "specs": [
            {"hash": h, **(record.get("specs") or {}).get(h, {})} for h in record.get("spec_hashes") or []
        ],
        "checks": checks,
        "key": None
        if key is None
        else {"what": key.get("what", key["key"]), "line": check_line(key, cal.get(key["key"]))},
        "recorded": {k: short(v) for k, v in (record.get("values") or {}).items()},
        "regression": record.get("regression") or [],
        "figures": [_figure(f, base) for f in record.get("figures") or []],
        "figure_errors": record.get("figure_errors") or [],
        "duration": record.get("duration"),
    }


def render_html(
    report: Mapping[str, Any], *, base: Path, calibration: Path | None = None, title: str | None = None
) -> str:
    """The report as one self-contained HTML page; ``base``: the folder figure paths are relative
    to (the JSON report's); ``calibration``: the folder of calibration files (None: none shown)."""
    claims = [_card(r, base, calibration) for r in report.get("claims") or []]
    theory = [_card(r, base, calibration) for r in report.get("theory") or []]
    calibrated = calibration is not None and any(
        calibration_summary(str(c["claim"]), calibration) for c in claims
    )
    return str(
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title or f"toymodel claims: {report.get('implementation')}",
            report=report,
            claims=claims,
            theory=theory,
            counts=verdict_counts(report.get("claims") or []),
            theory_counts=verdict_counts(report.get("theory") or []),
            calibrated=calibrated,
            generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            failing=sorted(FAILING),
        )
    )


def write(report: Mapping[str, Any], path: Path, *, calibration: Path | None = None) -> list[Path]:
    """Write ``report`` to ``path``: JSON for ``.json``; for ``.html`` the page and, beside it,
    the JSON it came from (same name, ``.json``). Returns the files written."""
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


def compare_rows(
    a: Mapping[str, Any], b: Mapping[str, Any], calibration: Path | None = None
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
            va, vb = number((ca.get(k) or {}).get("value")), number((cb.get(k) or {}).get("value"))
            if va is None or vb is None or va == vb:
                continue
            changes += 1
            sd = number((cal.get(k.split("#")[0]) or {}).get("sd"))
            check = ca.get(k) or cb.get(k) or {}
            room = margin(ca.get(k) or {})
            if sd:
                size, unit = abs(vb - va) / sd, "sd"
            elif room is not None and room > 0:
                size, unit = abs(vb - va) / room, "margin"
            else:
                size, unit = abs(vb - va) / max(abs(va), abs(vb), 1e-12), "relative"
            moved.append(
                {
                    "test": t,
                    "anchor": claim_anchor(some),
                    "label": claim_label(some),
                    "key": k,
                    "what": check.get("what", k),
                    "a": fmt(va),
                    "b": fmt(vb),
                    "delta": fmt(vb - va),
                    "size": size,
                    "unit": unit,
                    "bound": bound_text(check),
                    "passed_a": (ca.get(k) or {}).get("passed"),
                    "passed_b": (cb.get(k) or {}).get("passed"),
                }
            )
        va_ = "absent" if x is None else x.get("verdict", "?")
        vb_ = "absent" if y is None else y.get("verdict", "?")
        rows.append(
            {
                "test": t,
                "anchor": claim_anchor(some),
                "label": claim_label(some),
                "claim": claim,
                "tier": some.get("tier", "implementation"),
                "section": some.get("section") or "",
                "verdict_a": va_,
                "verdict_b": vb_,
                "moved": changes,
                "differs": va_ != vb_ and "absent" not in (va_, vb_),
                "only": x is None or y is None,
                "failing_a": va_ in FAILING,
                "failing_b": vb_ in FAILING,
                "figures_a": [] if x is None else x.get("figures") or [],
                "figures_b": [] if y is None else y.get("figures") or [],
            }
        )
    moved.sort(key=lambda m: -m["size"])
    return rows, moved


def render_compare(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    *,
    names: Sequence[str],
    bases: Sequence[Path],
    calibration: Path | None = None,
) -> str:
    """Two reports side by side as one self-contained HTML page: every claim test's verdicts,
    the values that moved, and both runs' figures."""
    rows, moved = compare_rows(a, b, calibration)
    for row in rows:
        row["figs_a"] = [_figure(f, bases[0]) for f in row.pop("figures_a")]
        row["figs_b"] = [_figure(f, bases[1]) for f in row.pop("figures_b")]
    return str(
        _environment()
        .get_template("compare.html.j2")
        .render(
            title=f"toymodel: {names[0]} vs {names[1]}",
            a=a,
            b=b,
            names=names,
            rows=rows,
            moved=moved,
            differ=[r for r in rows if r["differs"]],
            generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            failing=sorted(FAILING),
        )
    )
