"""Reading stored results for reports, the gate and resume: validated, placed, and vouched for by their units.

``CellResult.read`` checks a file against the schema; this layer adds what needs the
task types (``evalkit.adapters``) and the bootstrap (``evalkit.stats``): the main score
must equal the score the adapter recomputes from the stored per-unit outcomes, or the
file was edited or is corrupt. It also gives each stored result its bootstrap
replicates and interval (memoised per process on the units' content, so a report with
``--baseline`` or a gate run resamples each cell once).

A folder is read whole for a report or the gate: every file validated, nothing
skipped (``ResultStore`` skips unreadable files because a run simply redoes them; a
report or a gate must not, or a truncated baseline file would quietly drop a task).
Only the store's own layout (``ROOT/<encoder slug>/<task>.<split>.json``) is read, so a
``leaderboard.json`` or an MTEB export written next to the cells is not mistaken for one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.errors import DataError
from evalkit.results.schema import SCORE_TOLERANCE, CellResult
from evalkit.results.store import check_placement, limit_of
from evalkit.stats import Bootstrap, Interval, percentile_interval, prepare_units, result_replicates, stream_key


def result_files(root: Path) -> list[Path]:
    # Not only regular files: a directory or a symlink to a device named like a cell is refused when read, not skipped.
    return sorted(p for p in Path(root).glob("*/*.json") if not p.name.startswith(".") and p.parent.is_dir())


def load_results(root: Path | str, *, what: str = "results") -> list[CellResult]:
    """Every cell in ``root`` (failed ones included); DataError naming the file for anything malformed."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what} folder does not exist", path=root)
    files = result_files(root)
    if not files:
        raise DataError(
            f"{what} folder holds no result files", path=root, hint="expected ROOT/<encoder>/<task>.<split>.json from `evalkit run -o ROOT`"
        )
    results = [read_result(path) for path in files]
    for result, path in zip(results, files, strict=True):
        check_placement(result, path)  # a file copied into another cell's place is refused, not attributed
    check_unique(results, files)
    return results


def check_unique(results: Sequence[CellResult], files: Sequence[Path]) -> None:
    seen: dict[tuple[str, str, str, int | None], Path] = {}
    for result, path in zip(results, files, strict=True):
        key = (result.encoder, result.task, result.split, limit_of(result))  # a --limit subset is its own cell
        if key in seen:
            raise DataError(f"two result files for {result.encoder} × {result.task}/{result.split} (the other is {seen[key]})", path=path)
        seen[key] = path


_SCALARS = frozenset({float, int, bool, type(None)})


def _numbers_only(value: list[Any]) -> bool:
    """Whether a list holds only numbers (and None): one pass at C speed, so 1e6-unit results are not walked in Python."""
    return set(map(type, value)) <= _SCALARS


def _extent(units: dict[str, Any]) -> int:
    """The longest list (or string inside a list: classification's per-experiment marks) in ``units``."""
    longest = 0
    for value in units.values():
        if isinstance(value, list | str):
            longest = max(longest, len(value))
        if isinstance(value, list) and not _numbers_only(value):
            longest = max([longest, *(len(item) for item in value if isinstance(item, list | str))])
    return longest


def units_key(units: dict[str, Any]) -> str:
    """A digest of a result's per-unit outcomes (the replicates' memo key): numeric lists hashed as their bytes, the rest as JSON."""
    digest = hashlib.sha1()
    for key in sorted(units):
        value = units[key]
        digest.update(json.dumps(key).encode())
        if isinstance(value, list) and value and _numbers_only(value) and not any(v is None or type(v) is bool for v in value):
            digest.update(b"f64:" + np.asarray(value, dtype=np.float64).tobytes())
        else:
            digest.update(b"json:" + json.dumps(value, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def verify_units(result: CellResult, path: Path | str | None = None) -> None:
    """Refuse a result whose main score disagrees with its own per-unit outcomes (edited or corrupt).

    The task type's adapter recomputes the main score from the stored units on the
    full index (what a bootstrap resample does on a permutation). Results without
    units (MTEB imports, old files, a task whose declared main score is not the
    adapter's) cannot be checked this way and pass through.
    """
    if not result.ok or not result.units or result.n_units < 1 or result.main_score is None:
        return
    adapter = adapter_of(result)
    if adapter is None:
        return
    if result.n_units > _extent(result.units):  # checked first: np.arange(n_units) of a forged huge n_units is not cheap
        raise DataError(
            f"n_units {result.n_units} is more than the per-unit outcomes hold",
            path=path,
            field="n_units",
            hint="the file was edited or is corrupt; re-run this cell",
        )
    check_bounds(result, adapter, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = adapter.score_units(prepare_units(result.units), np.arange(result.n_units))
        recomputed = float(value)
    except Exception as exc:  # anything a malformed 'units' makes the adapter raise
        raise DataError(
            f"per-unit outcomes do not fit {result.n_units} {result.task_type} units ({type(exc).__name__})",
            path=path,
            field="units",
            hint="the file was edited or is corrupt; re-run this cell",
        ) from None
    if not math.isfinite(recomputed) or abs(recomputed - result.main_score) > SCORE_TOLERANCE:
        raise DataError(
            f"main score {result.main_score:.6f} disagrees with the {recomputed:.6f} its per-unit outcomes give",
            path=path,
            field="main_score",
            hint="the file was edited or is corrupt; re-run this cell",
        )


BOUND_SLACK = 1e-5
"""Float error allowed past a unit's declared range (a cosine of 1.0000001 is rounding, 1.5 is an edit)."""


def check_bounds(result: CellResult, adapter: Any, path: Path | str | None = None) -> None:
    """Refuse per-unit outcomes outside the range their adapter declares (``unit_bounds``: a cosine above 1, an nDCG below 0).

    A monotone edit of similarities leaves a rank correlation unchanged, so the main-score
    check alone would let impossible values through to a drill-down or a paired test.
    """
    for key, (low, high) in getattr(adapter, "unit_bounds", {}).items():
        values = result.units.get(key)
        if not isinstance(values, list) or not values:
            continue
        try:
            array = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)  # None: undefined for that unit
        except (TypeError, ValueError):
            hint = "the file was edited or is corrupt; re-run this cell"
            raise DataError("per-unit outcomes are not numbers", path=path, field=f"units.{key}", hint=hint) from None
        outside = np.flatnonzero((array < low - BOUND_SLACK) | (array > high + BOUND_SLACK))  # NaN compares False: not flagged
        if outside.size:
            first = int(outside[0])
            raise DataError(
                f"{outside.size} per-unit value(s) outside [{low:g}, {high:g}], first at unit {first}: {float(array.flat[first])!r}",
                path=path,
                field=f"units.{key}",
                hint="the file was edited or is corrupt; re-run this cell",
            )


def adapter_of(result: CellResult) -> Any | None:
    """The adapter that can rescore this result's units, or None (imported rows, another main metric, no units)."""
    from evalkit.adapters import ADAPTERS, adapter_for

    if not result.ok or result.main_score is None or not result.units or result.n_units < 1:
        return None
    if result.task_type not in ADAPTERS:
        return None
    adapter = adapter_for(result.task_type)
    if getattr(adapter, "main_metric", None) != result.main_metric or not callable(getattr(adapter, "score_units", None)):
        return None
    return adapter


def read_result(path: Path | str) -> CellResult:
    """One result file, schema-valid (an unsealed interval dropped), of its task type, and consistent with its own per-unit outcomes.

    Anything else is one DataError naming the file and the field.
    """
    result = CellResult.read(path)
    check_task_type(result, path)
    verify_units(result, path)
    return result


IMPORTED_MAIN_METRIC = "main_score"
"""What an MTEB import names its main score when the task is not one of evalkit's (:mod:`evalkit.report.mteb_io`)."""
_CUTOFF = re.compile(r"(.+_at_)[0-9]+")


@functools.cache
def metric_names_of(task_type: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """Every metric name the task type's adapter can report: exact names, and ``<family>_at_`` stems taking any cut-off.

    A result file does not store its task's settings, so the names are those of the default
    settings and of every value of each choice setting (clustering's ``mode``), and a cut-off
    metric (``ndcg_at_10``) stands for its family at every cut-off. None: the adapter does not say.
    """
    from evalkit.adapters import ADAPTERS, adapter_for
    from evalkit.adapters.base import reported_metrics, settings_model

    if task_type not in ADAPTERS:
        return None
    adapter = adapter_for(task_type)
    model = settings_model(adapter)
    choices: list[dict[str, Any]] = [{}] + [
        {name: choice}
        for name, info in model.model_fields.items()
        if typing.get_origin(info.annotation) is typing.Literal
        for choice in typing.get_args(info.annotation)
    ]
    found: list[frozenset[str]] = []
    for choice in choices:
        try:
            names = reported_metrics(adapter, model(**choice))
        except Exception:  # a choice these defaults do not allow, or settings without defaults: not listed
            continue
        if names is None:
            return None
        found.append(names)
    if not found:
        return None
    exact = frozenset().union(*found) | {getattr(adapter, "main_metric", "")}
    stems = frozenset(match.group(1) for name in exact if (match := _CUTOFF.fullmatch(name)))
    return exact, stems


def _reports(task_type: str, metric: str) -> bool:
    names = metric_names_of(task_type)
    if names is None:
        return True
    exact, stems = names
    match = _CUTOFF.fullmatch(metric)
    return metric in exact or (match is not None and match.group(1) in stems)


def check_task_type(result: CellResult, path: Path | str | None = None) -> None:
    """Refuse a result whose main metric, scores or per-unit outcomes are not its task type's (an edited ``task_type``, say).

    Otherwise a clustering result relabelled ``retrieval`` would be averaged, v-measure and all,
    into "mean retrieval". An evalkit result must name only metrics its adapter reports and carry
    units its adapter can score; an MTEB import (other metric names, no units) must still have
    the type's main metric or MTEB's ``main_score``. A task type evalkit does not know passes.
    """
    from evalkit.adapters import adapter_for

    if metric_names_of(result.task_type) is None:
        return
    hint = "the file was edited or is corrupt; re-run this cell"
    kind = f"the '{result.task_type}' task type"
    imported = result.origin != "evalkit"
    if not _reports(result.task_type, result.main_metric) and not (imported and result.main_metric == IMPORTED_MAIN_METRIC):
        raise DataError(f"main metric '{result.main_metric}' is not one {kind} reports", path=path, field="main_metric", hint=hint)
    if not imported:
        stray = sorted(name for name in result.scores if not _reports(result.task_type, name))
        if stray:
            raise DataError(f"score '{stray[0]}' is not one {kind} reports", path=path, field=f"scores.{stray[0]}", hint=hint)
    if not result.ok or not result.units or result.n_units < 1:
        return
    adapter = adapter_for(result.task_type)
    if result.main_metric == getattr(adapter, "main_metric", None):
        return  # verify_units rescores them against the main score
    if result.n_units > _extent(result.units):
        raise DataError(f"n_units {result.n_units} is more than the per-unit outcomes hold", path=path, field="n_units", hint=hint)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adapter.score_units(prepare_units(result.units), np.arange(result.n_units))
    except Exception as exc:
        raise DataError(f"per-unit outcomes are not {kind}'s ({type(exc).__name__})", path=path, field="units", hint=hint) from None


_REPLICATES: dict[tuple[Any, ...], np.ndarray | None] = {}


def replicates(result: CellResult, config: Bootstrap | None = None, stream: int | None = None) -> np.ndarray | None:
    """Bootstrap replicates of a stored result's main score (the task's shared resamples unless ``stream``), memoised."""
    adapter = adapter_of(result)
    if adapter is None or result.n_units < 2:
        return None
    config = config or Bootstrap()
    stream = stream_key(result.task, result.split) if stream is None else stream
    units = units_key(result.units)
    key = (result.task, result.split, result.task_type, result.main_metric, result.n_units, units, config, stream)
    if key not in _REPLICATES:
        if len(_REPLICATES) > 512:
            _REPLICATES.clear()
        _REPLICATES[key] = result_replicates(result, adapter, config, stream)
    return _REPLICATES[key]


def interval(result: CellResult, config: Bootstrap | None = None) -> Interval | None:
    """The stored interval when it was drawn with ``config``, else one recomputed from the units."""
    config = config or Bootstrap()
    if result.main_score is None:
        return None
    if result.ci_sealed and config.matches(result.ci):
        stored = Interval.from_dict(result.main_score, result.ci)
        if stored is not None and stored.low is not None:
            return stored
    reps = replicates(result, config)
    if reps is None:
        return None
    low, high, undefined = percentile_interval(reps, config.level)
    return Interval(result.main_score, low, high, config.level, config.n_boot, config.seed, result.n_units, undefined)
