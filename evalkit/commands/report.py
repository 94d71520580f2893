"""``evalkit report``: the leaderboard of a results folder (Markdown, HTML, CSV, JSON)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.results.schema import CellResult

FORMATS = ("md", "html", "csv", "json")


def register(sub: Any) -> None:
    rep = sub.add_parser(
        "report",
        help="leaderboard with intervals, tie-aware ranks and throughput (md, html, csv, json)",
        description="Print the leaderboard and write leaderboard.<format> files. "
        "With -o -, write the one chosen format to stdout (e.g. for a pull-request comment).",
    )
    rep.add_argument("results", type=Path, help="results folder")
    rep.add_argument("--baseline", type=Path, metavar="DIR", help="also compare each encoder with this results folder (paired bootstrap)")
    rep.add_argument(
        "-f", "--format", action="append", choices=FORMATS, metavar="FMT", help=f"{' | '.join(FORMATS)}; repeat (default: md and csv)"
    )
    rep.add_argument("-o", "--output", help="folder for the files (default: the results folder), or - for stdout")
    rep.add_argument("--title", default="evalkit leaderboard", help="report title")
    # numbers arrive as text and are checked by ReportFlags, so a bad one is one line naming the flag
    rep.add_argument("--level", default="0.95", help="confidence level of the intervals, 0.5 to below 1 (default 0.95)")
    rep.add_argument("--n-boot", default="1000", help="bootstrap resamples, 100 to 100000 (default 1000)")
    rep.add_argument("--seed", default="0", help="resampling seed, 0 to 2**32-1 (default 0)")
    rep.add_argument("--alpha", default="0.05", help="significance level for tied ranks, above 0 up to 0.5 (default 0.05)")
    rep.set_defaults(func=main)


def show(results: Sequence[CellResult], folder: Path) -> list[Path]:
    """The quick end-of-run table: stored intervals, no ranks (``evalkit report`` adds them)."""
    from evalkit.report.formats import render_terminal
    from evalkit.report.outputs import write_reports
    from evalkit.report.table import build

    board = build(results, ranks=False)
    print(render_terminal(board))
    return write_reports(board, folder)


def main(args: argparse.Namespace) -> int:
    from evalkit.reading import load_results
    from evalkit.report.formats import render_terminal
    from evalkit.report.outputs import render, write_reports
    from evalkit.report.table import report_board
    from evalkit.schemas.cli import ReportFlags, check_flags
    from evalkit.stats import Bootstrap

    checked = check_flags(ReportFlags, args)
    config = Bootstrap(level=checked.level, n_boot=checked.n_boot, seed=checked.seed)
    results = [r for r in load_results(args.results) if r.ok]
    if not results:
        raise EvalkitError("no successful results found", path=args.results, hint="run `evalkit run -o DIR` first")
    baseline = load_results(args.baseline, what="baseline") if args.baseline else []
    board = report_board(results, config=config, alpha=checked.alpha, baseline=baseline)  # the one Results.leaderboard() builds
    formats = list(dict.fromkeys(args.format or ["md", "csv"]))
    if "html" in formats:  # before anything is printed or written: the figures need the report extra
        from evalkit.extras import optional_import

        optional_import("matplotlib")
    if args.output == "-":
        if len(formats) != 1:
            raise EvalkitError("-o - writes one format to stdout; choose it with --format", field="--output")
        sys.stdout.write(render(board, formats[0], args.title))
        return 0
    print(render_terminal(board))
    folder = Path(args.output) if args.output else args.results
    try:
        written = write_reports(board, folder, formats, args.title)
    except OSError as exc:
        raise EvalkitError(f"cannot write the report ({exc.strerror or exc})", path=folder) from None
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
