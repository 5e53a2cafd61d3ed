"""``toymodel-claims`` / ``python -m toymodel.check``: run the installed claims suite.

Usage::

    toymodel-claims --impl mypackage.mymodule:train            # the fast tier of every claim
    toymodel-claims --impl numpy -k phase --claims-report r.json
    toymodel-claims --impl mymod:train -m slow                  # the paper-scale tier

Every argument is passed to pytest; the claims are collected from the installed package, so no
checkout is needed.
"""

from __future__ import annotations

import sys

import pytest

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return int(pytest.main(["--pyargs", "toymodel.claims", *args]))


if __name__ == "__main__":
    raise SystemExit(main())
