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
    run.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="quick subset: at most N pairs / examples / queries / documents / texts per task, seeded; results marked as subsets",
    )
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
    """The CLI face of :func:`evalkit.api.evaluate`: same validation, same executor, plus the printed table."""
    from evalkit.api import execute, prepare
    from evalkit.defaults import DEFAULT_ENCODERS, DEFAULT_TASKS
    from evalkit.results.store import kept_note
    from evalkit.schemas.cli import RunFlags, check_flags

    check_flags(RunFlags, args)  # numeric flags within their ranges, before any model loads
    if args.address and args.executor != "ray":
        raise EvalkitError("--address names a Ray cluster; it needs --executor ray", field="--address")
    plan = prepare(
        args.encoder or DEFAULT_ENCODERS,
        args.task or DEFAULT_TASKS,
        split=args.split,
        tasks_dir=args.tasks_dir,
        cache=not args.no_cache,
        executor=args.executor,
        limit=args.limit,
    )
    results = execute(
        plan,
        output=args.output,
        cache=not args.no_cache,
        cache_dir=args.cache_dir,
        executor=args.executor,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        address=args.address,
        shard_size=args.shard_size,
    )
    for result in results.failed:
        print(f"evalkit: cell failed: {result.encoder} × {result.task}: {result.error}", file=sys.stderr)
        note = kept_note(result)
        if note:  # the failed rerun did not replace the good result (ResultStore.commit)
            print(f"evalkit: {result.encoder} × {result.task}: {note}", file=sys.stderr)
    if not args.no_report:
        from evalkit.commands.report import show

        try:
            show(list(results.cells), args.output)
        except OSError as exc:  # disk full while writing the leaderboard: the cells are saved
            raise EvalkitError(f"cannot write the report ({exc.strerror or exc})", path=args.output) from None
    kept = f"; {len(results.kept)} earlier result(s) kept, not replaced by a failed rerun" if results.kept else ""
    print(f"results: {args.output}/ ({len(results.ok)} ok, {len(results.failed)} failed{kept})", file=sys.stderr)
    return 1 if results.failed else 0
