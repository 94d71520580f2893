"""The HTML report: one self-contained file (inline CSS, figures as data: URIs, no script), from a Jinja2 template.

A Content-Security-Policy forbids every network fetch, so the page looks the same
offline, attached to a CI run or mailed around. The template environment autoescapes
every value, so a spec, task name or error from data can never become markup.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import markupsafe
import pandas as pd

from evalkit.report.formats import fmt_cell, fmt_p, fmt_rate, headers, note
from evalkit.report.plots import FIGURES, left_out_of_throughput
from evalkit.report.table import Leaderboard

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
TEXT_COLUMNS = ("encoder", "origin")


@cache
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evalkit.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def _style() -> str:
    return resources.files("evalkit.report").joinpath("templates/report.css").read_text(encoding="utf-8")


def leaderboard_rows(board: Leaderboard) -> list[dict[str, Any]]:
    rows = []
    for encoder in board.encoders:
        rank = board.rank[encoder]
        tp = board.throughput.loc[encoder]
        rows.append(
            {
                "rank": "–" if pd.isna(rank) else int(rank),
                "encoder": encoder,
                "origin": board.origin[encoder],
                "imported": board.origin[encoder] != "evalkit",
                "cells": [fmt_cell(board, encoder, c) for c in [*board.tasks, *board.aggregates]]
                + [fmt_rate(tp[k]) for k in ("sentences_per_second", "tokens_per_second", "peak_memory_mb")],
            }
        )
    return rows


def baseline_rows(board: Leaderboard) -> list[dict[str, Any]]:
    return [
        {
            "encoder": r.encoder,
            "baseline_encoder": r.baseline_encoder,
            "task": r.task,
            "baseline": f"{r.baseline:.2f}",
            "candidate": f"{r.candidate:.2f}",
            "delta": f"{r.delta:+.2f}",
            "sign": "pos" if r.delta > 0 else "neg" if r.delta < 0 else "",
            "interval": "–" if r.low is None or r.high is None else f"[{r.low:+.2f}, {r.high:+.2f}]",
            "p": fmt_p(r.p_value, board.config.n_boot),
        }
        for r in board.baseline
    ]


NOTES = {"quality-throughput": left_out_of_throughput}
"""Figures that may leave encoders out, and the sentence saying which and why (under the figure, or alone if none is drawn)."""


def figures(board: Leaderboard) -> list[dict[str, str]]:
    out = []
    for name, caption, draw in FIGURES:
        png = draw(board)
        note = NOTES[name](board) if name in NOTES else ""
        if png is not None or note:
            data = "" if png is None else base64.b64encode(png).decode("ascii")
            out.append({"name": name, "caption": caption, "data": data, "note": note})
    return out


def render_html(board: Leaderboard, title: str = "evalkit leaderboard") -> str:
    empty = board.empty
    return str(
        _template().render(
            csp=markupsafe.Markup(CSP),  # a constant, not data: written verbatim
            style=_style(),
            title=title,
            note=note(board),
            headers=headers(board) if not empty else [],
            text_columns=TEXT_COLUMNS,
            imported=board.imported if not empty else False,
            rows=[] if empty else leaderboard_rows(board),
            baseline=[] if empty else baseline_rows(board),
            level=f"{board.config.level:.0%}",
            figures=[] if empty else figures(board),
            stamp=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )
