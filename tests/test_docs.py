"""The README stays short, and every relative link and anchor in README.md and docs/*.md resolves."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))
README_MAX_LINES = 200

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks: a link inside a code block is code."""
    lines, in_code = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip())
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            if count:
                seen[f"{slug}-{count}"] = 1
    return set(seen)


def relative_links(path: Path) -> list[tuple[int, str]]:
    links = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: are not checked
                links.append((number, target))
    return links


def broken_links(page: Path) -> list[str]:
    broken = []
    for number, target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{page.name}:{number}: {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{page.name}:{number}: {target}: no heading '{anchor}'")
    return broken


def test_readme_is_at_most_200_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_the_link_checker_finds_a_broken_anchor_and_a_missing_file(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title: one (1)\n\n[ok](#title-one-1) [bad](#nope) [gone](missing.md)\n"
                    "```\n[in code](#ignored)\n```\n", encoding="utf-8")
    assert anchors(page) == {"title-one-1"}
    assert relative_links(page) == [(3, "#title-one-1"), (3, "#nope"), (3, "missing.md")]
    assert broken_links(page) == ["page.md:3: #nope: no heading 'nope'", "page.md:3: missing.md: no such file"]


@pytest.mark.parametrize("page", [README, *DOC_PAGES], ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


def test_every_docs_page_is_linked_from_the_readme_and_links_back():
    assert DOC_PAGES, "docs/ has no pages"
    readme_targets = {target.partition("#")[0] for _, target in relative_links(README)}
    for page in DOC_PAGES:
        assert f"docs/{page.name}" in readme_targets, f"README.md does not link docs/{page.name}"
        title, blank, back = page.read_text(encoding="utf-8").splitlines()[:3]
        assert title.startswith("# ") and not blank, f"docs/{page.name}: first line is not its title"
        assert "](../README.md)" in back, f"docs/{page.name}: third line does not link back to the README"
