"""The documentation as tests read it: the one reader of `<!-- section:NAME -->` markers.

A page marks a part that a test checks (the Quick start's commands, the settings table, the
operations runbook) with `<!-- section:NAME -->` ... `<!-- /section:NAME -->`, so the test reads
that part wherever the page puts it, and moving prose around never breaks it silently: a
missing marker fails with the file and the name.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def doc_section(path: str | Path, name: str) -> str:
    """The text between the `name` markers of `path` (relative to the repository root).

    Raises `LookupError` naming the file when either marker is missing."""
    file = ROOT / path
    text = file.read_text(encoding="utf-8")
    start_marker, end_marker = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    start = text.find(start_marker)
    end = text.find(end_marker, start)
    if start < 0 or end < 0:
        raise LookupError(f"{file.relative_to(ROOT)} has no section {name!r} between markers")
    return text[start + len(start_marker) : end]
