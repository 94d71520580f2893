"""The gate's ``[speed]`` rules, judged on paired speed comparisons (``evalkit bench --compare``).

    [speed]
    min_speedup = 2.0         # candidate at least 2× the baseline's sentences/s
    max_slowdown = 0.1        # candidate at most 10 % slower
    max_memory_growth = 0.25  # candidate at most 25 % more memory

Each rule fails only when the comparison's interval lies wholly on the wrong side of
its threshold (a speedup whose upper bound is under ``min_speedup``; a ratio whose upper
bound is under ``1 − max_slowdown``; a memory growth whose lower bound is over
``max_memory_growth``), so noise alone never fails a change, as with the quality checks.
A speed rule with no comparison file for a gated pair is an input error (exit 2), never
a pass, and so is a comparison that is malformed, edited, or of other specs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from evalkit.errors import DataError, EvalkitError
from evalkit.schemas.speed import SpeedComparison, SpeedRules
from evalkit.spec import EncoderSpec


class HasSpeedRules(Protocol):
    """A rules object carrying ``[speed]`` (``RulesFile``, or ``Rules`` once it keeps the table)."""

    @property
    def speed(self) -> SpeedRules: ...


@dataclass(frozen=True)
class SpeedCheck:
    """One gated pair's speed verdict."""

    baseline: str
    candidate: str
    path: Path
    comparison: SpeedComparison
    rules: SpeedRules
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def description(self) -> str:
        """``onnx:m?quantize=int8 vs hf:m: 2.61× [2.40, 2.83] (8 rounds), rule ≥ 2.0×: pass``."""
        r = self.comparison.ratio
        text = f"{self.candidate} vs {self.baseline}: {r.estimate:.2f}× [{r.low:.2f}, {r.high:.2f}] ({self.comparison.rounds} rounds)"
        rules = []
        if self.rules.min_speedup is not None:
            rules.append(f"≥ {self.rules.min_speedup:g}×")
        if self.rules.max_slowdown is not None:
            rules.append(f"≥ {1 - self.rules.max_slowdown:g}× (max slowdown {100 * self.rules.max_slowdown:g} %)")
        memory = self.comparison.memory
        if memory is not None:
            text += f", memory {100 * memory.growth:+.1f} %"
        if self.rules.max_memory_growth is not None:
            rules.append(f"memory ≤ {100 * self.rules.max_memory_growth:+g} %")
        verdict = "pass" if self.passed else "FAIL"
        return f"{text}, rule {', '.join(rules)}: {verdict}" if rules else f"{text}: {verdict}"


def judge(ratio: tuple[float, float], memory: tuple[float, float] | None, rules: SpeedRules) -> tuple[list[str], list[str]]:
    """Failures and notes for a ratio interval ``(low, high)`` and a memory growth range ``(low, high)``.

    A rule fails only when the whole interval is on its wrong side; an interval that
    straddles the threshold passes with a note saying the data cannot tell.
    """
    failures: list[str] = []
    notes: list[str] = []
    low, high = ratio
    floors = []
    if rules.min_speedup is not None:
        floors.append((rules.min_speedup, f"min_speedup = {rules.min_speedup:g}"))
    if rules.max_slowdown is not None:
        floors.append((1 - rules.max_slowdown, f"max_slowdown = {rules.max_slowdown:g}"))
    for floor, name in floors:
        if high < floor:
            failures.append(f"speed ratio [{low:.3g}, {high:.3g}] is wholly below {floor:g} ({name})")
        elif low < floor:
            notes.append(f"speed ratio [{low:.3g}, {high:.3g}] straddles {floor:g} ({name}): not shown to fail")
    if rules.max_memory_growth is not None and memory is not None:
        m_low, m_high = memory
        if m_low > rules.max_memory_growth:
            failures.append(f"memory growth [{m_low:+.3g}, {m_high:+.3g}] is wholly above {rules.max_memory_growth:g} (max_memory_growth)")
        elif m_high > rules.max_memory_growth:
            notes.append(f"memory growth [{m_low:+.3g}, {m_high:+.3g}] straddles {rules.max_memory_growth:g}: not shown to fail")
    return failures, notes


def speed_rules_of(rules: SpeedRules | HasSpeedRules) -> SpeedRules:
    return rules if isinstance(rules, SpeedRules) else rules.speed


def speed_checks(
    rules: SpeedRules | HasSpeedRules, candidate_root: Path, pairs: Sequence[tuple[str, str]] | None = None
) -> list[SpeedCheck]:
    """One check per gated pair (``(baseline spec, candidate spec)``, as ``gate.pair_encoders`` gives).

    No speed rule set: no checks and no files read. ``pairs`` None: every comparison file
    in ``candidate_root`` is judged (at least one must exist). Any missing, malformed or
    mismatched comparison is one DataError naming the file and the field.
    """
    from evalkit.speed import comparison_files, file_name, read_comparison

    speed = speed_rules_of(rules)
    if not speed.active:
        return []
    root = Path(candidate_root)
    found = comparison_files(root) if root.is_dir() else []
    hint = "run `evalkit bench --compare BASE_SPEC CAND_SPEC -o CANDIDATE_FOLDER`, or remove [speed] from the rules"
    if not found:
        raise DataError("the rules check speed but the candidate folder holds no speed comparison", path=root, field="speed", hint=hint)
    if pairs is None:
        chosen = [(path, read_comparison(path)) for path in found]
    else:
        chosen = []
        for base, cand in pairs:
            base, cand = _canonical(base), _canonical(cand)
            path = root / file_name(base, cand)
            if not path.exists():
                other = read_comparison(found[0])
                which = "baseline" if other.baseline != base else "candidate"
                raise DataError(
                    f"no speed comparison of {cand} against {base}; this one compares {other.candidate} against {other.baseline}",
                    path=found[0],
                    field=which,
                    hint=hint,
                )
            comparison = read_comparison(path)
            for name, want in (("baseline", base), ("candidate", cand)):
                if _canonical(getattr(comparison, name)) != want:
                    raise DataError(
                        f"speed comparison names {name} {getattr(comparison, name)}, not the gated {want}",
                        path=path,
                        field=name,
                        hint="the file was renamed or edited; re-run evalkit bench --compare",
                    )
            chosen.append((path, comparison))
    checks = []
    for path, comparison in chosen:
        if speed.max_memory_growth is not None and comparison.memory is None:
            raise DataError(
                "the rules check max_memory_growth but this speed comparison measured no memory",
                path=path,
                field="memory",
                hint="re-run evalkit bench --compare with --memory-probes 1 or more",
            )
        memory = comparison.memory
        failures, notes = judge(
            (comparison.ratio.low, comparison.ratio.high), None if memory is None else (memory.growth_low, memory.growth_high), speed
        )
        if memory is not None:
            notes.append(f"memory: {memory.kind}")
        who = f"speed of {comparison.candidate} vs {comparison.baseline}"
        named = tuple(f"{who}: {text}" for text in failures)
        checks.append(SpeedCheck(comparison.baseline, comparison.candidate, path, comparison, speed, named, tuple(notes)))
    return checks


def _canonical(spec: str) -> str:
    try:
        return str(EncoderSpec.parse(spec))
    except EvalkitError:  # a spec evalkit cannot parse is compared as written
        return spec.strip()
