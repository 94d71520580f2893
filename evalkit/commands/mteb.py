"""``evalkit mteb``: export results in MTEB's layout, or import MTEB result files as leaderboard rows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError


def register(sub: Any) -> None:
    mteb = sub.add_parser("mteb", help="export results as MTEB result files, or import MTEB result files")
    actions = mteb.add_subparsers(title="actions", dest="mteb_action")
    exp = actions.add_parser("export", help="write a results folder in MTEB's <model>/<revision>/<Task>.json layout")
    exp.add_argument("results", type=Path, help="evalkit results folder")
    exp.add_argument("-o", "--output", type=Path, required=True, help="folder to write the MTEB files into")
    exp.set_defaults(func=export)
    imp = actions.add_parser(
        "import",
        help="read MTEB result files (e.g. the published ones) into a results folder, marked origin=mteb-import",
    )
    imp.add_argument("paths", type=Path, nargs="+", help="MTEB result files or folders (searched recursively)")
    imp.add_argument("-o", "--output", type=Path, required=True, help="evalkit results folder to add the rows to")
    imp.add_argument("--split", default="test", help="which split's scores to import (default test)")
    imp.add_argument("--subset", help="which hf_subset (default: 'default', else 'en', else the mean over all subsets, as MTEB does)")
    imp.add_argument("--all-tasks", action="store_true", help="also import tasks evalkit does not have")
    imp.set_defaults(func=import_)
    mteb.set_defaults(func=lambda args: _usage(mteb))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def export(args: argparse.Namespace) -> int:
    from evalkit.reading import load_results
    from evalkit.report.mteb_io import export_results

    results = [r for r in load_results(args.results) if r.ok]
    if not results:
        raise EvalkitError("no successful results to export", path=args.results)
    try:
        written = export_results(results, args.output)
    except OSError as exc:
        raise EvalkitError(f"cannot write ({exc.strerror or exc})", path=args.output) from None
    print(f"wrote {len(written)} MTEB result file(s) under {args.output}", file=sys.stderr)
    return 0


def import_(args: argparse.Namespace) -> int:
    from evalkit.execution.lock import ResultsLock
    from evalkit.report.formats import plain
    from evalkit.report.mteb_io import import_files
    from evalkit.results import ResultStore

    imported, skipped = import_files(args.paths, split=args.split, subset=args.subset, all_tasks=args.all_tasks)
    store = ResultStore(args.output)
    if imported:
        with ResultsLock(args.output):  # never interleaved with a run writing the same folder
            for result in imported:
                store.write(result)
                print(
                    f"imported {plain(result.encoder)} × {plain(result.task)}: {plain(result.main_metric)} = {result.main_score:.4f}",
                    file=sys.stderr,
                )
    if skipped:
        print(f"skipped {len(skipped)} file(s) of tasks evalkit does not have (--all-tasks imports them)", file=sys.stderr)
    if not imported:
        raise EvalkitError("nothing imported: none of the files is a task evalkit has", hint="pass --all-tasks to import them anyway")
    return 0
