"""The comparison table: encoders × tasks (main score × 100), plus the mean.

Built with pandas from CellResults; the same frame feeds the terminal, Markdown
and CSV, so the three never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from evalkit.results.schema import CellResult
from evalkit.results.store import atomic_write


def cells_frame(results: Sequence[CellResult]) -> pd.DataFrame:
    """One row per cell: the long form every report is derived from."""
    rows = [
        {
            "encoder": r.encoder,
            "task": r.task if r.split == _default_split(r) else f"{r.task}/{r.split}",
            "task_type": r.task_type,
            "split": r.split,
            "main_metric": r.main_metric,
            "score": None if r.main_score is None else 100 * r.main_score,
            "sentences_per_second": r.throughput.get("sentences_per_second"),
            "origin": r.origin,
        }
        for r in results
        if r.ok
    ]
    return pd.DataFrame(rows, columns=["encoder", "task", "task_type", "split", "main_metric", "score", "sentences_per_second", "origin"])


def _default_split(result: CellResult) -> str:
    return "test"


def leaderboard(results: Sequence[CellResult]) -> pd.DataFrame:
    """Encoders (rows, best mean first) × tasks (columns, scores × 100) with a Mean column."""
    frame = cells_frame(results)
    if frame.empty:
        return pd.DataFrame()
    table = frame.pivot_table(index="encoder", columns="task", values="score", aggfunc="first", dropna=False)
    table = table.reindex(sorted(table.columns, key=str.lower), axis=1)
    table["Mean"] = table.mean(axis=1, skipna=False)
    table = table.sort_values("Mean", ascending=False, na_position="last")
    table.columns.name = None
    return table


def render_markdown(table: pd.DataFrame, digits: int = 2) -> str:
    if table.empty:
        return "(no results)\n"
    headers = ["encoder", *map(str, table.columns)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for encoder, row in table.iterrows():
        cells = ["–" if pd.isna(v) else f"{v:.{digits}f}" for v in row]
        lines.append("| " + " | ".join([_escape_md(str(encoder)), *cells]) + " |")
    return "\n".join(lines) + "\n"


def render_terminal(table: pd.DataFrame, digits: int = 2) -> str:
    from tabulate import tabulate

    if table.empty:
        return "(no results)"
    shown = table.map(lambda v: "–" if pd.isna(v) else f"{v:.{digits}f}")
    return str(tabulate(shown, headers=["encoder", *map(str, table.columns)], tablefmt="github", stralign="right"))


def _escape_md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def write_reports(table: pd.DataFrame, folder: Path) -> list[Path]:
    """Write leaderboard.md and leaderboard.csv atomically into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    md, csv = folder / "leaderboard.md", folder / "leaderboard.csv"
    atomic_write(md, "Main score × 100 (STS: cosine Spearman).\n\n" + render_markdown(table))
    atomic_write(csv, table.to_csv(float_format="%.4f", index_label="encoder"))
    return [md, csv]
