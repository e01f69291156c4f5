"""Files the documentation shows are shown as they are.

A fenced block right after ``<!-- file: PATH ... -->`` in README.md or docs/*.md is a
copy of PATH (relative to the repository) and must equal it byte for byte, so the
README cannot drift from ``examples/hello.lua`` again. A code block that names a
repository file in its first line (``-- examples/x.lua``) without the marker would be
an unchecked copy, and is refused too.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_COPY = re.compile(r"<!-- file: (\S+)[^\n]*-->\n```\w*\n(.*?)^```$", re.S | re.M)
_BLOCK = re.compile(r"^(<!--[^\n]*-->\n)?```\w+\n--\s*(\S+\.lua)\s*\n", re.M)


def _copies() -> list[tuple[Path, str, str]]:
    return [(doc, m.group(1), m.group(2)) for doc in DOCS for m in _COPY.finditer(doc.read_text())]


def test_every_marked_copy_equals_its_file() -> None:
    copies = _copies()
    assert ("README.md", "examples/hello.lua") in {(d.name, p) for d, p, _ in copies}
    for doc, path, text in copies:
        assert (ROOT / path).is_file(), f"{doc.name}: shows {path}, which does not exist"
        assert text == (ROOT / path).read_text(), f"{doc.name}: its copy of {path} differs"


def test_no_unmarked_copy_of_a_repository_file() -> None:
    unmarked = [
        f"{doc.name}: {m.group(2)}"
        for doc in DOCS
        for m in _BLOCK.finditer(doc.read_text())
        if m.group(1) is None and (ROOT / m.group(2)).is_file()
    ]
    assert unmarked == [], "blocks that name a file but are not checked against it"
