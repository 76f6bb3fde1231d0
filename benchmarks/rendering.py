"""Writing rendered tables into the pages that show them, or checking that they are up to date.

Every table a reader sees is rendered from a results file by a suite's ``render.py``; a rendered
block sits between ``<!-- NAME:begin ... -->`` and ``<!-- NAME:end -->`` markers in a page that
is otherwise written by hand, or a whole page is rendered. ``--check`` (CI) fails when a page
differs from what the results render to now, so no figure can go stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def markers(name: str, script: str) -> tuple[str, str]:
    """The begin and end markers of the block ``name`` rendered by ``script``."""
    return f"<!-- {name}:begin (rendered by {script}; do not edit by hand) -->", f"<!-- {name}:end -->"


def with_block(page: str, name: str, script: str, block: str) -> str:
    """``page`` with the block ``name`` replaced by ``block`` (a one-line error when the markers are missing)."""
    begin, end = markers(name, script)
    if begin not in page or end not in page:
        raise SystemExit(f"the page has no '{name}' markers: add the two lines\n{begin}\n{end}")
    return page[:page.index(begin)] + begin + "\n" + block.strip("\n") + "\n" + page[page.index(end):]


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def write_or_check(pages: dict[Path, str], check: bool, command: str) -> int:
    """Write every ``path -> text``, or with ``check`` report the stale ones (exit status 1)."""
    if check:
        stale = [_shown(p) for p, text in pages.items() if not p.is_file() or p.read_text() != text]
        if stale:
            print(f"stale: {', '.join(stale)}; run {command}", file=sys.stderr)
            return 1
        return 0
    for path, text in pages.items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {_shown(path)}")
    return 0
