"""``evalkit run``: score encoders on tasks and write one result file per cell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from evalkit.defaults import DEFAULT_OUTPUT
from evalkit.errors import EvalkitError


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="score encoders on tasks (no arguments: the embedded pooling comparison)")
    run.add_argument("-e", "--encoder", action="append", default=[], metavar="SPEC", help="BACKEND:MODEL[?k=v&...]; repeat")
    run.add_argument("-t", "--task", action="append", default=[], metavar="TASK", help="task name or .toml file; repeat")
    run.add_argument("-o", "--output", type=Path, default=Path(DEFAULT_OUTPUT), help=f"results folder (default {DEFAULT_OUTPUT})")
    run.add_argument("--split", help="evaluate this split instead of each task's default")
    run.add_argument("--tasks-dir", action="append", default=[], type=Path, help="extra folder of task files")
    again = run.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", dest="overwrite", action="store_false", help="skip cells that have a valid result for this configuration (default)"
    )
    again.add_argument("--overwrite", dest="overwrite", action="store_true", help="redo cells that already have a result")
    run.set_defaults(overwrite=False)
    run.add_argument("--executor", choices=("local", "ray"), default="local", help="where cells run: here (default) or on a Ray cluster")
    run.add_argument("--address", metavar="ADDR", help="Ray cluster to join (e.g. auto or HOST:6379); default: start a local one")
    run.add_argument("--shard-size", type=int, default=20_000, metavar="N", help="Ray: shard encode calls over N texts (0: off)")
    run.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    run.add_argument("--cache-dir", type=Path, help="embedding cache folder (default ~/.cache/evalkit/embeddings)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-report", action="store_true", help="do not print the table at the end")
    run.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from evalkit.defaults import DEFAULT_ENCODERS, DEFAULT_TASKS
    from evalkit.encoders import check_spec, streams
    from evalkit.execution.cells import check_task
    from evalkit.taskspec import TaskIndex

    streams.configured()  # a malformed EVALKIT_CPU_STREAMS is exit 2 before any model loads
    from evalkit.schemas.cli import RunFlags, check_flags

    check_flags(RunFlags, args)  # numeric flags within their ranges, before any model loads
    specs = list(dict.fromkeys(check_spec(s) for s in (args.encoder or DEFAULT_ENCODERS)))
    index = TaskIndex(args.tasks_dir)
    tasks = [index.get(t) for t in (args.task or DEFAULT_TASKS)]
    if args.address and args.executor != "ray":
        raise EvalkitError("--address names a Ray cluster; it needs --executor ray", field="--address")
    for task in tasks:  # validate every task and read its data before any model loads: bad input is exit 2
        check_task(task, args.split or task.split)
    from evalkit.execution import plan, run_local
    from evalkit.execution.lock import ResultsLock
    from evalkit.faults import faultpoint
    from evalkit.results import ResultStore

    store = ResultStore(args.output)
    cells = store.check_identities(plan(specs, tasks, args.split))  # no two cells share a file; none overwrites another's
    with ResultsLock(args.output):
        store.sweep_temporary()  # left by a run that was killed mid-write
        faultpoint("run.locked")
        if args.executor == "ray":
            from evalkit.execution.ray import run_ray

            results = run_ray(
                cells,
                store,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                address=args.address,
                shard_size=args.shard_size,
                cache_dir=None if args.no_cache else str(args.cache_dir or ""),
            )
        else:
            from evalkit.cache import EmbeddingCache

            cache = None if args.no_cache else EmbeddingCache(args.cache_dir)
            results = run_local(cells, store, overwrite=args.overwrite, progress=not args.no_progress, cache=cache)
        failures = [r for r in results if not r.ok]
        for result in failures:
            print(f"evalkit: cell failed: {result.encoder} × {result.task}: {result.error}", file=sys.stderr)
        if not args.no_report:
            from evalkit.commands.report import show

            try:
                show(results, args.output)
            except OSError as exc:  # disk full while writing the leaderboard: the cells are saved
                raise EvalkitError(f"cannot write the report ({exc.strerror or exc})", path=args.output) from None
    print(f"results: {args.output}/ ({len(results) - len(failures)} ok, {len(failures)} failed)", file=sys.stderr)
    return 1 if failures else 0
