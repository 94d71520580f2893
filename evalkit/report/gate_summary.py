"""The gate's verdict as Markdown, fit for a pull-request comment.

One line that says pass or regression, one table row per check (baseline and
candidate with intervals, the paired difference, p — and, under a multiple-comparison
correction, the adjusted p and whether it survives — throughput, the rule, the
verdict), then the reasons, each naming the task and the drop, then a collapsed
drill-down per failed or borderline check: the units that hurt the candidate most,
with their texts (escaped: pipes, HTML, line breaks) and both scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from evalkit.report.formats import code_md, escape_md, fmt_p

if TYPE_CHECKING:
    from evalkit.gate.check import Check, GateReport
    from evalkit.gate.drilldown import Drilldown
    from evalkit.gate.speed import SpeedCheck
    from evalkit.stats import Interval

METHOD_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "none"}
TOP_MD = 5  # drill-down rows per check in the summary (a PR comment stays short)
TEXT_MD = 160  # characters of each text shown


def _score(value: float | None, interval: Interval | None) -> str:
    if value is None:
        return "–"
    text = f"{100 * value:.2f}"
    if interval is not None and interval.low is not None and interval.high is not None:
        text += f" [{100 * interval.low:.1f}, {100 * interval.high:.1f}]"
    return text


def _delta(check: Check) -> tuple[str, str]:
    c = check.comparison
    b, cand = check.baseline.main_score, check.candidate.main_score
    if b is None or cand is None or not check.candidate.ok:
        return "–", "–"
    text = f"{100 * (cand - b):+.2f}"
    if c is not None and c.low is not None and c.high is not None:
        text += f" [{100 * c.low:+.2f}, {100 * c.high:+.2f}]"
    return text, "–" if c is None else fmt_p(c.p_value, c.n_boot)


def _throughput(check: Check) -> str:
    base, cand = check.throughput
    if base is None or cand is None:
        return "–"
    return f"{base:,.0f} → {cand:,.0f} ({100 * (cand / base - 1):+.0f} %)"


def _adjusted(check: Check) -> str:
    c = check.comparison
    if check.p_adjusted is None or c is None:
        return "–"
    return f"{fmt_p(check.p_adjusted, c.n_boot)} " + ("✓" if check.survives_correction else "✗")


def _rule(check: Check) -> str:
    r = check.rule
    if r.non_inferiority:
        text = f"non-inferior: drop bound < {r.max_drop:g}"
        if check.bound is not None and check.bound_confidence is not None:
            text += f" (upper {100 * check.bound_confidence:.4g} % bound {check.bound:.2f})"
        if r.max_throughput_drop is not None:
            text += f"; speed drop ≤ {100 * r.max_throughput_drop:.0f} %"
        return text
    text = f"drop ≤ {r.max_drop:g}" + (f", significant at {r.alpha:g}" if r.require_significance else "")
    if r.max_throughput_drop is not None:
        text += f"; speed drop ≤ {100 * r.max_throughput_drop:.0f} %"
    return text


def render_gate(report: GateReport) -> str:
    cfg = report.rules.bootstrap
    status = "✅ pass" if report.passed else "❌ regression"
    failed = sum(not c.passed for c in report.checks) + sum(not s.passed for s in report.speed)
    lines = [
        f"## evalkit gate: {status}",
        "",
        f"{len(report.checks) + len(report.speed)} check(s), {failed} failed. Baseline {code_md(report.baseline_root)}, "
        f"candidate {code_md(report.candidate_root)}, rules: {code_md(report.rules.path) if report.rules.path else 'built-in defaults'}.",
        f"Scores are main score × 100 with {cfg.level:.0%} bootstrap intervals; Δ is candidate − baseline in points with its "
        f"paired interval and two-sided p-value ({cfg.n_boot:,} resamples of the task's units, seed {cfg.seed}).",
        "",
    ]
    corrected = report.correction != "none"
    if corrected:
        lines += [
            f"Multiple comparisons: {METHOD_NAMES.get(report.correction, report.correction)} over a family of "
            f"{report.family} check(s); p adj. is the adjusted p-value, ✓ when it is under the rule's alpha (survives "
            "the correction).",
            "",
        ]
    several = len(report.pairs) > 1
    if not several and report.pairs:
        base, cand = report.pairs[0]
        lines += [f"Baseline encoder {code_md(base)}, candidate encoder {code_md(cand)}.", ""]
    head = check_headers(several, corrected)
    lines += [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" if h in {"baseline", "candidate", "Δ", "p", "p adj."} else "---" for h in head) + "|",
    ]
    for check in report.checks:
        row = [*check_cells(check, several, corrected, escape_md, code_md), verdict(check)]
        lines.append("| " + " | ".join(row) + " |")
    failures = [f for c in report.checks for f in c.failures]
    notes = [n for c in report.checks for n in c.notes]
    if failures:
        lines += ["", "**Regressions**", ""] + [f"- {escape_md(f)}" for f in failures]
    if notes:
        lines += ["", "Notes", ""] + [f"- {escape_md(n)}" for n in notes]
    for check in report.checks:
        if check.drilldown is not None:
            lines += ["", *drilldown_md(check, check.drilldown, several)]
    if report.speed:
        lines += ["", render_speed_markdown(report.speed).rstrip("\n")]
    return "\n".join(lines) + "\n"


def check_headers(several: bool, corrected: bool) -> list[str]:
    """Columns of the checks table (Markdown and HTML alike); ``several``: more than one encoder pair."""
    head = (["encoder"] if several else []) + ["task", "metric", "baseline", "candidate", "Δ", "p"]
    return head + (["p adj."] if corrected else []) + ["sentences/s", "rule", "verdict"]


def check_cells(check: Check, several: bool, corrected: bool, text: Callable[[str], str], code: Callable[[str], str]) -> list[str]:
    """One check's cells before the verdict; ``text`` / ``code`` escape for the format (Markdown, or plain for Jinja2)."""
    delta, p = _delta(check)
    return [
        *([text(check.candidate.encoder)] if several else []),
        text(check.label),
        code(check.baseline.main_metric),
        _score(check.baseline.main_score, check.baseline_interval),
        _score(check.candidate.main_score if check.candidate.ok else None, check.candidate_interval),
        delta,
        p,
        *([_adjusted(check)] if corrected else []),
        _throughput(check),
        _rule(check),
    ]


def verdict(check: Check) -> str:
    if not check.passed:
        return "❌ **fail**"
    return "✅ pass (borderline)" if check.borderline else "✅ pass"


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def drilldown_md(check: Check, drill: Drilldown, several: bool = False, top: int = TOP_MD) -> list[str]:
    """One check's drill-down as a collapsed ``<details>`` block holding a Markdown table."""
    who = f" ({escape_md(check.candidate.encoder)})" if several else ""
    rows = drill.rows[:top]
    head = f"{escape_md(check.label)}{who}, {drill.why}: the {len(rows)} {drill.unit}(s) of {drill.n_units:,} that hurt most"
    out = ["<details>", f"<summary>Drill-down: {head}</summary>", ""]
    if drill.note:
        out += [f"{escape_md(drill.note)}.", ""]
    if rows:
        out += [
            f"Ranked by {escape_md(drill.order)}; scores are the {escape_md(drill.value)} of each side.",
            "",
            f"| {escape_md(drill.unit)} | text | reference | baseline | candidate |",
            "|---|---|---|---:|---:|",
        ]
        for row in rows:
            texts = " ↔ ".join(escape_md(_clip(t, TEXT_MD)) for t in row.texts) or "–"
            out.append(
                f"| {escape_md(row.unit)} | {texts} | {escape_md(row.reference) if row.reference else '–'} | "
                f"{_num(row.baseline)} | {_num(row.candidate)} |"
            )
    out += ["", "</details>"]
    return out


def _num(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"


def render_speed_markdown(checks: Sequence[SpeedCheck]) -> str:
    """The speed section of the gate's Markdown summary (empty when there are no checks)."""
    if not checks:
        return ""
    lines = [
        "### Speed (paired, candidate / baseline sentences/s)",
        "",
        "| | candidate | baseline | ratio | interval | rounds | threads | memory growth |",
        "|---|---|---|---:|---|---:|---:|---:|",
    ]
    for check in checks:
        c, r = check.comparison, check.comparison.ratio
        mark = "✅" if check.passed else "❌"
        memory = "–" if c.memory is None else f"{100 * c.memory.growth:+.1f} %"
        lines.append(
            f"| {mark} | `{_cell(c.candidate)}` | `{_cell(c.baseline)}` | {r.estimate:.2f}× | "
            f"[{r.low:.2f}, {r.high:.2f}] ({100 * r.level:g} %) | {c.rounds} | {c.threads} | {memory} |"
        )
    details = [f"- {'FAIL' if not ch.passed else 'pass'}: {_cell(ch.description)}" for ch in checks]
    details += [f"  - {_cell(text)}" for ch in checks for text in (*ch.failures, *ch.notes)]
    return "\n".join([*lines, "", *details]) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell or list item (no pipes, backticks or line breaks)."""
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ").replace("\r", " ")
