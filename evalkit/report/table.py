"""The leaderboard: encoders × tasks with bootstrap intervals, type and overall means, tie-aware ranks.

Built once from CellResults; every output (terminal, Markdown, CSV, JSON, HTML,
plots) renders this one object, so they never disagree. Scores are main score × 100.

Intervals of a mean over tasks come from averaging the tasks' bootstrap replicates
(tasks are resampled independently); ranks come from paired tests on those same
replicates: an encoder's rank is 1 + the number of encoders significantly better
than it, so encoders that cannot be told apart share a rank. Ranking needs the
replicates of every cell (a second or so per 10k units without a vectorised
adapter), so callers that only want a quick table pass ``ranks=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evalkit import reading
from evalkit.results.schema import CellResult, column_of, is_bench
from evalkit.stats import Bootstrap, compare, percentile_interval, tied_ranks

MEAN = "Mean"
THROUGHPUT_COLUMNS = ("sentences_per_second", "tokens_per_second", "peak_memory_mb", "device", "bytes_per_vector")


def type_column(task_type: str) -> str:
    return f"mean {task_type}"


@dataclass
class BaselineRow:
    """One task of an encoder compared with the baseline's same (or matched) encoder."""

    encoder: str
    baseline_encoder: str
    task: str
    baseline: float
    candidate: float
    delta: float
    low: float | None
    high: float | None
    p_value: float | None


@dataclass
class Leaderboard:
    """Frames indexed by encoder (best first); columns: tasks, then type means, then ``Mean``."""

    score: pd.DataFrame
    low: pd.DataFrame
    high: pd.DataFrame
    rank: pd.Series
    origin: pd.Series
    throughput: pd.DataFrame
    tasks: list[str]
    task_types: dict[str, str]
    aggregates: list[str]
    config: Bootstrap
    alpha: float
    ranked: bool
    n_units: dict[str, int] = field(default_factory=dict)
    baseline: list[BaselineRow] = field(default_factory=list)
    subsets: dict[str, int] = field(default_factory=dict)  # task column → its --limit (subset results, evalkit.subset)

    @property
    def subset_note(self) -> str:
        """One sentence on subset columns for every rendering ('' when there are none)."""
        if not self.subsets:
            return ""
        if len(self.subsets) == len(self.tasks):
            return (
                "Every score here is on a seeded subset (--limit): a smoke test, not comparable with full results; "
                f"{MEAN} is the mean of subset scores."
            )
        return (
            f"Columns marked (--limit N) are scored on a seeded subset (a smoke test, not comparable with full results) "
            f"and are left out of {MEAN} and the type means."
        )

    @property
    def encoders(self) -> list[str]:
        return list(self.score.index)

    @property
    def empty(self) -> bool:
        return self.score.empty

    @property
    def imported(self) -> bool:
        return bool((self.origin != "evalkit").any())

    def interval(self, encoder: str, column: str) -> tuple[float | None, float | None]:
        low, high = self.low.at[encoder, column], self.high.at[encoder, column]
        return (None if pd.isna(low) else float(low), None if pd.isna(high) else float(high))


def _measured(result: CellResult) -> bool:
    """A cell whose own encoding was timed (not served by the embedding cache or a sibling pooling's pass)."""
    speed = result.throughput.get("sentences_per_second")
    return isinstance(speed, int | float) and not isinstance(speed, bool) and speed > 0


def _throughput(results: Sequence[CellResult]) -> dict[str, Any]:
    """Encoder-level throughput: total work over total encode time, peak of peaks.

    ``evalkit bench`` rows (fixed text sample, warm-up, repeats) are preferred over
    the timings of evaluation cells when a results folder holds both.
    """
    timed = [r for r in results if _measured(r)]
    seconds = sum(float(r.throughput.get("encode_seconds") or 0) for r in timed)
    sentences = sum(int(r.throughput.get("sentences") or 0) for r in timed)
    tokens = sum(int(r.throughput.get("tokens") or 0) for r in timed)
    peak = max((int(r.throughput.get("peak_memory_bytes") or 0) for r in results), default=0)
    devices = sorted({str(r.throughput["device"]) for r in results if r.throughput.get("device")})
    sizes = [r.throughput.get("bytes_per_vector") for r in results]
    stored = max((int(b) for b in sizes if isinstance(b, int) and not isinstance(b, bool) and b > 0), default=0)
    return {
        "sentences_per_second": sentences / seconds if seconds and sentences else np.nan,
        "tokens_per_second": tokens / seconds if seconds and tokens else np.nan,
        "peak_memory_mb": peak / 2**20 if peak else np.nan,
        "device": ",".join(devices),
        "bytes_per_vector": stored or np.nan,  # the largest over its tasks (TF-IDF's size follows each task's vocabulary)
    }


def build(
    results: Sequence[CellResult],
    *,
    config: Bootstrap | None = None,
    alpha: float = 0.05,
    ranks: bool = True,
    baseline: Sequence[CellResult] = (),
) -> Leaderboard:
    """The leaderboard of the successful cells in ``results`` (failed cells are left out)."""
    config = config or Bootstrap()
    bench = [r for r in results if r.ok and is_bench(r)]
    ok = [r for r in results if r.ok and not is_bench(r)]
    encoders = list(dict.fromkeys(r.encoder for r in ok))
    tasks = sorted({column_of(r) for r in ok}, key=str.lower)
    task_types = {column_of(r): r.task_type for r in ok}
    subsets = {column_of(r): r.subset.limit for r in ok if r.subset is not None}
    full = [t for t in tasks if t not in subsets] or tasks  # subsets never share a mean with full results
    types = sorted({task_types[t] for t in full})
    aggregates = ([type_column(t) for t in types] if len(types) > 1 else []) + [MEAN]
    columns = tasks + aggregates
    score = pd.DataFrame(np.nan, index=pd.Index(encoders, name="encoder"), columns=columns)
    low, high = score.copy(), score.copy()
    reps: dict[tuple[str, str], np.ndarray] = {}
    n_units: dict[str, int] = {}
    members_of = {c: full if c == MEAN else [t for t in full if type_column(task_types[t]) == c] for c in aggregates}
    # Replicates (a bootstrap per cell: minutes for 1e6 units) only where something needs them: ranks between
    # several encoders, or the interval of a mean over several tasks; otherwise each cell's sealed interval is its own.
    need_reps = ranks and (len(encoders) > 1 or any(len(m) > 1 for m in members_of.values()))
    for r in ok:
        column = column_of(r)
        n_units[column] = max(n_units.get(column, 0), r.n_units)
        if r.main_score is None:
            continue
        score.at[r.encoder, column] = 100 * r.main_score
        rep = reading.replicates(r, config) if need_reps else None
        if rep is not None:
            reps[(r.encoder, column)] = rep
            lo, hi, _ = percentile_interval(rep, config.level)
        else:
            interval = reading.interval(r, config) if ranks else _stored(r, config)
            lo, hi = (interval.low, interval.high) if interval else (None, None)
        low.at[r.encoder, column] = np.nan if lo is None else 100 * lo
        high.at[r.encoder, column] = np.nan if hi is None else 100 * hi
    mean_reps: dict[str, np.ndarray] = {}
    for column in aggregates:
        members = members_of[column]
        score[column] = score[members].mean(axis=1, skipna=False)
        if ranks and len(members) == 1 and not need_reps:  # the mean of one task is that task, interval included
            low[column], high[column] = low[members[0]], high[members[0]]
            continue
        for encoder in encoders:
            parts = [reps.get((encoder, t)) for t in members]
            if all(p is not None for p in parts) and parts:
                agg = np.mean(np.vstack(parts), axis=0)  # type: ignore[arg-type]
                lo, hi, _ = percentile_interval(agg, config.level)
                low.at[encoder, column] = np.nan if lo is None else 100 * lo
                high.at[encoder, column] = np.nan if hi is None else 100 * hi
                if column == MEAN:
                    mean_reps[encoder] = agg
    rank = pd.Series(pd.NA, index=score.index, dtype="Int64", name="rank")
    ranked = [e for e in encoders if e in mean_reps and not pd.isna(score.at[e, MEAN])]
    if ranks and not need_reps and len(encoders) == 1 and not pd.isna(score.at[encoders[0], MEAN]):
        rank[encoders[0]] = 1  # alone: first, with no bootstrap to run
    if ranks and ranked:
        values = tied_ranks([float(score.at[e, MEAN]) for e in ranked], np.vstack([mean_reps[e] for e in ranked]), alpha)
        for encoder, value in zip(ranked, values, strict=True):
            rank[encoder] = value
    origin = pd.Series({e: next(r.origin for r in ok if r.encoder == e) for e in encoders}, name="origin", dtype=object)
    throughput = pd.DataFrame(
        [_throughput([r for r in bench if r.encoder == e] or [r for r in ok if r.encoder == e]) for e in encoders],
        index=score.index,
        columns=list(THROUGHPUT_COLUMNS),
    )
    order = sorted(
        encoders,
        key=lambda e: (
            pd.isna(rank[e]),
            0 if pd.isna(rank[e]) else int(rank[e]),
            pd.isna(score.at[e, MEAN]),
            -(score.at[e, MEAN] if not pd.isna(score.at[e, MEAN]) else 0),
            e,
        ),
    )
    board = Leaderboard(
        score.loc[order],
        low.loc[order],
        high.loc[order],
        rank.loc[order],
        origin.loc[order],
        throughput.loc[order],
        tasks,
        task_types,
        aggregates,
        config,
        alpha,
        ranks,
        n_units,
        subsets=subsets,
    )
    if baseline:
        board.baseline = compare_with_baseline(ok, [r for r in baseline if r.ok], config)
    return board


def report_board(
    results: Sequence[CellResult], *, config: Bootstrap | None = None, alpha: float = 0.05, baseline: Sequence[CellResult] = ()
) -> Leaderboard:
    """The one ranked leaderboard of a set of results: what ``evalkit report`` renders and ``Results.leaderboard()`` returns.

    Intervals and tie-aware ranks from the units' bootstrap replicates; failed cells left out.
    Both faces call this, so a saved folder and the run that wrote it give one answer.
    """
    return build([r for r in results if r.ok], config=config, alpha=alpha, ranks=True, baseline=baseline)


def _stored(result: CellResult, config: Bootstrap) -> Any:
    """The interval stored in the file, without recomputing anything (quick tables)."""
    from evalkit.stats import Interval

    if result.ci_sealed and config.matches(result.ci):
        return Interval.from_dict(result.main_score, result.ci)
    return None


def compare_with_baseline(results: Sequence[CellResult], baseline: Sequence[CellResult], config: Bootstrap) -> list[BaselineRow]:
    """Paired differences for every task an encoder shares with the baseline.

    Encoders pair by identical spec, or, when each side holds a single encoder, with
    each other; unlike the gate, a report shows what it can and skips the rest.
    """
    base_specs = list(dict.fromkeys(r.encoder for r in baseline))
    specs = list(dict.fromkeys(r.encoder for r in results))
    single = len(base_specs) == 1 and len(specs) == 1
    pairs = [(specs[0], base_specs[0])] if single else [(s, s) for s in specs if s in base_specs]
    rows = []
    for spec, base_spec in pairs:
        base_cells = {column_of(r): r for r in baseline if r.encoder == base_spec}  # a subset pairs only with the same subset
        for r in (r for r in results if r.encoder == spec):
            b = base_cells.get(column_of(r))
            if b is None or b.main_score is None or r.main_score is None or b.n_units != r.n_units:
                continue
            rb, rc = reading.replicates(b, config), reading.replicates(r, config)
            if rb is not None and rc is not None:
                comp = compare(rb, rc, b.main_score, r.main_score, config.level)
                low, high, p = comp.low, comp.high, comp.p_value
            else:
                low = high = p = None
            rows.append(
                BaselineRow(
                    spec,
                    base_spec,
                    column_of(r),
                    100 * b.main_score,
                    100 * r.main_score,
                    100 * (r.main_score - b.main_score),
                    None if low is None else 100 * low,
                    None if high is None else 100 * high,
                    p,
                )
            )
    return rows


def leaderboard(results: Sequence[CellResult]) -> pd.DataFrame:
    """Encoders (rows, best mean first) × tasks (scores × 100) with a Mean column; the quick, unranked view."""
    board = build(results, ranks=False)
    return board.score if not board.empty else pd.DataFrame()
