"""What a gate run produces: a *check* per matched task (scores, intervals, verdict, drill-down) and the report.

Plain data, shared by the judge (:mod:`evalkit.gate.judge`), the drill-down (:mod:`evalkit.gate.drilldown`) and the
renderers in ``evalkit/report/``; nothing here imports the modules that fill it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalkit.gate.rules import Rule, Rules
from evalkit.gate.speed import SpeedCheck
from evalkit.results.schema import CellResult, column_of
from evalkit.stats import (
    Comparison,
    Interval,
)

PASS, FAIL = 0, 1


@dataclass(frozen=True)
class UnitRow:
    """One unit: its id, texts (empty when unavailable), reference (gold score or label), both scores, and the harm."""

    unit: str
    texts: tuple[str, ...]
    reference: str | None
    baseline: float
    candidate: float
    harm: float  # > 0: the candidate is worse on this unit


@dataclass(frozen=True)
class Drilldown:
    why: str  # "failed" or "borderline"
    unit: str  # what a unit is ("pair", "query", ...)
    value: str  # what the two scores are ("cosine", "nDCG@10", ...)
    order: str  # how rows are ranked, in words
    rows: tuple[UnitRow, ...]
    n_units: int
    note: str | None = None  # why texts are missing, or why there are no rows


@dataclass
class Check:
    """One matched task: the two results, their comparison, and what the rule made of it."""

    baseline: CellResult
    candidate: CellResult
    rule: Rule
    baseline_interval: Interval | None = None
    candidate_interval: Interval | None = None
    comparison: Comparison | None = None
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    paired: bool = True  # False: the two sides scored different data (allowed), so the test is unpaired
    deltas: np.ndarray | None = field(default=None, repr=False)  # bootstrap replicates of candidate − baseline
    p_adjusted: float | None = None  # the comparison's p-value after the family's correction (= raw under "none")
    correction: str = "none"
    family: int = 1  # how many checks share the correction (those with a p-value)
    bound: float | None = None  # non-inferiority: upper confidence bound of the drop, in points
    bound_confidence: float | None = None  # ... and its one-sided confidence (1 − alpha, or 1 − alpha/m under a correction)
    drilldown: Drilldown | None = None  # failed and borderline checks: the units that moved most

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def p_raw(self) -> float | None:
        return None if self.comparison is None else self.comparison.p_value

    @property
    def survives_correction(self) -> bool | None:
        """Whether the difference is significant at the rule's alpha after the correction (None: no test)."""
        return None if self.p_adjusted is None else self.p_adjusted < self.rule.alpha

    @property
    def drop_interval(self) -> tuple[float, float] | None:
        """The paired interval of the drop (baseline − candidate), in points, at the bootstrap's level."""
        c = self.comparison
        if c is None or c.low is None or c.high is None:
            return None
        return -100 * c.high, -100 * c.low

    @property
    def borderline(self) -> bool:
        """A passed check a little more data could flip: its drop exceeds the margin but passed as noise or only after
        the correction, or its drop interval straddles the margin."""
        if not self.passed or self.drop is None or not self.candidate.ok:
            return False
        if self.drop > self.rule.max_drop:
            return True
        interval = self.drop_interval
        return interval is not None and interval[0] < self.rule.max_drop < interval[1]

    @property
    def label(self) -> str:
        return column_of(self.baseline)

    @property
    def drop(self) -> float | None:
        """Points lost (main score × 100; negative = improved)."""
        b, c = self.baseline.main_score, self.candidate.main_score
        return None if b is None or c is None else 100 * (b - c)

    @property
    def significant(self) -> bool:
        """A drop the paired test calls real, after the family's correction."""
        c = self.comparison
        p = self.p_adjusted if self.p_adjusted is not None else (None if c is None else c.p_value)
        return bool(c is not None and p is not None and p < self.rule.alpha and c.delta < 0)

    @property
    def throughput(self) -> tuple[float | None, float | None]:
        return sentences_per_second(self.baseline), sentences_per_second(self.candidate)

    @property
    def throughput_drop(self) -> float | None:
        base, cand = self.throughput
        return None if not base or cand is None else 1 - cand / base


@dataclass
class GateReport:
    baseline_root: Path
    candidate_root: Path
    rules: Rules
    pairs: list[tuple[str, str]]
    checks: list[Check]
    speed: list[SpeedCheck] = field(default_factory=list)  # [speed] rules on paired speed comparisons

    @property
    def correction(self) -> str:
        return self.rules.correction

    @property
    def family(self) -> int:
        """How many checks the correction covers (those with a p-value)."""
        return sum(c.p_raw is not None for c in self.checks)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[str]:
        """Every reason the gate fails: quality checks first, then speed."""
        return [f for c in self.checks for f in c.failures] + [f for s in self.speed for f in s.failures]

    @property
    def notes(self) -> list[str]:
        return [n for c in self.checks for n in c.notes] + [n for s in self.speed for n in s.notes]

    @property
    def exit_code(self) -> int:
        return PASS if self.passed else FAIL


def sentences_per_second(result: CellResult) -> float | None:
    value = result.throughput.get("sentences_per_second")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None
