"""Generated documentation: the claims page, the kill-table page and the timing page, from the
claim code and the data in the repository, so that what the docs say about bounds, calibration and
cost cannot drift from what was measured.

    python -m toymodel.suite.docs            # rewrite docs/claims.md, mutants.md and timing.md
    python -m toymodel.suite.docs --check    # exit 1 if one is out of date (tests/test_docs.py)

The claims page lists, per section, every claim with the paper's sentence (the test's
docstring), its checks (key, what is compared, the bound) and, from ``calibration/<claim>.json``,
the runs of correct implementations: pass count, the Clopper-Pearson 95% interval on the pass
rate, the value's mean and spread, and its distance to the bound in standard deviations.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .claim import SECTIONS

__all__ = ["PAGES", "claims_page", "main", "mutants_page", "timing_page"]


def _tests(path: Path) -> Iterator[tuple[str, str, list[str], bool, bool, list[tuple[str, str]]]]:
    """(claim id, docstring, markers, slow, theory, [(check key, bound text)]) per claim test,
    including the checks of the module's helper functions it calls."""
    tree = ast.parse(path.read_text())
    helpers = _helper_checks(path)
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
            continue
        marks, claim = [], node.name.removeprefix("test_")
        for dec in node.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            text = ast.unparse(target)
            if text.startswith("pytest.mark."):
                marks.append(text.removeprefix("pytest.mark."))
            if text == "pytest.mark.claim" and isinstance(dec, ast.Call):
                claim = ast.literal_eval(dec.args[0])
        checks = []
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in helpers:
                checks.extend(helpers[sub.func.id])
            if _is_check(sub):
                checks.append(_check_of(sub))  # type: ignore[arg-type]
        yield (claim, ast.get_docstring(node) or "", marks, "slow" in marks, "theory" in marks, checks)


def _text(node: ast.expr) -> str:
    """Source text of a string argument, as a reader sees it (f-string fields kept in braces)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            _text(v) if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
            for v in node.values
            if isinstance(v, (ast.Constant, ast.FormattedValue))
        )
    return ast.unparse(node)


def _check_of(call: ast.Call) -> tuple[str, str]:
    bound = next((_text(k.value) for k in call.keywords if k.arg == "bound"), "")
    return str(call.args[0].value), bound  # type: ignore[attr-defined]


def _is_check(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "check"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
    )


def _helper_checks(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Checks made in module-level helpers (``_top_m_checks(claim, ...)``), by helper name."""
    out: dict[str, list[tuple[str, str]]] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("test_"):
            for sub in ast.walk(node):
                if _is_check(sub):
                    out.setdefault(node.name, []).append(_check_of(sub))  # type: ignore[arg-type]
    return out


def _fmt(x: Any) -> str:
    if isinstance(x, str):
        return x
    if x is None:
        return ""
    if isinstance(x, float):
        return "∞" if math.isinf(x) else f"{x:.3g}"
    return str(x)


def _yardstick(y: dict[str, Any] | None) -> str:
    if not y:
        return ""
    mark = "" if y["met"] else " ✗"
    if y["kind"] == "margin_sd":
        return f"{_fmt(y['figure'])} sd{mark}"
    if y["kind"] == "binomial":
        lo, hi = y["rate_95"]
        return (
            f"P(fail) {y['figure']:.1e} ({y['successes']}/{y['tries']} restarts, rate {lo:.2f}-{hi:.2f}, "
            f"{y['tries_per_run']} per run){mark}"
        )
    return f"exact{mark}"


def _calibration_row(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "not yet calibrated"
    lo, hi = summary["pass_rate_95"]
    return f"{summary['passed']}/{summary['runs']} passed (95% interval {lo:.2f}-{hi:.2f})"


def claims_page(root: Path) -> str:
    """The claims page (Markdown) for the checkout at ``root``."""
    claims_dir, cal_dir = root / "claims", root / "calibration"
    lines = [
        "# The claims",
        "",
        "Generated by `python -m toymodel.suite.docs` from the claim tests in `claims/` and the calibration "
        "data in `calibration/` (made by `tox -e calibrate`); do not edit by hand.",
        "",
        "Each claim lists the paper's statement (the test's docstring), then its checks: the key (as in "
        "failure messages and reports), the bound, and how correct implementations (the bundled `torch` "
        "and `numpy`, at many seeds) land: passes, the mean ± standard deviation of the compared value "
        "and the yardstick that judges its robustness (`toymodel.suite.calibration`): the mean's distance "
        "to the bound in standard deviations (met at 3), or, for a count of successes among restarts, "
        "the probability that a run falls short at the lower end of the pooled per-restart rate (met at "
        "the 3-sd tail, 0.00135), or *exact* for a value that never varied. ✗ marks a yardstick not met. "
        "*Theory* claims train nothing.",
        "",
    ]
    for section in SECTIONS:
        path = claims_dir / f"test_{section}.py"
        if not path.exists():
            continue
        lines += [f"## {section}", ""]
        for claim, doc, _, slow, theory, checks in _tests(path):
            tier = "theory" if theory else ("paper scale (slow)" if slow else "fast tier")
            cal_path = cal_dir / f"{claim}.json"
            data = json.loads(cal_path.read_text()) if cal_path.exists() and not theory and not slow else None
            summary = data.get("summary") if data else None
            lines += [
                f"### `{claim}` ({tier})",
                "",
                *(f"> {ln}" if ln else ">" for ln in doc.splitlines()),
                "",
            ]
            if not checks:
                continue
            if not theory and not slow:
                lines += [f"Calibration: {_calibration_row(summary)}.", ""]
            lines += ["| check | bound | passed | value (mean ± sd) | yardstick |", "|---|---|---|---|---|"]
            seen = set()
            for key, bound in checks:
                if key in seen:
                    continue
                seen.add(key)
                stat = (summary or {}).get("checks", {}).get(key, {})
                bound = stat.get("bound") or bound
                passed = f"{stat['passed']}/{stat['runs']}" if stat else ""
                value = f"{_fmt(stat.get('mean'))} ± {_fmt(stat.get('sd'))}" if "mean" in stat else ""
                margin = _yardstick(stat.get("yardstick"))
                lines.append(
                    f"| `{key}` | {bound.strip(chr(34)).replace('|', '/')} | {passed} | {value} | {margin} |"
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def mutants_page(root: Path) -> str:
    """The kill-table page (Markdown): which claims catch which mistake, at how many seeds."""
    path = root / "tests" / "data" / "kill_table.json"
    lines = [
        "# The suite can fail: the kill table",
        "",
        "Generated by `python -m toymodel.suite.docs` from `tests/data/kill_table.json` (made by "
        "`tox -e killtable`); do not edit by hand. Each mutant in `tests/mutants.py` is the reference "
        "implementation after one plausible mistake; it runs against the whole fast tier at several claims "
        "seeds beside the reference itself. *Killed* counts the seeds at which some claim failed; the "
        "claims column lists those that failed at any seed (with how many).",
        "",
    ]
    if not path.exists():
        return "\n".join([*lines, "No kill table yet.", ""])
    table = json.loads(path.read_text())
    lines += [
        f"Table made at commit {table.get('commit', '?')} on {table.get('date', '?')}.",
        "",
        "| implementation | mistake | killed | caught by (seeds) |",
        "|---|---|---|---|",
    ]
    meta = table.get("mutants", {})
    for name, by_seed in sorted(table["runs"].items(), key=lambda kv: (kv[0] != "torch", kv[0])):
        killed = sum(r["killed"] for r in by_seed.values())
        counts: dict[str, int] = {}
        for r in by_seed.values():
            for claim, verdict in r["verdicts"].items():
                if verdict == "failed":
                    counts[claim] = counts.get(claim, 0) + 1
        by = ", ".join(f"`{c}` ({n})" for c, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        info = meta.get(name, {})
        mistake = "the reference (false alarms)" if name == "torch" else info.get("mistake", "")
        if info.get("harmless"):
            mistake += f" — harmless: {info['harmless']}"
        lines.append(f"| `{name}` | {mistake} | {killed}/{len(by_seed)} | {by} |")
    return "\n".join(lines) + "\n"


def timing_page(root: Path) -> str:
    """How long the fast tier takes per implementation (Markdown), from
    ``calibration/tier_times.json`` (made by ``python -m toymodel.suite.tiertime``)."""
    path = root / "calibration" / "tier_times.json"
    lines = [
        "# How long the fast tier takes",
        "",
        "Generated by `python -m toymodel.suite.docs` from `calibration/tier_times.json` (made by "
        "`python -m toymodel.suite.tiertime`); do not edit by hand. Each row is the whole fast tier "
        "(`pytest claims`, theory included) for one implementation at one claims seed, trained from an "
        "empty result cache through `--executor processes:JOBS` (one thread per training), the machine "
        "otherwise idle. `torch-plain` is the official notebook's loop (autograd, `torch.optim.AdamW`), "
        "the cost an implementation written in that style pays; `torch` is the reference kernel.",
        "",
    ]
    runs = json.loads(path.read_text())["runs"] if path.exists() else {}
    if not runs:
        return "\n".join([*lines, "No timing yet.", ""])
    lines += [
        "| implementation | wall time | jobs | verdicts | failed | training, 3 costliest specs (s) "
        "| machine | date, commit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for impl, r in sorted(runs.items(), key=lambda kv: -kv[1]["wall_seconds"]):
        wall = r["wall_seconds"]
        verdicts = ", ".join(f"{n} {v}" for v, n in r["verdicts"].items())
        theory = r.get("theory_verdicts", {})
        if theory:
            verdicts += "; theory " + ", ".join(f"{n} {v}" for v, n in theory.items())
        by_cost = sorted(r["train_seconds"].items(), key=lambda kv: -kv[1])
        costly = ", ".join(f"{name} {sec:g}" for name, sec in by_cost[:3])
        total = sum(r["train_seconds"].values())
        m = r.get("machine", {})
        lines.append(
            f"| `{impl}` | {int(wall // 60)} min {wall % 60:.0f} s | {r['jobs']} | {verdicts} | "
            f"{', '.join(f'`{c}`' for c in r['failed']) or 'none'} | {total:.0f} in all; {costly} | "
            f"{m.get('cpus', '?')} CPUs, Python {m.get('python', '?')} | {r['date']}, {r['commit']} |"
        )
    return "\n".join(lines) + "\n"


#: the generated pages: file name under docs/ -> its generator
PAGES = {"claims.md": claims_page, "mutants.md": mutants_page, "timing.md": timing_page}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m toymodel.suite.docs", description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="the checkout (default: the current folder)")
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated page is out of date")
    args = ap.parse_args(argv)
    root = Path(args.root)
    stale = []
    for name, page in PAGES.items():
        text = page(root)
        path = root / "docs" / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date (run python -m toymodel.suite.docs): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
