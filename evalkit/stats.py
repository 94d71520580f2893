"""Bootstrap confidence intervals and paired comparisons on per-unit outcomes.

A main score is a function of the task's units (STS pairs, retrieval queries,
classification test examples); result files keep the per-unit outcomes, and the
adapter recomputes the score on any resample of them (``Adapter.score_units``).
From that alone this module derives:

* a percentile bootstrap interval for every main score (default 95 %, 1,000
  resamples, seed 0);
* a paired comparison of two encoders on the same task: both are scored on the
  *same* resamples, so the interval and p-value are those of the difference,
  which is far tighter than two overlapping single intervals suggest;
* ranks that treat statistically tied encoders as tied.

Resamples are drawn from a generator seeded with ``(seed, crc32(task/split), n)``:
every encoder on a task sees the same resamples (so stored intervals and paired
tests agree), while different tasks get independent ones (so the mean over tasks
has an honest interval). Intervals are therefore reproducible bit for bit.

Adapters may add an optional vectorised form, ``score_counts(units, counts)``, which
scores a batch of resamples given as multiplicity rows (shape ``(b, n)``); a
Spearman over 10k pairs then takes a fraction of a second for 1,000 resamples
instead of several seconds (see :func:`spearman_counts`).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.results.schema import CellResult

LEVEL = 0.95
N_BOOT = 1000
SEED = 0
CHUNK = 64  # resamples drawn and scored per batch: bounds memory at CHUNK × n


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn; part of every stored interval so readers can tell if it is reusable."""

    level: float = LEVEL
    n_boot: int = N_BOOT
    seed: int = SEED

    def __post_init__(self) -> None:
        """The same ranges as a rules file's ``[bootstrap]`` (one definition: :mod:`evalkit.schemas.bootstrap`)."""
        from evalkit.schemas.base import SEED_MAX
        from evalkit.schemas.bootstrap import check_level, check_n_boot

        for name, check in (("level", check_level), ("n_boot", check_n_boot)):
            value = getattr(self, name)
            try:
                check(value)
            except (TypeError, ValueError) as exc:
                raise EvalkitError(f"{exc}, got {value!r}", field=name) from None
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise EvalkitError(f"resampling seed must be an integer from 0 to {SEED_MAX}, got {self.seed!r}", field="seed")

    def matches(self, stored: Mapping[str, Any]) -> bool:
        return stored.get("level") == self.level and stored.get("n_boot") == self.n_boot and stored.get("seed") == self.seed


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval (``low``/``high`` None when undefined)."""

    estimate: float | None
    low: float | None
    high: float | None
    level: float
    n_boot: int
    seed: int
    n_units: int
    n_undefined: int = 0  # resamples whose score was undefined (e.g. a constant resample)

    def as_dict(self) -> dict[str, Any]:
        return {
            "low": _round(self.low),
            "high": _round(self.high),
            "level": self.level,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "method": "percentile",
            "n_units": self.n_units,
            "n_undefined": self.n_undefined,
        }

    @classmethod
    def from_dict(cls, estimate: float | None, data: Mapping[str, Any]) -> Interval | None:
        """The stored form back; None if the dict is not a well-formed interval (it is then recomputed)."""
        try:
            low, high = data["low"], data["high"]
            if not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in (low, high)):
                return None
            return cls(
                estimate,
                None if low is None else float(low),
                None if high is None else float(high),
                float(data["level"]),
                int(data["n_boot"]),
                int(data["seed"]),
                int(data.get("n_units", 0)),
                int(data.get("n_undefined", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Comparison:
    """Candidate minus baseline on the same resamples: difference, its interval, two-sided p-value."""

    baseline: float
    candidate: float
    delta: float
    low: float | None
    high: float | None
    p_value: float | None
    level: float
    n_boot: int


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 7)


def stream_key(task: str, split: str) -> int:
    """Per-task stream id: same resamples for every encoder on a task, independent across tasks."""
    return zlib.crc32(f"{task}/{split}".encode())


def resample_indices(n: int, config: Bootstrap, key: int = 0) -> Iterator[np.ndarray]:
    """Yield the bootstrap resamples as index arrays, ``CHUNK`` rows at a time (deterministic)."""
    if n < 1:
        raise EvalkitError("cannot resample a task with no units")
    rng = np.random.default_rng([config.seed, key, n])
    # int32 draws are the int64 ones (numpy draws both from the same 32-bit stream below 2**32), in half the memory
    dtype = np.int32 if n < 2**31 else np.int64
    done = 0
    while done < config.n_boot:
        size = min(CHUNK, config.n_boot - done)
        yield rng.integers(0, n, size=(size, n), dtype=dtype)
        done += size


def counts_of(index: np.ndarray, n: int) -> np.ndarray:
    """Index rows ``(b, k)`` → multiplicity rows ``(b, n)`` (how often each unit was drawn)."""
    rows = index.shape[0]
    if rows == 1:
        return np.bincount(index[0], minlength=n).astype(np.float64)[None, :]
    flat = (index.astype(np.int64) + (np.arange(rows, dtype=np.int64) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


BATCH_CELLS = 2**21
"""Resamples × units scored at once by a vectorised adapter (16 MiB per float64 array): memory stays bounded and
cache-sized however many units a task has; each resample's score is computed on its own row, so batching changes no number."""


def _row_batches(rows: int, n: int) -> Iterator[slice]:
    step = max(1, BATCH_CELLS // max(n, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def prepare_units(units: Mapping[str, Any]) -> dict[str, Any]:
    """Lists → arrays once, so adapters' per-resample indexing does not re-convert 10k-item lists 1,000 times."""
    prepared: dict[str, Any] = {}
    for key, value in units.items():
        if isinstance(value, list):
            try:
                array = np.asarray(value)
            except ValueError:  # ragged (e.g. per-query lists of different length): leave as is
                array = None
            prepared[key] = array if array is not None and array.dtype.kind in "biufUS" else value
        else:
            prepared[key] = value
    return prepared


ScoreBatch = Callable[[np.ndarray], np.ndarray]


_COUNTS_MEMO: dict[tuple[int, int, int, int], list[np.ndarray]] = {}
COUNTS_MEMO_CELLS = 2**22
"""Resample multiplicities up to this many numbers (32 MiB) are kept per process: every cell of a task shares them."""


def resample_counts(n: int, config: Bootstrap, key: int = 0) -> Iterator[np.ndarray]:
    """The resamples of :func:`resample_indices` as multiplicity rows, ``CHUNK`` at a time, drawn once per (task, n, config).

    A sweep scores many encoders on one task with the same resamples, so drawing and
    counting them again for each cell repeated the same work (read-only arrays).
    """
    memo_key = (n, config.n_boot, config.seed, key)
    chunks = _COUNTS_MEMO.get(memo_key)
    if chunks is not None:
        yield from chunks
        return
    keep = n * config.n_boot <= COUNTS_MEMO_CELLS
    drawn = []
    for index in resample_indices(n, config, key):
        for rows in _row_batches(index.shape[0], n):  # a few rows at a time for large tasks: bounded memory
            counts = counts_of(index[rows], n)
            counts.flags.writeable = False
            if keep:
                drawn.append(counts)
            yield counts
    if keep:
        _COUNTS_MEMO.clear()  # one task's resamples at a time: a sweep scores task by task
        _COUNTS_MEMO[memo_key] = drawn


def scorer(adapter: Any, units: Mapping[str, Any], n: int) -> ScoreBatch:
    """A function from index rows ``(b, n)`` to scores ``(b,)``, vectorised when the adapter can."""
    prepared = prepare_units(units)
    batch = getattr(adapter, "score_counts", None)
    if callable(batch):
        return lambda index: np.asarray(batch(prepared, counts_of(index, n)), dtype=np.float64)

    def loop(index: np.ndarray) -> np.ndarray:
        out = np.empty(index.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a degenerate resample is undefined (NaN), not a warning
            for row, idx in enumerate(index):
                value = adapter.score_units(prepared, idx)
                out[row] = np.nan if value is None else float(value)
        return out

    return loop


def replicates(adapter: Any, units: Mapping[str, Any], n: int, config: Bootstrap, key: int = 0) -> np.ndarray:
    """The score on each bootstrap resample (NaN where undefined), shape ``(n_boot,)``."""
    batch = getattr(adapter, "score_counts", None)
    if callable(batch):  # vectorised over multiplicities, which every cell of the task shares
        prepared = prepare_units(units)
        try:
            return np.concatenate([np.asarray(batch(prepared, counts), dtype=np.float64) for counts in resample_counts(n, config, key)])
        finally:
            _TIES.clear()  # the sorts of these units live for one bootstrap
    score = scorer(adapter, units, n)
    return np.concatenate([score(index) for index in resample_indices(n, config, key)])


def percentile_interval(reps: np.ndarray, level: float) -> tuple[float | None, float | None, int]:
    """Percentile interval of the defined replicates; undefined when more than 5 % are NaN."""
    finite = reps[np.isfinite(reps)]
    undefined = int(reps.size - finite.size)
    if finite.size == 0 or undefined > 0.05 * reps.size:
        return None, None, undefined
    tail = (1 - level) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return float(low), float(high), undefined


def bootstrap_ci(
    adapter: Any, units: Mapping[str, Any], n: int, estimate: float | None, config: Bootstrap | None = None, key: int = 0
) -> Interval:
    """Percentile bootstrap interval of the main score from its per-unit outcomes."""
    config = config or Bootstrap()
    reps = replicates(adapter, units, n, config, key)
    low, high, undefined = percentile_interval(reps, config.level)
    return Interval(estimate, low, high, config.level, config.n_boot, config.seed, n, undefined)


def shifted_p_value(deltas: np.ndarray, observed: float) -> float | None:
    """Two-sided bootstrap p-value of "no difference": how often the null-centred replicates reach |observed|.

    Centring the replicates on zero (Efron & Tibshirani 1993, §16.4; Berg-Kirkpatrick
    et al. 2012) turns the bootstrap distribution of the difference into one under
    the null; the +1s keep p above zero with a finite number of resamples.
    """
    finite = deltas[np.isfinite(deltas)]
    if finite.size == 0 or not math.isfinite(observed):
        return None
    extreme = np.abs(finite - observed) >= abs(observed) - 1e-12
    return float((1 + np.count_nonzero(extreme)) / (1 + finite.size))


def compare(baseline: np.ndarray, candidate: np.ndarray, observed_baseline: float, observed_candidate: float, level: float) -> Comparison:
    """Paired comparison from replicates drawn on the same resamples."""
    deltas = candidate - baseline
    observed = observed_candidate - observed_baseline
    low, high, _ = percentile_interval(deltas, level)
    return Comparison(observed_baseline, observed_candidate, observed, low, high, shifted_p_value(deltas, observed), level, deltas.size)


def paired_bootstrap(
    adapter: Any,
    baseline_units: Mapping[str, Any],
    candidate_units: Mapping[str, Any],
    n: int,
    observed_baseline: float,
    observed_candidate: float,
    config: Bootstrap | None = None,
    key: int = 0,
) -> Comparison:
    """Score both encoders on the same resamples of the task's units and compare."""
    config = config or Bootstrap()
    a = replicates(adapter, baseline_units, n, config, key)
    b = replicates(adapter, candidate_units, n, config, key)
    return compare(a, b, observed_baseline, observed_candidate, config.level)


def cell_interval(adapter: Any, metric: str, task: str, split: str, outcome: Any, config: Bootstrap | None = None) -> dict[str, Any]:
    """The interval stored in a fresh result (``{}`` when there is nothing to resample).

    Only the adapter's own main metric can be recomputed by ``score_units``; a task
    that declares another main score gets no interval rather than a wrong one.
    """
    estimate = outcome.scores.get(metric)
    if estimate is None or not outcome.units or outcome.n_units < 2 or metric != getattr(adapter, "main_metric", None):
        return {}
    try:
        interval = bootstrap_ci(adapter, outcome.units, outcome.n_units, estimate, config, stream_key(task, split))
    except Exception as exc:  # a broken score_units must not cost the cell its scores
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return interval.as_dict()


def result_replicates(result: CellResult, adapter: Any, config: Bootstrap | None = None, stream: int | None = None) -> np.ndarray | None:
    """Bootstrap replicates of a stored result's main score, rescored by ``adapter`` (None for malformed units).

    ``stream`` picks other resamples than the task's own (the gate's unpaired test, when
    the two sides scored different data); by default every encoder on a task shares them.
    """
    config = config or Bootstrap()
    stream = stream_key(result.task, result.split) if stream is None else stream
    try:
        return replicates(adapter, result.units, result.n_units, config, stream)
    except Exception:  # malformed units: the row simply has no interval
        return None


def format_p(p: float | None, n_boot: int) -> str:
    """A bootstrap p-value; at its floor 1/(B+1) it is only known to be below that."""
    if p is None:
        return "–"
    floor = 1 / (n_boot + 1)
    return f"≤ {floor * 1.0001:.2g}" if p <= floor + 1e-12 else f"{p:.3g}"


def tied_ranks(estimates: Sequence[float], reps: np.ndarray, alpha: float = 0.05) -> list[int]:
    """Rank = 1 + the number of encoders significantly better (paired, two-sided p < alpha).

    Encoders that cannot be told apart share a rank, and the ranks stay honest when
    "A ties B, B ties C, but A beats C": C then ranks below A but level with B.
    ``reps`` holds each encoder's replicates on the same resamples, shape ``(E, B)``.
    """
    est = np.asarray(estimates, dtype=np.float64)
    ranks = []
    for i in range(len(est)):
        better = 0
        for j in range(len(est)):
            if j == i or not est[j] > est[i]:
                continue
            p = shifted_p_value(reps[j] - reps[i], float(est[j] - est[i]))
            better += p is not None and p < alpha
        ranks.append(1 + better)
    return ranks


_TIES: list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]] = []


def _tie_groups_of(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`tie_groups` of an array scored again and again (every batch of resamples): sorted once, while it is alive.

    Keyed on the array object itself (kept alive by the memo, so its id cannot be reused): the
    units of one result, prepared once per bootstrap; :func:`replicates` clears it when done.
    """
    for array, groups in _TIES:
        if array is x:
            return groups
    groups = tie_groups(x)
    _TIES.insert(0, (x, groups))
    del _TIES[4:]
    return groups


def tie_groups(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, start of each group of equal values in that order, and each unit's group id."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    new = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    starts = np.flatnonzero(new)
    group_sorted = np.cumsum(new) - 1
    group = np.empty_like(group_sorted)
    group[order] = group_sorted
    return order, starts, group


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their mean rank (``scipy.stats.rankdata``'s default)."""
    order, starts, group = tie_groups(np.asarray(x))
    sizes = np.diff(np.r_[starts, len(order)])
    return (starts + (sizes + 1) / 2)[group]


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r as ``scipy.stats.pearsonr`` computes it (centred, normalised, dotted, clipped); NaN if undefined.

    STS scoring needs only these two statistics; computing them here spares every
    run the import of ``scipy.stats`` (0.3 s, a tenth of an STS-B evaluation's overhead).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    xm, ym = x - x.mean(), y - y.mean()
    norm_x, norm_y = np.linalg.norm(xm), np.linalg.norm(ym)
    if norm_x == 0 or norm_y == 0:
        return math.nan  # a constant input: no correlation is defined
    return float(np.clip(np.dot(xm / norm_x, ym / norm_y), -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the average ranks (``scipy.stats.spearmanr``); NaN if undefined."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    return pearson(average_ranks(x), average_ranks(y))


def _weighted_ranks(counts: np.ndarray, order: np.ndarray, starts: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Average ranks each unit gets inside every resample, from one sort of the original data.

    Copies of a unit tie with each other (and with equal-valued units), so a group of
    equal values holding ``w`` draws after ``c`` smaller ones has rank ``c + (w + 1) / 2``.
    Counts are whole numbers, so every rank is exact however the sums are ordered.
    """
    if len(starts) < len(order):  # ties: each group's draws, summed in one pass (whole numbers: exact in any order)
        weights = np.stack([np.bincount(group, weights=row, minlength=len(starts)) for row in counts])
    else:  # np.take: the same gather as counts[:, order], several times faster
        weights = np.take(counts, order, axis=1)
    group_ranks = np.cumsum(weights, axis=1) - (weights - 1) / 2
    return np.take(group_ranks, group, axis=1)


def spearman_counts(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Spearman's rho of (x, y) on each resample given as multiplicities, shape ``(b, n)`` → ``(b,)``.

    Equal to ``scipy.stats.spearmanr(x[idx], y[idx])`` for the resample ``idx`` the
    counts describe, without ranking each resample again: ranks within a resample
    follow from the original order and the counts. An adapter's ``score_counts``
    can return ``spearman_counts(gold, cosine, counts)``.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rx = _weighted_ranks(counts, *_tie_groups_of(x))  # sorted once per bootstrap, not once per batch of resamples
    ry = _weighted_ranks(counts, *_tie_groups_of(y))
    total = counts.sum(axis=1, keepdims=True)
    mean = (total + 1) / 2  # ranks 1..total always average to this
    dx, dy = rx - mean, ry - mean
    cov = np.einsum("ij,ij,ij->i", counts, dx, dy)
    vx = np.einsum("ij,ij,ij->i", counts, dx, dx)
    vy = np.einsum("ij,ij,ij->i", counts, dy, dy)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(cov / np.sqrt(vx * vy))
