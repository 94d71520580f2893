"""``evalkit report``: the comparison table from a results folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.results.schema import CellResult


def register(sub: Any) -> None:
    rep = sub.add_parser("report", help="print the comparison table and write leaderboard.md / .csv")
    rep.add_argument("results", type=Path, help="results folder")
    rep.add_argument("-o", "--output", type=Path, help="where to write the reports (default: the results folder)")
    rep.set_defaults(func=main)


def show(results: Sequence[CellResult], folder: Path) -> list[Path]:
    """Print the table to stdout and write its files into ``folder``."""
    from evalkit.report.table import leaderboard, render_terminal, write_reports

    table = leaderboard(results)
    print(render_terminal(table))
    return write_reports(table, folder)


def main(args: argparse.Namespace) -> int:
    from evalkit.results import ResultStore

    results = ResultStore(args.results).load_all()
    if not results:
        raise EvalkitError("no results found", path=args.results, hint="run `evalkit run -o DIR` first")
    for path in show(results, args.output or args.results):
        print(f"wrote {path}", file=sys.stderr)
    return 0
