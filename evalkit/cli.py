"""The ``evalkit`` command: parses arguments and calls the library, nothing more.

Each command lives in ``evalkit/commands/<name>.py``; heavy imports (torch,
transformers, pandas) happen inside the commands that need them, so
``evalkit --help`` and ``evalkit list`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from evalkit.errors import USAGE_EXIT_CODE, EvalkitError

COMMANDS = ("run", "list", "describe", "report", "gate", "mteb", "bench", "cache")


class Parser(argparse.ArgumentParser):
    """argparse with evalkit's error format: one line, exit 2 (no usage block before it)."""

    def error(self, message: str) -> NoReturn:
        from evalkit.errors import one_line

        sys.stderr.write(f"evalkit: error: {one_line(message)} (see `{self.prog} --help`)\n")
        raise SystemExit(USAGE_EXIT_CODE)


class VersionAction(argparse.Action):
    """``--version``: the version and whether the installed packages are the locked, tested set."""

    def __init__(self, option_strings: Sequence[str], version: str, dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(
            option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, help="show the version and whether the lock is installed"
        )
        self.version = version

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> NoReturn:
        from evalkit.environment import version_line

        print(version_line(self.version))
        raise SystemExit(0)


def build_parser() -> argparse.ArgumentParser:
    from evalkit import __version__

    parser = Parser(prog="evalkit", description="Evaluate and benchmark sentence encoders.")
    parser.add_argument("--version", action=VersionAction, version=__version__)
    sub = parser.add_subparsers(title="commands")
    for name in COMMANDS:
        importlib.import_module(f"evalkit.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return USAGE_EXIT_CODE
    from evalkit.context import RunContext
    from evalkit.signals import SIGINT_EXIT_CODE, Terminated

    try:
        with RunContext(progress=not getattr(args, "no_progress", False)):  # collector, quiet libraries, SIGTERM; restored on exit
            return int(args.func(args))
    except EvalkitError as exc:
        print(f"evalkit: error: {exc.render()}", file=sys.stderr)
        return USAGE_EXIT_CODE
    except ModuleNotFoundError as exc:  # an optional extra imported without evalkit.extras: still one line naming it
        from evalkit.extras import missing_extra

        missing = missing_extra(exc)
        if missing is None:
            raise
        print(f"evalkit: error: {missing.render()}", file=sys.stderr)
        return USAGE_EXIT_CODE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM raised as Terminated
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"evalkit: {what}; finished cells are saved, re-run the same command to resume", file=sys.stderr)
        return exc.exit_code if isinstance(exc, Terminated) else SIGINT_EXIT_CODE
    except BrokenPipeError:  # `evalkit describe X | head`: the reader left; say nothing more, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 128 + 13


def entrypoint() -> None:
    import gc

    code = main()
    gc.freeze()  # the process ends next: spare the interpreter its final walk over every object (0.8 s with torch loaded)
    sys.exit(code)


if __name__ == "__main__":
    entrypoint()
