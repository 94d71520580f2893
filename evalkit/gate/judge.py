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
(``[gate] correction``, :mod:`evalkit.gate.correction`), then every check is *judged*
by its rule (``mode = "regression"`` or ``"non_inferiority"``, :mod:`evalkit.gate.rules`).
Failed and borderline checks then get a drill-down of the units that moved most
(:mod:`evalkit.gate.drilldown`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evalkit.errors import DataError
from evalkit.gate.check import Check, GateReport
from evalkit.gate.compare import cells_by_task, check_comparable, check_rule_names, data_differs, pair_encoders, subset_mismatch
from evalkit.gate.correction import adjust, bound_alpha
from evalkit.gate.rules import Rules
from evalkit.gate.speed import speed_checks
from evalkit.reading import interval, replicates
from evalkit.results.schema import CellResult
from evalkit.stats import (
    Bootstrap,
    Comparison,
    Interval,
    compare,
    format_p,
    percentile_interval,
    stream_key,
)

ENVIRONMENT_KEYS = ("cpu", "cpu_count", "gpu", "platform")


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
        from evalkit.gate.drilldown import attach

        attach(checks)
    return GateReport(baseline_root, candidate_root, rules, pairs, checks, speed)


def gate_folders(baseline: Path, candidate: Path, rules: Rules, match: Sequence[str] = (), allow_data_change: bool = False) -> GateReport:
    """The gate on two result folders (what ``evalkit gate`` and the pytest plugin call)."""
    from evalkit.reading import load_results

    base = load_results(baseline, what="baseline")
    cand = load_results(candidate, what="candidate")
    return run_gate(base, cand, rules, match, Path(baseline), Path(candidate), allow_data_change)
