"""The adapter seam: a task type's protocol for turning vectors into scores."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from evalkit.encoders.base import CorpusFitted, Encoder, Role
from evalkit.errors import DataError
from evalkit.schemas.base import Schema
from evalkit.schemas.task import NoSettings

if TYPE_CHECKING:
    from evalkit.taskspec import TaskSpec  # loading a task file validates it against the adapters: TaskSpec sits above


@dataclass(frozen=True)
class TaskOutcome:
    """What an adapter hands back: scores, and per-unit outcomes for intervals."""

    main_metric: str
    scores: Mapping[str, float | None]
    n_units: int
    units: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # data-quality notes (``file:line: ...``), stored in the result file

    @property
    def main_score(self) -> float | None:
        return self.scores.get(self.main_metric)


class Adapter(Protocol):
    """Scores one encoder on one task split, following the field's protocol for the type.

    Conventions every adapter follows: ``Settings`` is the Schema of its ``[settings]``
    table (read with ``task.settings_as(self.Settings)``; validated when the task file
    loads); ``metrics`` names every score it reports (a ``main_score`` outside it is
    refused when the task file loads; an adapter whose names depend on its settings
    defines ``metric_names(settings)`` instead); ``validate(task, split)`` reads the
    split's data and refuses bad input before any model loads, printing data-quality
    warnings once (:func:`emit`); ``evaluate`` returns them again in ``TaskOutcome.warnings``.
    An adapter may declare ``unit_bounds`` (unit key → closed range): a stored result
    whose per-unit values leave it is refused when read (:func:`evalkit.reading.check_bounds`).
    """

    task_type: ClassVar[str]
    main_metric: ClassVar[str]
    Settings: ClassVar[type[Schema]]
    metrics: ClassVar[tuple[str, ...]]

    def validate(self, task: TaskSpec, split: str | None = None) -> None:
        """Check settings and the data of ``split`` (default: the task's) before any model loads: DataError naming file, line, field."""
        ...

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome: ...

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        """The main score recomputed on a resample of the units (``index`` into them): bootstrap intervals."""
        ...


def embed(encoder: Encoder, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
    """Encode each distinct text once and map the vectors back to ``texts``' order."""
    index: dict[str, int] = {}
    positions = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    unique = list(index)
    vectors = np.asarray(encoder.encode(unique, role), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(unique):
        raise RuntimeError(f"encoder {encoder.spec} returned shape {vectors.shape} for {len(unique)} texts")
    return vectors[positions]


def embed_pairs(encoder: Encoder, first: Sequence[str], second: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of both sides of sentence pairs, every distinct sentence encoded once (corpus-fitted encoders fit first)."""
    texts = [*first, *second]
    fit_if_needed(encoder, texts)
    vectors = embed(encoder, texts)
    return vectors[: len(first)], vectors[len(first) :]


def fit_if_needed(encoder: Encoder, texts: Sequence[str]) -> None:
    """Corpus-fitted encoders (TF-IDF) see every text of the task before encoding."""
    if isinstance(encoder, CorpusFitted):
        encoder.fit(list(dict.fromkeys(texts)))


def finite(value: float) -> float | None:
    """JSON has no NaN: undefined metrics (e.g. a constant similarity) become None."""
    return None if value is None or not np.isfinite(value) else float(value)


def settings_model(adapter: object) -> type[Schema]:
    """The adapter's ``Settings`` schema (an adapter that declares none takes no settings)."""
    model = getattr(adapter, "Settings", NoSettings)
    return model if isinstance(model, type) and issubclass(model, Schema) else NoSettings


def reported_metrics(adapter: object, settings: Schema) -> frozenset[str] | None:
    """Every metric name the adapter reports with these settings; None when it does not say."""
    names_for = getattr(adapter, "metric_names", None)
    if callable(names_for):
        return frozenset(names_for(settings))
    declared = getattr(adapter, "metrics", None)
    return frozenset(declared) if declared is not None else None


# ---- data-quality warnings -----------------------------------------------------------------------
_SHOWN: set[str] = set()


def emit(lines: Iterable[str]) -> None:
    """Print each warning once per process to stderr as ``evalkit: warning: FILE:LINE: ...`` (no Python warning machinery)."""
    for line in lines:
        if line not in _SHOWN:
            _SHOWN.add(line)
            print(f"evalkit: warning: {line}", file=sys.stderr, flush=True)


def where(path: Path | str | None, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


class RowLike(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def line(self) -> int: ...


def quality_warnings(
    rows: Sequence[RowLike],
    texts: Mapping[str, Sequence[str]],
    key: Callable[[int], Hashable],
    target: Sequence[Hashable] | None,
    what: str = "text",
    target_name: str = "label",
) -> list[str]:
    """Data-quality notes on one split, one line per kind and file: blank texts, empty targets, duplicates, conflicts.

    ``texts`` maps each text column to its values; ``key(i)`` identifies row ``i``'s input
    (its text, or its pair); ``target`` is its label or score. A column in which every
    text is blank makes the score meaningless and is refused (DataError).
    """
    found: dict[tuple[Path, str], list[tuple[int, int | None]]] = defaultdict(list)
    for column, values in texts.items():
        blank = [i for i, value in enumerate(values) if not value.strip()]
        if blank and len(blank) == len(values):
            raise DataError(
                f"every text in column '{column}' is empty or whitespace; the score would be meaningless",
                path=rows[0].path,
                field=column,
            )
        for i in blank:
            found[(rows[i].path, f"empty or whitespace-only text in column '{column}'")].append((i, None))
    if target is not None:
        for i, value in enumerate(target):
            if isinstance(value, str) and not value.strip():
                found[(rows[i].path, f"empty {target_name}")].append((i, None))
    first: dict[Hashable, int] = {}
    for i in range(len(rows)):
        seen = first.setdefault(key(i), i)
        if seen == i:
            continue
        if target is None or target[i] == target[seen]:
            found[(rows[i].path, f"duplicate row (same {what} and {target_name} as an earlier row)")].append((i, seen))
        else:
            found[(rows[i].path, f"{what} repeated with a different {target_name}")].append((i, seen))
    out = []
    for (path, kind), items in found.items():
        shown = []
        for i, earlier_row in items[:3]:
            earlier = ""
            if earlier_row is not None:
                other = rows[earlier_row]
                earlier = f" (as line {other.line})" if other.path == path else f" (as {Path(other.path).name}:{other.line})"
            shown.append(f"line {rows[i].line}{earlier}")
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        count = f"{len(items)} rows" if len(items) > 1 else "1 row"
        out.append(f"{where(path, rows[items[0][0]].line)}: {kind}: {count}: {', '.join(shown)}{more}")
    return out
