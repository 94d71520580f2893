"""Gate rules: a small TOML file saying how much each task may drop, and how sure we must be.

    [defaults]                    # every task, unless overridden below
    max_drop = 1.0                # largest allowed drop of the main score, in points (score × 100)
    require_significance = true   # a larger drop fails only if the paired test says it is real
    alpha = 0.05                  # significance level of that test
    max_throughput_drop = 0.5     # candidate may be at most 50 % slower (sentences/s); false = unchecked

    [bootstrap]                   # the paired test
    n_boot = 1000
    seed = 0
    level = 0.95

    [task_type.sts]               # all tasks of a type
    max_drop = 0.5

    [task."STSBenchmark"]         # one task (by name, case-insensitive); wins over its type
    max_drop = 1.0
    allow_data_change = false     # true: compare even if the task's data or protocol changed
    mode = "regression"           # or "non_inferiority" (below); any rule table may set it

    [gate]                        # the gate as a whole
    correction = "none"           # "holm" (family-wise error) | "bh" (Benjamini-Hochberg FDR) | "none"

``mode = "regression"`` (the default) fails a drop beyond ``max_drop`` that the paired
test shows to be real: the burden of proof is on the regression, so a small test set
with a wide interval passes. ``mode = "non_inferiority"`` turns the burden around: the
check fails *unless* the upper confidence bound of the drop (baseline − candidate, in
points, a one-sided ``1 − alpha`` bound from the paired bootstrap) is under ``max_drop``;
``require_significance`` has no effect there, and a check without per-unit outcomes
cannot be shown non-inferior (exit 2).

``correction`` treats every check with a paired (or unpaired) p-value as one family of
``m`` tests. ``holm`` and ``bh`` adjust each p-value (Holm's step-down; Benjamini-Hochberg
through ``scipy.stats.false_discovery_control``) and a drop fails only if its *adjusted*
p is under its rule's ``alpha``; non-inferiority bounds use ``alpha / m`` (Bonferroni,
the confidence-interval counterpart of both, conservative for ``bh``). The default stays
``"none"`` so that existing rule files give the verdicts they gave before; a gate over
many tasks should say ``holm``.

The file is one pydantic model (:class:`evalkit.schemas.rules.RulesFile`). Every
mistake names the file, line and field (``task.STSBenchmark.max_drop``), and a
``[task."X"]`` that names no task of either results folder is refused by the gate
(:func:`evalkit.gate.check_rule_names`), so a typo cannot silently loosen the gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalkit.errors import DataError
from evalkit.schemas.base import did_you_mean, parse, toml_line
from evalkit.schemas.rules import RuleOverrides, RulesFile
from evalkit.schemas.speed import SpeedRules
from evalkit.stats import Bootstrap

RULE_FIELDS = {name: info.description or "" for name, info in RuleOverrides.model_fields.items()}


@dataclass(frozen=True)
class Rule:
    """What one task must satisfy."""

    max_drop: float = 1.0
    require_significance: bool = True
    alpha: float = 0.05
    max_throughput_drop: float | None = None
    allow_data_change: bool = False
    mode: str = "regression"  # or "non_inferiority" (module docstring)
    source: str = "built-in defaults"

    @property
    def non_inferiority(self) -> bool:
        return self.mode == "non_inferiority"


@dataclass(frozen=True)
class Rules:
    """Defaults, per-type and per-task overrides, and the bootstrap settings of the paired test.

    ``by_type`` and ``by_task`` are keyed by lower-case name (task names are
    case-insensitive); ``task_names`` keeps each task key as the file wrote it and
    ``task_lines`` its line, for the gate's "no such task" error.
    """

    defaults: Rule = field(default_factory=Rule)
    by_type: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    by_task: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    path: Path | None = None
    task_names: Mapping[str, str] = field(default_factory=dict)
    task_lines: Mapping[str, int | None] = field(default_factory=dict)
    correction: str = "none"  # "none" | "holm" | "bh": over all checks of one gate run
    speed: SpeedRules = field(default_factory=SpeedRules)  # [speed]: judged on `evalkit bench --compare` files

    def for_task(self, task: str, task_type: str) -> Rule:
        """Task overrides win over type overrides, which win over the defaults."""
        rule = self.defaults
        for scope, overrides in (
            (f"task_type.{task_type}", self.by_type.get(task_type.lower())),
            (f"task.{task}", self.by_task.get(task.lower())),
        ):
            if overrides:
                rule = replace(rule, **overrides, source=scope)
        return rule


def parse_rules(raw: Any, path: Path | None = None, source: str | None = None) -> Rules:
    """Validate a rules file's data (``source``: its text, for line numbers)."""
    from evalkit.adapters import ADAPTERS

    model = parse(RulesFile, raw, path=path, source=source)
    types = ADAPTERS.names()
    by_type: dict[str, Mapping[str, Any]] = {}
    for name, table in model.task_type.items():
        if name not in types:
            where = f"task_type.{name}"
            line = toml_line(source, where) if source else None
            raise DataError(f"unknown task type '{name}'", path=path, line=line, field=where, hint=did_you_mean(name, types))
        by_type[name] = table.set_fields()
    by_task: dict[str, Mapping[str, Any]] = {}
    names: dict[str, str] = {}
    lines: dict[str, int | None] = {}
    for name, table in model.task.items():
        key, where = name.strip().lower(), f"task.{name}"
        line = toml_line(source, where) if source else None
        if key in names:
            raise DataError(
                f"task '{name}' has two rule tables (task names are case-insensitive; the other is '{names[key]}')",
                path=path,
                line=line,
                field=where,
            )
        names[key], lines[key], by_task[key] = name, line, table.set_fields()
    defaults = Rule(**model.defaults.set_fields(), source="defaults" if "defaults" in model.model_fields_set else Rule.source)
    boot = model.bootstrap
    boots = Bootstrap(level=boot.level, n_boot=boot.n_boot, seed=boot.seed)
    return Rules(defaults, by_type, by_task, boots, path, names, lines, correction=model.gate.correction, speed=model.speed)


def load_rules(path: Path | None) -> Rules:
    """Read a rules file (None: the built-in defaults)."""
    from evalkit.data import load_toml

    if path is None:
        return Rules()
    path = Path(path)
    raw, text = load_toml(path, "rules")
    return parse_rules(raw, path, text)
