"""``evalkit gate``: fail a change whose results regress against a baseline.

Exit codes: 0 every check passes, 1 a regression, 2 a usage or input error (the
inputs cannot be compared: that is never a pass).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError


def register(sub: Any) -> None:
    gate = sub.add_parser(
        "gate",
        help="compare candidate results with a baseline; exit 1 on a regression",
        description="Compare a candidate results folder with a baseline, task by task: a drop larger than the rule allows "
        "fails when a paired bootstrap test finds it significant. Prints a Markdown summary. "
        "Exit 0: pass, 1: regression, 2: usage or input error.",
    )
    gate.add_argument("--baseline", type=Path, required=True, metavar="DIR", help="baseline results folder")
    gate.add_argument("--candidate", type=Path, required=True, metavar="DIR", help="candidate results folder")
    gate.add_argument("--rules", type=Path, metavar="FILE", help="rules TOML (default: max drop 1 point, significance required)")
    gate.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="BASE_SPEC=CAND_SPEC",
        help="compare these two encoders although their specs differ; repeat",
    )
    gate.add_argument(
        "--allow-data-change",
        action="store_true",
        help="compare tasks whose data or protocol differ between the two sides (an unpaired test); without it they are exit 2",
    )
    gate.add_argument("--summary", type=Path, metavar="FILE", help="also write the Markdown summary to FILE (e.g. for a PR comment)")
    gate.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a self-contained HTML gate report (checks and drill-downs) to FILE"
    )
    gate.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from evalkit.gate.judge import gate_folders
    from evalkit.gate.rules import load_rules
    from evalkit.report.gate_summary import render_gate
    from evalkit.results.store import atomic_write

    outputs = [(flag, path) for flag, path in (("--summary", args.summary), ("--html", args.html)) if path]
    for flag, path in outputs:
        check_summary_path(path, [args.baseline, args.candidate], flag)
    if args.summary and args.html and args.summary.resolve() == args.html.resolve():
        raise EvalkitError("--summary and --html name the same file", path=args.html, field="--html")
    rules = load_rules(args.rules)
    report = gate_folders(args.baseline, args.candidate, rules, args.match, allow_data_change=args.allow_data_change)
    text = render_gate(report)
    sys.stdout.write(text)
    from evalkit.report.formats import plain

    for failure in report.failures:
        print(f"evalkit: regression: {plain(failure)}", file=sys.stderr)
    for flag, path in outputs:
        if flag == "--html":
            from evalkit.report.gate_html import render_gate_html

            content = render_gate_html(report)
        else:
            content = text
        try:
            atomic_write(path, content)
        except OSError as exc:  # the gate's verdict is printed above; an unwritten summary is still never a pass
            raise EvalkitError(f"cannot write the {flag[2:]} report ({exc.strerror or exc})", path=path, field=flag) from None
    return report.exit_code


def check_summary_path(path: Path, folders: list[Path], flag: str = "--summary") -> None:
    """Refuse a ``--summary`` target that cannot be written, before any work: exit 2, never read as a regression (1).

    It must be a regular file or not exist yet, must not be a result file of the folders
    being compared, and its folder must accept a new file (probed with a temporary file,
    so a read-only or full file system is caught too).
    """
    import tempfile

    if (path.exists() or path.is_symlink()) and not path.is_file():
        raise EvalkitError(f"is not a regular file; {flag} writes a report to a file", path=path, field=flag)
    resolved = path.resolve()
    for folder in folders:
        if resolved.suffix == ".json" and resolved.is_relative_to(folder.resolve()):
            raise EvalkitError("would overwrite a result file of the folders being compared", path=path, field=flag)
    parent = resolved.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise EvalkitError(f"cannot write here: {parent} is not a folder", path=path, field=flag)
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise EvalkitError(f"cannot write here ({exc.strerror or exc})", path=path, field=flag) from None
