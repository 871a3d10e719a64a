"""The documentation's links resolve, and the README stays a page a newcomer reads to the end."""

from __future__ import annotations

import os
import re

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def anchors(path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (outside code blocks)."""
    found, fence = set(), False
    for line in path.read_text().splitlines():
        fence ^= line.startswith("```")
        heading = None if fence else re.match(r"#{1,6} (.*)", line)
        if heading:
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return found


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            destination = (page.parent / path).resolve() if path else page
            if not destination.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_readme_fits_on_a_few_screens_and_indexes_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    pages = {os.path.relpath(path, ROOT) for path in (ROOT / "docs").rglob("*.md")}
    pages -= {"docs/README.md", "docs/model_card_notes.md"}  # the index itself; the model card's source
    assert sorted(page for page in pages if f"]({page})" not in readme) == []
