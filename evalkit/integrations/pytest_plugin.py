"""pytest plugin: gate model changes inside a team's own test suite.

Two ways in (the plugin is registered through the ``pytest11`` entry point):

* on the command line, ``pytest --evalkit-gate BASELINE_DIR --evalkit-candidate DIR
  [--evalkit-rules FILE] [--evalkit-match BASE=CAND]`` adds one test item,
  ``evalkit-gate``, that fails with the gate's Markdown summary on a regression;
* in a test, the ``evalkit_gate`` fixture: ``evalkit_gate(baseline, candidate,
  rules=None, match=())`` returns the GateReport and fails the test on a regression
  (typically after the test has run a small suite into ``tmp_path``).

Inputs that cannot be compared raise ``EvalkitError``: an error, never a pass.
Nothing heavy is imported until a gate actually runs, so the plugin costs other
test sessions nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("evalkit", "evalkit regression gate")
    group.addoption("--evalkit-gate", metavar="BASELINE_DIR", help="gate --evalkit-candidate against this baseline results folder")
    group.addoption("--evalkit-candidate", metavar="DIR", help="candidate results folder for --evalkit-gate")
    group.addoption("--evalkit-rules", metavar="FILE", help="gate rules TOML")
    group.addoption("--evalkit-match", action="append", default=[], metavar="BASE=CAND", help="pair two encoder specs; repeat")


def run_gate(baseline: Path | str, candidate: Path | str, rules: Path | str | None = None, match: Sequence[str] = ()) -> Any:
    """The gate's report; ``pytest.fail`` with its Markdown summary when a check regresses."""
    from evalkit.gate.judge import gate_folders
    from evalkit.gate.rules import load_rules
    from evalkit.report.gate_summary import render_gate

    report = gate_folders(Path(baseline), Path(candidate), load_rules(Path(rules) if rules else None), match)
    if not report.passed:
        pytest.fail(render_gate(report), pytrace=False)
    return report


@pytest.fixture
def evalkit_gate() -> Callable[..., Any]:
    """``evalkit_gate(baseline, candidate, rules=None, match=())``: fail this test on a regression."""
    return run_gate


class GateItem(pytest.Item):
    """The ``evalkit-gate`` item that ``--evalkit-gate`` adds to the session."""

    def runtest(self) -> None:
        opt = self.config.getoption
        if not opt("evalkit_candidate"):
            raise pytest.UsageError("--evalkit-gate needs --evalkit-candidate DIR")
        from evalkit.report.gate_summary import render_gate

        report = run_gate(opt("evalkit_gate"), opt("evalkit_candidate"), opt("evalkit_rules"), opt("evalkit_match"))
        self.user_properties.append(("evalkit_gate", render_gate(report)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from evalkit.errors import EvalkitError

        if isinstance(excinfo.value, EvalkitError):
            return f"evalkit gate: input error: {excinfo.value.render()}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return Path(str(self.config.getoption("evalkit_gate"))), 0, "evalkit gate"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("evalkit_gate"):
        items.append(GateItem.from_parent(session, name="evalkit-gate", nodeid="evalkit-gate"))
