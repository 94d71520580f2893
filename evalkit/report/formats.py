"""Text renderings of a Leaderboard: terminal, Markdown, CSV, JSON, and writing them to files.

Every value that comes from data (encoder specs, task names, origins, devices, the
title) is neutralised for the output it goes to, and numbers stay numbers:

* terminal: control characters (ANSI escape sequences start with one), Unicode
  format characters (bidirectional overrides) and line separators are shown as
  ``\\x1b``/``\\u202e`` escapes (:func:`plain`), so a name can neither restyle the
  terminal nor reorder what is shown;
* Markdown, the pull-request and README format: the same, plus ``|``, ``<``, line
  breaks and emphasis marks escaped (:func:`escape_md`), so a name cannot break
  the table or inject HTML;
* CSV: the same, plus a leading ``'`` on a text cell that starts with ``=``, ``+``,
  ``-``, ``@``, tab or CR (OWASP's rule against spreadsheet formulas,
  :func:`csv_text`); numeric cells are written as numbers;
* JSON: control, format and C1 characters are written as ``\\uXXXX`` escapes (the
  same data, safe to print).

HTML autoescapes in its template (:mod:`evalkit.report.html`).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

import pandas as pd

from evalkit.report.table import MEAN, Leaderboard
from evalkit.stats import format_p as fmt_p

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _json_escaped(char: str) -> str:
    """``char`` as JSON ``\\uXXXX`` escapes (a UTF-16 surrogate pair above U+FFFF)."""
    units = char.encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def _unsafe(char: str) -> bool:
    return bool(_UNSAFE.match(char)) or unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Cs"}


def plain(text: object) -> str:
    """``text`` with every control, format (bidi) and separator character written as a visible escape.

    Injective on text without backslashes, and printable on any terminal: an ANSI
    sequence ``ESC[31m`` in a task name shows as ``\\x1b[31m``.
    """
    value = str(text)
    if value.isprintable() and value.isascii():
        return value
    return "".join(_escaped(c) if _unsafe(c) else c for c in value)


def csv_text(text: object) -> str:
    """A text cell for a CSV file: :func:`plain`, and a leading ``'`` where a spreadsheet would see a formula."""
    value = plain(text)
    return "'" + value if value.startswith(_FORMULA_START) else value


def escape_md(text: str) -> str:
    """Make data safe inside a Markdown table cell (controls, pipes, HTML, line breaks, emphasis and code marks)."""
    out = plain(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    for char in "*_`[]":
        out = out.replace(char, "\\" + char)
    return " ".join(out.split())


def code_md(text: object) -> str:
    """Inline code outside tables (a backtick in data would end the span early)."""
    return "`" + " ".join(plain(text).replace("`", "'").split()) + "`"


def fmt(value: Any, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA else f"{value:.{digits}f}"


def fmt_cell(board: Leaderboard, encoder: str, column: str, *, style: str = "interval") -> str:
    """``82.03 [80.6, 83.4]`` (Markdown), ``82.03 ±1.4`` (terminal), or ``82.03`` when there is no interval."""
    value = board.score.at[encoder, column]
    if pd.isna(value):
        return "–"
    low, high = board.interval(encoder, column)
    if low is None or high is None:
        return f"{value:.2f}"
    if style == "pm":
        return f"{value:.2f} ±{(high - low) / 2:.1f}"
    return f"{value:.2f} [{low:.1f}, {high:.1f}]"


def fmt_rate(value: Any) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def headers(board: Leaderboard) -> list[str]:
    cols = ["rank", "encoder"]
    if board.imported:
        cols.append("origin")
    return [*cols, *board.tasks, *board.aggregates, "sentences/s", "tokens/s", "peak MB"]


def rows(board: Leaderboard, style: str) -> list[list[str]]:
    out = []
    for encoder in board.encoders:
        rank = board.rank[encoder]
        row = ["–" if pd.isna(rank) else str(int(rank)), encoder]
        if board.imported:
            row.append(str(board.origin[encoder]))
        row += [fmt_cell(board, encoder, c, style=style) for c in [*board.tasks, *board.aggregates]]
        tp = board.throughput.loc[encoder]
        row += [fmt_rate(tp["sentences_per_second"]), fmt_rate(tp["tokens_per_second"]), fmt_rate(tp["peak_memory_mb"])]
        out.append(row)
    return out


def note(board: Leaderboard) -> str:
    """What the numbers are, in one paragraph (shared by Markdown and HTML)."""
    cfg = board.config
    text = (
        f"Main score × 100 with {cfg.level:.0%} bootstrap intervals ({cfg.n_boot:,} resamples of each task's units, seed {cfg.seed}). "
        f"{MEAN} is the mean over tasks" + (", with a mean per task type" if len(board.aggregates) > 1 else "") + ". "
    )
    if board.ranked:
        text += (
            f"Rank: 1 + the number of encoders significantly better on the {MEAN} "
            f"(paired bootstrap, two-sided p < {board.alpha:g}); tied encoders share a rank. "
        )
    else:
        text += "Not ranked (evalkit report adds tie-aware ranks). "
    text += "Throughput: sentences (and tokens) per second of encoding, over all of an encoder's cells."
    if board.subsets:
        text += " " + board.subset_note
    if board.imported:
        text += (
            " Rows whose origin is not evalkit were imported (e.g. published MTEB results): no per-unit outcomes, so no intervals or ranks."
        )
    return text


def render_markdown(board: Leaderboard) -> str:
    if board.empty:
        return "(no results)\n"
    head = headers(board)
    align = ["---:" if h not in {"encoder", "origin"} else "---" for h in head]
    lines = [note(board), "", "| " + " | ".join(escape_md(h) for h in head) + " |", "|" + "|".join(align) + "|"]
    text_columns = {i for i, h in enumerate(head) if h in {"encoder", "origin"}}
    for row in rows(board, "interval"):
        lines.append("| " + " | ".join(escape_md(c) if i in text_columns else c for i, c in enumerate(row)) + " |")
    if board.baseline:
        lines += ["", *baseline_markdown(board)]
    return "\n".join(lines) + "\n"


def baseline_markdown(board: Leaderboard) -> list[str]:
    lines = [
        f"Compared with the baseline (Δ = this − baseline, points; "
        f"paired {board.config.level:.0%} interval and p-value on the same resamples):",
        "",
        "| encoder | baseline encoder | task | baseline | this | Δ | Δ interval | p |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in board.baseline:
        interval = "–" if r.low is None or r.high is None else f"[{r.low:+.2f}, {r.high:+.2f}]"
        p = fmt_p(r.p_value, board.config.n_boot)
        cells = [escape_md(r.encoder), escape_md(r.baseline_encoder), escape_md(r.task)]
        cells += [f"{r.baseline:.2f}", f"{r.candidate:.2f}", f"{r.delta:+.2f}", interval, p]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_terminal(board: Leaderboard) -> str:
    from tabulate import tabulate

    if board.empty:
        return "(no results)"
    head = [plain(h) for h in headers(board)]
    body = [[plain(c) for c in r] for r in rows(board, "pm")]
    if not board.ranked:
        head, body = head[1:], [r[1:] for r in body]
    table = str(tabulate(body, headers=head, tablefmt="github", stralign="right", disable_numparse=True))
    return f"{table}\n{board.subset_note}" if board.subsets else table


def render_csv(board: Leaderboard) -> str:
    """One row per encoder; each task and mean as score, low, high (× 100), then rank and throughput."""
    frame = pd.DataFrame(index=board.score.index)
    frame["rank"] = board.rank
    frame["origin"] = board.origin
    for column in [*board.tasks, *board.aggregates]:
        frame[column] = board.score[column]
        frame[f"{column} low"] = board.low[column]
        frame[f"{column} high"] = board.high[column]
    for column in board.throughput.columns:
        frame[column] = board.throughput[column]
    for column in ("origin", "device"):  # the text columns; every other column is numeric
        frame[column] = [None if v is None or v is pd.NA else csv_text(v) for v in frame[column]]
    frame.index = pd.Index([csv_text(e) for e in frame.index])
    frame.columns = [csv_text(c) for c in frame.columns]
    return frame.to_csv(float_format="%.4f", index_label="encoder")


def _num(value: Any, digits: int = 4) -> float | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def as_dict(board: Leaderboard) -> dict[str, Any]:
    cfg = board.config
    encoders = []
    for encoder in board.encoders:

        def cell(column: str, e: str = encoder) -> dict[str, Any]:
            low, high = board.interval(e, column)
            return {"score": _num(board.score.at[e, column]), "low": _num(low), "high": _num(high)}

        rank = board.rank[encoder]
        tp = board.throughput.loc[encoder]
        encoders.append(
            {
                "encoder": encoder,
                "origin": board.origin[encoder],
                "rank": None if pd.isna(rank) else int(rank),
                "mean": cell(MEAN),
                "type_means": {c.removeprefix("mean "): cell(c) for c in board.aggregates if c != MEAN},
                "tasks": {t: cell(t) for t in board.tasks if not pd.isna(board.score.at[encoder, t])},
                "throughput": {
                    "sentences_per_second": _num(tp["sentences_per_second"], 3),
                    "tokens_per_second": _num(tp["tokens_per_second"], 3),
                    "peak_memory_mb": _num(tp["peak_memory_mb"], 1),
                    "device": tp["device"] or None,
                    "bytes_per_vector": None if pd.isna(tp["bytes_per_vector"]) else int(tp["bytes_per_vector"]),
                },
            }
        )
    return {
        "scale": "main score × 100",
        "intervals": {"method": "percentile bootstrap", "level": cfg.level, "n_boot": cfg.n_boot, "seed": cfg.seed},
        "ranking": {"ranked": board.ranked, "alpha": board.alpha, "rule": "1 + number of encoders significantly better on the mean"},
        "tasks": [
            {"task": t, "type": board.task_types[t], "n_units": board.n_units.get(t, 0), "limit": board.subsets.get(t)} for t in board.tasks
        ],
        "subsets": board.subset_note or None,
        "encoders": encoders,
        "baseline": [{k: (_num(v) if isinstance(v, float) else v) for k, v in vars(r).items()} for r in board.baseline],
    }


def render_json(board: Leaderboard) -> str:
    """JSON of :func:`as_dict`; characters a terminal would act on are ``\\uXXXX`` escapes (same data)."""
    text = json.dumps(as_dict(board), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    if text.isascii() and "\x7f" not in text:
        return text
    return "".join(_json_escaped(c) if c not in "\n " and _unsafe(c) else c for c in text)
