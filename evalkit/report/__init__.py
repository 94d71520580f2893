"""Reports read only the result store: tables for the terminal, Markdown and CSV."""

from evalkit.report.table import leaderboard, render_markdown, write_reports

__all__ = ["leaderboard", "render_markdown", "write_reports"]
