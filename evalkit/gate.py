"""The regression gate: does a candidate's result store fall short of a baseline's?

Cells are matched by encoder spec and task; each matched task is a *check*. A check
fails when the main score drops by more than the rule allows **and**, unless the
rule says otherwise, a paired bootstrap test on the task's units finds the drop
significant, so a real regression fails and a change of batch size does not. A
throughput rule compares sentences per second.

Only result files are read, never models. Anything that would make the comparison
meaningless is a ``DataError`` (exit code 2), never a pass: a malformed, tampered
(main score disagreeing with its own per-unit outcomes) or unknown-version file,
different tasks on the two sides, a rule naming a task that neither side has, a
task whose data or protocol differ (``task_hash``/``data_hash``, unless
``allow_data_change`` says so; the test is then unpaired), one side with per-unit
outcomes and the other without (its score could not be checked), a baseline cell
that failed, a significance test without per-unit outcomes. Result files written before
``data_hash`` existed still compare, with a note that the data identity could not
be verified. A subset result (``--limit``) compares only with the same subset: against
a full run or another limit the gate stops with exit 2 (:func:`subset_mismatch`).

A gate run is three passes: every check is *measured* (intervals, the paired
comparison and its bootstrap differences), then the family's p-values are adjusted
(``[gate] correction``, :mod:`evalkit.gate_correction`), then every check is *judged*
by its rule (``mode = "regression"`` or ``"non_inferiority"``, :mod:`evalkit.gate_rules`).
Failed and borderline checks then get a drill-down of the units that moved most
(:mod:`evalkit.gate_drilldown`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evalkit.errors import DataError, EvalkitError
from evalkit.gate_correction import adjust, bound_alpha
from evalkit.gate_rules import Rule, Rules
from evalkit.gate_speed import SpeedCheck, speed_checks
from evalkit.reading import interval, replicates
from evalkit.results.schema import CellResult, column_of
from evalkit.results.store import limit_of
from evalkit.schemas.base import did_you_mean
from evalkit.spec import EncoderSpec
from evalkit.stats import (
    Bootstrap,
    Comparison,
    Interval,
    compare,
    format_p,
    percentile_interval,
    stream_key,
)

if TYPE_CHECKING:
    from evalkit.gate_drilldown import Drilldown

PASS, FAIL = 0, 1
ENVIRONMENT_KEYS = ("cpu", "cpu_count", "gpu", "platform")


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


def canonical(spec: str) -> str:
    try:
        return str(EncoderSpec.parse(spec))
    except EvalkitError:
        return spec.strip()


def split_match(text: str, baseline: Sequence[str], candidate: Sequence[str]) -> tuple[str, str]:
    """``BASE=CAND``: specs contain '=' themselves, so take the split that names an encoder on each side."""
    options = []
    for i, char in enumerate(text):
        if char == "=":
            left, right = canonical(text[:i]), canonical(text[i + 1 :])
            if left in baseline and right in candidate:
                options.append((left, right))
    if len(options) == 1:
        return options[0]
    raise EvalkitError(
        f"--match {text!r} does not name one baseline encoder and one candidate encoder",
        field="--match",
        hint=f"baseline has: {', '.join(baseline)}; candidate has: {', '.join(candidate)}",
    )


def pair_encoders(baseline: Sequence[CellResult], candidate: Sequence[CellResult], match: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Which baseline encoder each candidate encoder is judged against.

    ``--match`` pairs first; a single encoder on each side pairs with the other
    whatever its spec; everything else pairs by identical spec, and anything left
    unpaired on either side is an error (a silently ungated encoder is a pass by omission).
    """
    base = list(dict.fromkeys(r.encoder for r in baseline))
    cand = list(dict.fromkeys(r.encoder for r in candidate))
    pairs = [split_match(m, base, cand) for m in match]
    if not pairs and len(base) == 1 and len(cand) == 1:
        return [(base[0], cand[0])]
    left_b = [b for b in base if b not in {p[0] for p in pairs}]
    left_c = [c for c in cand if c not in {p[1] for p in pairs}]
    pairs += [(b, b) for b in left_b if b in left_c]
    unpaired_b = [b for b in left_b if b not in left_c]
    unpaired_c = [c for c in left_c if c not in left_b]
    if unpaired_b or unpaired_c:
        what = []
        if unpaired_b:
            what.append("baseline encoder(s) with no candidate: " + ", ".join(unpaired_b))
        if unpaired_c:
            what.append("candidate encoder(s) with no baseline: " + ", ".join(unpaired_c))
        raise DataError("; ".join(what), hint="compare different specs with --match BASE_SPEC=CAND_SPEC")
    return pairs


TaskKey = tuple[str, str, int | None]
"""(task, split, subset limit or None): a full run and a --limit run of one task are different checks."""


def cells_by_task(results: Sequence[CellResult], encoder: str) -> dict[TaskKey, CellResult]:
    return {(r.task, r.split, limit_of(r)): r for r in results if r.encoder == encoder}


def kind(limit: int | None) -> str:
    return "the full task" if limit is None else f"a subset (--limit {limit})"


def subset_mismatch(b_cells: Mapping[TaskKey, CellResult], c_cells: Mapping[TaskKey, CellResult]) -> DataError | None:
    """The error for a task the two sides scored on different subsets (one full, one --limit, or two limits), if any."""
    for side, mine, theirs in (("baseline", b_cells, c_cells), ("candidate", c_cells, b_cells)):
        for task, split, limit in sorted(set(mine) - set(theirs), key=str):
            other = [k[2] for k in theirs if k[:2] == (task, split) and k not in mine]
            if other:
                base, cand = (limit, other[0]) if side == "baseline" else (other[0], limit)
                return DataError(
                    f"{task}/{split}: cannot compare {kind(base)} in the baseline with {kind(cand)} in the candidate",
                    hint="a subset score is a smoke test; gate full runs against full runs, or both sides with the same --limit",
                )
    return None


def check_rule_names(rules: Rules, baseline: Sequence[CellResult], candidate: Sequence[CellResult]) -> None:
    """Refuse a ``[task."X"]`` rule for a task neither folder holds: a misspelt rule would silently not apply."""
    tasks = sorted({r.task for r in [*baseline, *candidate]}, key=str.lower)
    known = {t.lower() for t in tasks}
    for key, written in rules.task_names.items():
        if key not in known:
            raise DataError(
                f"rule names task '{written}', which is in neither the baseline nor the candidate",
                path=rules.path,
                line=rules.task_lines.get(key),
                field=f"task.{written}",
                hint=did_you_mean(written, tasks),
            )


def same_data(b: CellResult, c: CellResult) -> bool | None:
    """Whether both cells scored the same task protocol and data (None: a side predates the hashes)."""
    if None in (b.task_hash, b.data_hash, c.task_hash, c.data_hash):
        return None
    return b.task_hash == c.task_hash and b.data_hash == c.data_hash


def data_differs(b: CellResult, c: CellResult) -> bool:
    """The two cells certainly scored different data or protocols (hashes differ, or the unit counts do)."""
    return same_data(b, c) is False or bool(c.ok and b.n_units and c.n_units and b.n_units != c.n_units)


def check_comparable(b: CellResult, c: CellResult, rule: Rule | None = None, allow_data_change: bool = False) -> list[str]:
    """Refuse to compare cells that did not score the same thing; returns notes about what could not be verified."""
    where = f"{b.task}/{b.split}"
    allowed = allow_data_change or (rule is not None and rule.allow_data_change)
    notes: list[str] = []
    if b.task_type != c.task_type:
        raise DataError(f"{where}: task type differs (baseline {b.task_type}, candidate {c.task_type})")
    if not b.ok:
        raise DataError(f"{where}: the baseline cell for {b.encoder} failed ({b.error}); re-run the baseline")
    if b.main_score is None:
        raise DataError(f"{where}: the baseline main score of {b.encoder} is undefined; it cannot serve as a baseline")
    if c.ok and b.main_metric != c.main_metric:
        raise DataError(f"{where}: main metric differs (baseline {b.main_metric}, candidate {c.main_metric})")
    if limit_of(b) != limit_of(c):
        raise DataError(f"{where}: cannot compare {kind(limit_of(b))} in the baseline with {kind(limit_of(c))} in the candidate")
    if c.ok and bool(b.units) != bool(c.units):  # stripping units would also strip the check of a forged main score
        side = "candidate" if b.units else "baseline"
        raise DataError(
            f"{where}: the {side} result of {(c if b.units else b).encoder} has no per-unit outcomes, so its main score can be "
            "neither checked against them nor tested for significance",
            hint=f"re-run the {side} with evalkit",
        )
    same = same_data(b, c)
    sizes_differ = bool(c.ok and b.n_units and c.n_units and b.n_units != c.n_units)
    if data_differs(b, c):
        what = []
        if b.task_hash != c.task_hash and same is False:
            what.append("protocol (task type, split, settings or seeds)")
        if b.data_hash != c.data_hash and same is False:
            what.append("data files")
        if sizes_differ:
            what.append(f"number of units ({b.n_units} vs {c.n_units})")
        if not allowed:
            raise DataError(
                f"{where}: the two sides scored different data: their {' and '.join(what)} differ",
                hint=f"re-run both sides on the same task files, or allow it with --allow-data-change or allow_data_change = true "
                f"for task '{b.task}' in the rules (the test is then unpaired)",
            )
        notes.append(f"{where}: {' and '.join(what)} differ between the two sides (allowed); the bootstrap test is unpaired")
    elif same is None:
        side = "baseline" if None in (b.task_hash, b.data_hash) else "candidate"
        notes.append(f"{where}: cannot verify that both sides used the same data and protocol (the {side} result predates data_hash)")
    return notes


def evaluate_check(check: Check, rules: Rules) -> None:
    """Measure one check and judge it alone (a family of one: no correction)."""
    measure_check(check, rules)
    judge_check(check, rules)


def measure_check(check: Check, rules: Rules) -> None:
    """Fill in intervals, the paired comparison and its bootstrap differences (no verdict yet)."""
    b, c = check.baseline, check.candidate
    assert b.main_score is not None  # check_comparable refused it otherwise
    if not c.ok or c.main_score is None:
        return
    config = rules.bootstrap
    reps_b = replicates(b, config)
    # different data on the two sides (allowed): resample them independently, an unpaired test
    stream = None if check.paired else stream_key(c.task, c.split) ^ 0x5EED
    reps_c = replicates(c, config, stream=stream)
    if reps_b is not None and reps_c is not None:
        check.comparison = compare(reps_b, reps_c, b.main_score, c.main_score, config.level)
        check.deltas = reps_c - reps_b
        check.baseline_interval = _interval(b, reps_b, config)
        check.candidate_interval = _interval(c, reps_c, config)
    else:
        check.baseline_interval, check.candidate_interval = interval(b, config), interval(c, config)
    check.p_adjusted = check.p_raw


def correct_family(checks: Sequence[Check], method: str) -> None:
    """Adjust the p-values of every check that has one, as one family (``method``: none, holm, bh)."""
    tested = [c for c in checks if c.p_raw is not None]
    adjusted = adjust([c.p_raw for c in tested if c.p_raw is not None], method)
    for check in checks:
        check.correction, check.family = method, len(tested)
    for check, p in zip(tested, adjusted, strict=True):
        check.p_adjusted = p


def judge_check(check: Check, rules: Rules) -> None:
    """Apply the rule to a measured check (after :func:`correct_family`)."""
    b, c, rule = check.baseline, check.candidate, check.rule
    assert b.main_score is not None
    where = f"{check.label} ({c.encoder})"
    if not c.ok:
        check.failures.append(f"{where}: the candidate cell failed: {c.error}")
        return
    if c.main_score is None:
        check.failures.append(f"{where}: the candidate's main score is undefined")
        return
    drop = check.drop or 0.0
    test = "paired" if check.paired else "unpaired"
    if rule.non_inferiority:
        _judge_non_inferiority(check, where, drop, test)
    elif drop > rule.max_drop:
        if not rule.require_significance:
            check.failures.append(
                f"{where}: main score dropped by {drop:.2f} points ({_pts(b.main_score)} → {_pts(c.main_score)}), "
                f"rule allows {rule.max_drop:g}"
            )
        elif check.comparison is None or check.comparison.p_value is None:
            side = "baseline" if not b.units else "candidate"
            why = f"the {test} test is undefined on these units" if check.comparison else f"the {side} result has no per-unit outcomes"
            raise DataError(
                f"{where}: the drop of {drop:.2f} points needs a significance test, but {why}",
                hint=f"set require_significance = false for task '{b.task}' in the rules, or re-run with evalkit",
            )
        elif check.significant:
            check.failures.append(
                f"{where}: main score dropped by {drop:.2f} points ({_pts(b.main_score)} → {_pts(c.main_score)}), "
                f"rule allows {rule.max_drop:g}; significant ({test} bootstrap p {_p(check.comparison)}{_adjusted(check)})"
            )
        elif check.correction != "none" and check.p_raw is not None and check.p_raw < rule.alpha:
            check.notes.append(
                f"{where}: drop of {drop:.2f} points is significant alone ({test} bootstrap p {_p(check.comparison)}) but not "
                f"after the correction{_adjusted(check)}"
            )
        else:
            check.notes.append(f"{where}: drop of {drop:.2f} points is within noise ({test} bootstrap p {_p(check.comparison)})")
    if rule.max_throughput_drop is not None:
        base, cand = check.throughput
        if base is None or cand is None:
            side = "baseline" if base is None else "candidate"
            raise DataError(
                f"{where}: the rules check throughput but the {side} result has no sentences/s",
                hint=f"re-run it with --no-cache, or set max_throughput_drop = false for task '{b.task}'",
            )
        rel = check.throughput_drop or 0.0
        if rel > rule.max_throughput_drop:
            check.failures.append(
                f"{where}: throughput dropped by {100 * rel:.0f} % ({base:,.0f} → {cand:,.0f} sentences/s), "
                f"allowed {100 * rule.max_throughput_drop:.0f} %"
            )
        differs = [k for k in ENVIRONMENT_KEYS if b.environment.get(k) != c.environment.get(k)]
        if differs:
            check.notes.append(f"{where}: throughput measured on different machines ({', '.join(differs)} differ)")


def _judge_non_inferiority(check: Check, where: str, drop: float, test: str) -> None:
    """Fail unless the drop's one-sided upper confidence bound is under the margin (``max_drop``)."""
    rule, b = check.rule, check.baseline
    alpha = bound_alpha(rule.alpha, check.correction, check.family)
    low = None
    if check.deltas is not None:
        low, _, _ = percentile_interval(check.deltas, 1 - 2 * alpha)  # its lower tail is the one-sided (1 − alpha) bound
    if low is None:
        why = "the {test} bootstrap is undefined on these units" if check.deltas is not None else "a result has no per-unit outcomes"
        raise DataError(
            f"{where}: non-inferiority cannot be shown: {why.format(test=test)}",
            hint=f"re-run both sides with evalkit, or set mode = \"regression\" for task '{b.task}' in the rules",
        )
    check.bound, check.bound_confidence = -100 * low, 1 - alpha
    conf = f"{100 * (1 - alpha):.4g} %"
    family = f", {check.correction} over {check.family} checks" if check.correction != "none" and check.family > 1 else ""
    if check.bound >= rule.max_drop:
        check.failures.append(
            f"{where}: non-inferiority not shown: the drop is {drop:.2f} points ({_pts(b.main_score)} → "
            f"{_pts(check.candidate.main_score)}) but its upper {conf} bound ({test} bootstrap{family}) is {check.bound:.2f}, "
            f"not under the margin {rule.max_drop:g}"
        )
    else:
        check.notes.append(f"{where}: non-inferior: the drop's upper {conf} bound is {check.bound:.2f}, under the margin {rule.max_drop:g}")


def _adjusted(check: Check) -> str:
    if check.correction == "none" or check.p_adjusted is None or check.comparison is None:
        return ""
    return f"; {check.correction} over {check.family} checks: adjusted p {format_p(check.p_adjusted, check.comparison.n_boot)}"


def _interval(result: CellResult, reps: np.ndarray, config: Bootstrap) -> Interval:
    low, high, undefined = percentile_interval(reps, config.level)
    return Interval(result.main_score, low, high, config.level, config.n_boot, config.seed, result.n_units, undefined)


def _p(comparison: Comparison) -> str:
    text = format_p(comparison.p_value, comparison.n_boot)
    return text if text.startswith("≤") else f"= {text}"


def _pts(score: float | None) -> str:
    return "–" if score is None else f"{100 * score:.2f}"


def run_gate(
    baseline: Sequence[CellResult],
    candidate: Sequence[CellResult],
    rules: Rules,
    match: Sequence[str] = (),
    baseline_root: Path = Path("baseline"),
    candidate_root: Path = Path("candidate"),
    allow_data_change: bool = False,
    drilldown: bool = True,
) -> GateReport:
    """Match cells, check that both sides cover the same tasks and data, and judge every task.

    ``allow_data_change`` (``--allow-data-change``) compares cells whose task data or
    protocol differ, with an unpaired test; without it they are an input error.
    ``drilldown``: attach the units that moved most to failed and borderline checks.
    """
    check_rule_names(rules, baseline, candidate)
    pairs = pair_encoders(baseline, candidate, match)
    speed = speed_checks(rules, candidate_root, pairs)  # before any resampling: a missing comparison is exit 2 at once
    checks = []
    for base_spec, cand_spec in pairs:
        b_cells, c_cells = cells_by_task(baseline, base_spec), cells_by_task(candidate, cand_spec)
        mismatch = subset_mismatch(b_cells, c_cells)
        if mismatch is not None:
            raise mismatch
        missing = sorted(set(b_cells) - set(c_cells), key=str)
        extra = sorted(set(c_cells) - set(b_cells), key=str)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"candidate {cand_spec} lacks " + ", ".join(f"{t}/{s}" for t, s, _ in missing))
            if extra:
                parts.append(f"baseline {base_spec} lacks " + ", ".join(f"{t}/{s}" for t, s, _ in extra))
            raise DataError("the two sides cover different tasks: " + "; ".join(parts), hint="run the same tasks on both sides")
        for key in sorted(b_cells, key=lambda k: (k[0].lower(), k[1], k[2] or 0)):
            b, c = b_cells[key], c_cells[key]
            rule = rules.for_task(b.task, b.task_type)
            notes = check_comparable(b, c, rule, allow_data_change)
            check = Check(b, c, rule, notes=notes, paired=not data_differs(b, c))
            measure_check(check, rules)
            checks.append(check)
    correct_family(checks, rules.correction)
    for check in checks:
        judge_check(check, rules)
    if drilldown:
        from evalkit.gate_drilldown import attach

        attach(checks)
    return GateReport(baseline_root, candidate_root, rules, pairs, checks, speed)


def gate_folders(baseline: Path, candidate: Path, rules: Rules, match: Sequence[str] = (), allow_data_change: bool = False) -> GateReport:
    """The gate on two result folders (what ``evalkit gate`` and the pytest plugin call)."""
    from evalkit.reading import load_results

    base = load_results(baseline, what="baseline")
    cand = load_results(candidate, what="candidate")
    return run_gate(base, cand, rules, match, Path(baseline), Path(candidate), allow_data_change)
