"""``evalkit run``: score encoders on tasks and write one result file per cell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from evalkit.defaults import DEFAULT_OUTPUT


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="score encoders on tasks (no arguments: the embedded pooling comparison)")
    run.add_argument("-e", "--encoder", action="append", default=[], metavar="SPEC", help="BACKEND:MODEL[?k=v&...]; repeat")
    run.add_argument("-t", "--task", action="append", default=[], metavar="TASK", help="task name or .toml file; repeat")
    run.add_argument("-o", "--output", type=Path, default=Path(DEFAULT_OUTPUT), help=f"results folder (default {DEFAULT_OUTPUT})")
    run.add_argument("--split", help="evaluate this split instead of each task's default")
    run.add_argument("--tasks-dir", action="append", default=[], type=Path, help="extra folder of task files")
    run.add_argument("--overwrite", action="store_true", help="redo cells that already have a result")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-report", action="store_true", help="do not print the table at the end")
    run.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from evalkit.adapters import adapter_for
    from evalkit.defaults import DEFAULT_ENCODERS, DEFAULT_TASKS
    from evalkit.encoders import check_spec
    from evalkit.taskspec import TaskIndex

    specs = list(dict.fromkeys(check_spec(s) for s in (args.encoder or DEFAULT_ENCODERS)))
    index = TaskIndex(args.tasks_dir)
    tasks = [index.get(t) for t in (args.task or DEFAULT_TASKS)]
    for task in tasks:  # validate every task before any model loads
        adapter = adapter_for(task.type)
        adapter.validate(task)
        task.files_for(args.split or task.split)
    from evalkit.execution import plan, run_local
    from evalkit.results import ResultStore

    store = ResultStore(args.output)
    results = run_local(plan(specs, tasks, args.split), store, overwrite=args.overwrite, progress=not args.no_progress)
    failures = [r for r in results if not r.ok]
    for result in failures:
        print(f"evalkit: cell failed: {result.encoder} × {result.task}: {result.error}", file=sys.stderr)
    if not args.no_report:
        from evalkit.commands.report import show

        show(results, args.output)
    print(f"results: {args.output}/ ({len(results) - len(failures)} ok, {len(failures)} failed)", file=sys.stderr)
    return 1 if failures else 0
