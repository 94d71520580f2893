"""The paired speed comparison file (``evalkit bench --compare``) and the gate's ``[speed]`` rules.

A comparison is written once per (baseline, candidate) pair into the candidate's results
folder, at its top level (``speed-compare.<digest>.json``), where the result readers, which
read only ``<encoder slug>/<task>.<split>.json``, never look. Every number in it is checked
against the others here (ratio = geometric mean of the per-round ratios, memory growth =
candidate / baseline − 1), so a hand-edited ratio is refused rather than gated.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from evalkit.schemas.base import Finite, Name, Schema, Seed, Text
from evalkit.schemas.bootstrap import Level, NBoot

FORMAT = 1
KIND = "evalkit.speed_comparison"
TOLERANCE = 1e-6  # relative: the stored ratio is rounded to 9 significant digits

PositiveFinite = Annotated[Finite, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]


class RatioInterval(Schema):
    """Candidate / baseline sentences/s: geometric mean over rounds, bootstrap interval over rounds."""

    estimate: PositiveFinite
    low: PositiveFinite
    high: PositiveFinite
    level: Level
    n_boot: NBoot
    seed: Seed
    method: Text = Field(description="how the interval was drawn")

    @model_validator(mode="after")
    def _ordered(self) -> RatioInterval:
        if not (self.low <= self.estimate * (1 + TOLERANCE) and self.estimate <= self.high * (1 + TOLERANCE)):
            raise ValueError("needs low <= estimate <= high")
        return self


class MemoryComparison(Schema):
    """Each side's memory over ``probes`` fresh processes, and the growth of the candidate over the baseline."""

    kind: Name = Field(description="what was measured (e.g. peak RSS growth over load + encode in a fresh process)")
    baseline_bytes: list[Annotated[int, Field(gt=0, le=2**63)]] = Field(min_length=1)  # bounded: ratios stay floats
    candidate_bytes: list[Annotated[int, Field(gt=0, le=2**63)]] = Field(min_length=1)
    growth: Finite = Field(description="median candidate / median baseline − 1")
    growth_low: Finite = Field(description="smallest candidate / largest baseline − 1 (equal to growth for one probe)")
    growth_high: Finite = Field(description="largest candidate / smallest baseline − 1")

    @model_validator(mode="after")
    def _consistent(self) -> MemoryComparison:
        import statistics

        expected = (
            statistics.median(self.candidate_bytes) / statistics.median(self.baseline_bytes) - 1,
            min(self.candidate_bytes) / max(self.baseline_bytes) - 1,
            max(self.candidate_bytes) / min(self.baseline_bytes) - 1,
        )
        stored = (self.growth, self.growth_low, self.growth_high)
        if any(not math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE) for a, b in zip(stored, expected, strict=True)):
            raise ValueError("growth does not follow from the stored bytes of both sides")
        return self


class SpeedComparison(Schema):
    """One ``evalkit bench --compare BASE CAND`` run."""

    kind: Literal["evalkit.speed_comparison"] = "evalkit.speed_comparison"  # KIND
    format: Literal[1] = 1  # FORMAT
    baseline: Name
    candidate: Name
    rounds: Annotated[int, Field(ge=2)]
    order: Text = Field(description="slot order within rounds (ABBA, then BAAB, alternating: A = baseline)")
    baseline_sentences_per_second: list[PositiveFinite]
    candidate_sentences_per_second: list[PositiveFinite]
    ratio: RatioInterval
    memory: MemoryComparison | None = None
    threads: Count = Field(description="torch intra-op thread budget both sides ran at")
    declared_threads: dict[Name, Count] = Field(
        default_factory=dict,
        description="threads a side's own spec asked for (threads=N), overriding the budget inside its forward passes: "
        "a deliberately unequal budget",
    )
    streams: Count = Field(description="CPU streams the budget is split into (evalkit.encoders.streams)")
    devices: dict[Name, Name] = Field(description="the device each side ran on")
    texts: Count
    texts_digest: Name
    warmup: Annotated[int, Field(ge=0)]
    repeats: Count = Field(description="passes over the texts in one timed slot")
    environment: dict[str, Any]
    evalkit_version: Name
    created: Name

    @model_validator(mode="after")
    def _consistent(self) -> SpeedComparison:
        base, cand = self.baseline_sentences_per_second, self.candidate_sentences_per_second
        if len(base) != self.rounds or len(cand) != self.rounds:
            raise ValueError(f"needs one sentences/s value per round on each side ({self.rounds} rounds)")
        geometric = math.exp(sum(math.log(c / b) for b, c in zip(base, cand, strict=True)) / self.rounds)
        if not math.isclose(self.ratio.estimate, geometric, rel_tol=TOLERANCE):
            raise ValueError(f"ratio.estimate {self.ratio.estimate:g} is not the geometric mean {geometric:g} of the per-round ratios")
        return self


Speedup = Annotated[Finite, Field(gt=0)]
Slowdown = Annotated[Finite, Field(ge=0, lt=1)]
Growth = Annotated[Finite, Field(ge=0)]


class SpeedRules(Schema):
    """``[speed]`` of a rules file: each rule fails only when the comparison's interval is wholly on the wrong side."""

    min_speedup: Speedup | None = Field(default=None, description="candidate must be at least this many times as fast (2.0 = twice)")
    max_slowdown: Slowdown | None = Field(default=None, description="candidate may be at most this much slower (0.1 = 10 %)")
    max_memory_growth: Growth | None = Field(default=None, description="candidate may need at most this much more memory (0.25 = 25 %)")

    @property
    def active(self) -> bool:
        """Whether any speed rule is set (then a comparison file must exist)."""
        return any(v is not None for v in (self.min_speedup, self.max_slowdown, self.max_memory_growth))
