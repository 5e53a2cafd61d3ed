"""The docs: every relative link resolves, and the generated pages match the code and data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toymodel.suite import docs

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [
        target
        for target, _ in LINK.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_generated_pages_are_current() -> None:
    for name, page in docs.PAGES.items():
        path = ROOT / "docs" / name
        assert path.exists() and path.read_text() == page(ROOT), (
            f"docs/{name} is out of date: run python -m toymodel.suite.docs"
        )


def test_readme_is_a_front_door() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= 9 * 1024
