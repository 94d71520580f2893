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

Every mistake names the file and the field (``task.STSBenchmark.max_drop``), so a typo
cannot silently loosen the gate.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalkit.adapters import ADAPTERS
from evalkit.data import read_toml
from evalkit.errors import DataError
from evalkit.stats import Bootstrap

RULE_FIELDS = {
    "max_drop": "largest allowed drop of the main score, in points (main score × 100)",
    "require_significance": "fail a drop only if the paired bootstrap test finds it significant",
    "alpha": "significance level of the paired test",
    "max_throughput_drop": "largest allowed relative drop of sentences/s (0.5 = half as fast); false = unchecked",
}
BOOTSTRAP_FIELDS = {"n_boot": "bootstrap resamples", "seed": "resampling seed", "level": "confidence level of intervals"}
TOP_LEVEL = {"defaults", "bootstrap", "task_type", "task"}


@dataclass(frozen=True)
class Rule:
    """What one task must satisfy."""

    max_drop: float = 1.0
    require_significance: bool = True
    alpha: float = 0.05
    max_throughput_drop: float | None = None
    source: str = "built-in defaults"


@dataclass(frozen=True)
class Rules:
    """Defaults, per-type and per-task overrides, and the bootstrap settings of the paired test."""

    defaults: Rule = field(default_factory=Rule)
    by_type: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    by_task: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    path: Path | None = None

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


def _number(value: Any, where: str, path: Path | None, *, low: float, high: float | None = None, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"must be a number, got {value!r}", path=path, field=where)
    upper_ok = high is None or (value < high if high_open else value <= high)
    if value < low or not upper_ok:
        bound = "" if high is None else (f" and below {high:g}" if high_open else f" and at most {high:g}")
        raise DataError(f"must be at least {low:g}{bound}, got {value!r}", path=path, field=where)
    return float(value)


def _unknown(key: str, allowed: Mapping[str, str] | set[str], where: str, path: Path | None) -> DataError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(sorted(allowed))
    return DataError("unknown rule field", path=path, field=where, hint=hint)


def parse_rule(table: Any, where: str, path: Path | None) -> dict[str, Any]:
    """Validate one rule table; returns only the fields it sets (so overrides layer)."""
    if not isinstance(table, dict):
        raise DataError("must be a table", path=path, field=where)
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{where}.{key}"
        if key not in RULE_FIELDS:
            raise _unknown(key, RULE_FIELDS, name, path)
        if key == "max_drop":
            out[key] = _number(value, name, path, low=0)
        elif key == "require_significance":
            if not isinstance(value, bool):
                raise DataError(f"must be true or false, got {value!r}", path=path, field=name)
            out[key] = value
        elif key == "alpha":
            out[key] = _number(value, name, path, low=0, high=0.5)
            if out[key] == 0:
                raise DataError("must be above 0", path=path, field=name)
        elif key == "max_throughput_drop":
            if value is False:
                out[key] = None
            else:
                out[key] = _number(value, name, path, low=0, high=1, high_open=True)
    return out


def parse_rules(raw: Mapping[str, Any], path: Path | None = None) -> Rules:
    for key in raw:
        if key not in TOP_LEVEL:
            raise _unknown(key, TOP_LEVEL, key, path)
    defaults = Rule(**parse_rule(raw.get("defaults", {}), "defaults", path), source="defaults" if "defaults" in raw else Rule.source)
    boot_raw = raw.get("bootstrap", {})
    if not isinstance(boot_raw, dict):
        raise DataError("must be a table", path=path, field="bootstrap")
    boot: dict[str, Any] = {}
    for key, value in boot_raw.items():
        name = f"bootstrap.{key}"
        if key not in BOOTSTRAP_FIELDS:
            raise _unknown(key, BOOTSTRAP_FIELDS, name, path)
        if key == "level":
            boot[key] = _number(value, name, path, low=0.5, high=1, high_open=True)
        else:
            if isinstance(value, bool) or not isinstance(value, int):
                raise DataError(f"must be an integer, got {value!r}", path=path, field=name)
            if key == "n_boot" and not 100 <= value <= 100_000:
                raise DataError(f"must be between 100 and 100000, got {value}", path=path, field=name)
            boot[key] = value
    scoped: dict[str, dict[str, Mapping[str, Any]]] = {"task_type": {}, "task": {}}
    for scope in scoped:
        tables = raw.get(scope, {})
        if not isinstance(tables, dict):
            raise DataError("must be a table of tables", path=path, field=scope)
        for name, table in tables.items():
            if scope == "task_type" and name not in ADAPTERS:
                raise DataError(f"unknown task type '{name}'; known: {', '.join(ADAPTERS.names())}", path=path, field=f"{scope}.{name}")
            scoped[scope][name.lower()] = parse_rule(table, f"{scope}.{name}", path)
    return Rules(defaults, scoped["task_type"], scoped["task"], Bootstrap(**boot), path)


def load_rules(path: Path | None) -> Rules:
    """Read a rules file (None: the built-in defaults)."""
    if path is None:
        return Rules()
    path = Path(path)
    raw = read_toml(path, "rules")
    return parse_rules(raw, path)
