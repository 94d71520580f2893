"""Every rendering of a Leaderboard by format name, and writing them as ``leaderboard.<fmt>`` files.

The text formats live in :mod:`evalkit.report.formats`, the HTML page in
:mod:`evalkit.report.html`; this module only dispatches, so neither imports the other's caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evalkit.report.formats import escape_md, render_csv, render_json, render_markdown
from evalkit.report.html import render_html
from evalkit.report.table import Leaderboard
from evalkit.results.store import atomic_write

FORMATS = ("md", "html", "csv", "json")


def render(board: Leaderboard, fmt_name: str, title: str = "evalkit leaderboard") -> str:
    if fmt_name == "md":
        return f"# {escape_md(title)}\n\n" + render_markdown(board)
    if fmt_name == "csv":
        return render_csv(board)
    if fmt_name == "json":
        return render_json(board)
    if fmt_name == "html":
        return render_html(board, title)
    raise ValueError(f"unknown format {fmt_name!r}")


def write_reports(
    board: Leaderboard, folder: Path, formats: Sequence[str] = ("md", "csv"), title: str = "evalkit leaderboard"
) -> list[Path]:
    """Write ``leaderboard.<fmt>`` for each format into ``folder``, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in formats:
        path = folder / f"leaderboard.{name}"
        atomic_write(path, render(board, name, title))
        written.append(path)
    return written
