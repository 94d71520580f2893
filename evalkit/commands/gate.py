"""``evalkit gate``: fail a change whose results regress against a baseline.

Exit codes: 0 every check passes, 1 a regression, 2 a usage or input error (the
inputs cannot be compared: that is never a pass).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


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
    gate.add_argument("--summary", type=Path, metavar="FILE", help="also write the Markdown summary to FILE (e.g. for a PR comment)")
    gate.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from evalkit.gate import gate_folders
    from evalkit.gate_rules import load_rules
    from evalkit.results.store import atomic_write

    rules = load_rules(args.rules)
    report = gate_folders(args.baseline, args.candidate, rules, args.match)
    text = report.markdown()
    sys.stdout.write(text)
    if args.summary:
        atomic_write(args.summary, text)
    for check in report.checks:
        for failure in check.failures:
            print(f"evalkit: regression: {failure}", file=sys.stderr)
    return report.exit_code
