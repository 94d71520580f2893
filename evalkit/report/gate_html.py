"""The gate's verdict as one self-contained HTML page (``evalkit gate --html FILE``).

The checks table of the Markdown summary, the reasons, and every failed or borderline
check's drill-down in full (texts included), rendered from a Jinja2 template in
``evalkit/report/templates/`` with autoescaping on: texts from task data are hostile
(HTML, scripts, control characters), so every value goes through :func:`plain` and the
template escapes it; the page's Content-Security-Policy forbids scripts and fetches.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evalkit.report.formats import plain
from evalkit.report.gate_summary import METHOD_NAMES, _num, check_cells, check_headers, verdict

if TYPE_CHECKING:
    from evalkit.gate.check import GateReport


def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evalkit.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("gate.html.j2")


def render_gate_html(report: GateReport) -> str:
    """The page as text."""
    from importlib import resources

    cfg = report.rules.bootstrap
    corrected = report.correction != "none"
    several = len(report.pairs) > 1 or not report.pairs
    headers = check_headers(several, corrected)
    rows = []
    for check in report.checks:
        cells = check_cells(check, several, corrected, plain, plain)
        status = "fail" if not check.passed else "borderline" if check.borderline else "pass"
        rows.append({"cells": cells, "verdict": verdict(check).replace("**", ""), "status": status})
    drills = []
    for check in report.checks:
        drill = check.drilldown
        if drill is None:
            continue
        who = f" ({check.candidate.encoder})" if several else ""
        drills.append(
            {
                "title": plain(
                    f"{check.label}{who}, {drill.why}: the {len(drill.rows)} {drill.unit}(s) of {drill.n_units:,} that hurt most"
                ),
                "note": plain(drill.note) if drill.note else None,
                "order": drill.order,
                "value": drill.value,
                "unit": drill.unit,
                "rows": [
                    {
                        "unit": plain(r.unit),
                        "texts": [plain(t) for t in r.texts],
                        "reference": plain(r.reference) if r.reference else None,
                        "baseline": _num(r.baseline),
                        "candidate": _num(r.candidate),
                    }
                    for r in drill.rows
                ],
            }
        )
    status = "pass" if report.passed else "regression"
    base = ", ".join(f"{plain(b)} → {plain(c)}" for b, c in report.pairs)
    return str(
        _template().render(
            title=f"evalkit gate: {status}",
            style=resources.files("evalkit.report").joinpath("templates/report.css").read_text(encoding="utf-8"),
            intro=f"{len(report.checks) + len(report.speed)} check(s), "
            f"{sum(not c.passed for c in report.checks) + sum(not c.passed for c in report.speed)} failed. "
            f"Baseline {plain(report.baseline_root)}, candidate {plain(report.candidate_root)}, rules: "
            f"{plain(report.rules.path) if report.rules.path else 'built-in defaults'}. Encoders: {base}. "
            f"Scores are main score × 100 with {cfg.level:.0%} bootstrap intervals; Δ is candidate − baseline in points "
            f"with its paired interval and two-sided p-value ({cfg.n_boot:,} resamples, seed {cfg.seed}).",
            correction=(
                f"Multiple comparisons: {METHOD_NAMES.get(report.correction, report.correction)} over a family of "
                f"{report.family} check(s); p adj. is the adjusted p-value, ✓ when it is under the rule's alpha."
                if corrected
                else ""
            ),
            headers=headers,
            numeric={"baseline", "candidate", "Δ", "p", "p adj."},
            rows=rows,
            failures=[plain(f) for f in report.failures],
            notes=[plain(n) for n in report.notes],
            speed=[{"status": "pass" if c.passed else "fail", "text": plain(c.description)} for c in report.speed],
            drills=drills,
            stamp=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )
