"""Reports read only result files: the leaderboard (table.py) rendered as terminal, Markdown, CSV, JSON
(formats.py) and a self-contained HTML page with figures (html.py, plots.py); MTEB import/export (mteb_io.py)."""

from evalkit.report.formats import render_markdown
from evalkit.report.outputs import write_reports
from evalkit.report.table import Leaderboard, build, leaderboard

__all__ = ["Leaderboard", "build", "leaderboard", "render_markdown", "write_reports"]
