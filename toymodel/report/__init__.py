"""The report layer: what a claims run shows a person.

- :mod:`~toymodel.report.figures`: the paper's figures, drawn from the arrays a claim measured;
- :mod:`~toymodel.report.records`: a claims report as data, read back, and its checks in words
  (the terminal's verdict table);
- :mod:`~toymodel.report.html`: the report as one self-contained HTML page (``templates/``), and
  two reports side by side.

The report knows nothing of pytest or of how claims run: it draws and renders what it is given.
The names a reader of reports needs are re-exported here (``from toymodel import report;
report.write(...)``).
"""

from .html import compare_rows, render_compare, render_html, write
from .records import (
    FAILING,
    ReportError,
    calibration_summary,
    jsonable,
    key_check,
    load,
    verdict_counts,
    verdict_lines,
)

__all__ = [
    "FAILING",
    "ReportError",
    "calibration_summary",
    "compare_rows",
    "jsonable",
    "key_check",
    "load",
    "render_compare",
    "render_html",
    "verdict_counts",
    "verdict_lines",
    "write",
]
