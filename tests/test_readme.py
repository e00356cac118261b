"""The README's table of contents matches its sections."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def sections(text: str) -> list[tuple[int, str]]:
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"(#{2,3}) (.+)", line)) and m.group(2) != "Contents":
            found.append((len(m.group(1)), m.group(2)))
    return found


def contents(text: str) -> list[tuple[int, str, str]]:
    block = text.split("\n## Contents\n", 1)[1].split("\n## ", 1)[0]
    return [
        (2 + len(m.group(1)) // 2, m.group(2), m.group(3))
        for m in re.finditer(r"^( *)- \[(.+)\]\(#([^)]+)\)$", block, re.M)
    ]


def test_contents_lists_every_section_in_order():
    text = README.read_text()
    listed = contents(text)
    assert [(level, title) for level, title, _ in listed] == sections(text)
    for _, title, link in listed:
        assert link == anchor(title), title
