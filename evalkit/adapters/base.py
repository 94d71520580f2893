"""The adapter seam: a task type's protocol for turning vectors into scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from evalkit.encoders.base import CorpusFitted, Encoder, Role
from evalkit.taskspec import TaskSpec


@dataclass(frozen=True)
class TaskOutcome:
    """What an adapter hands back: scores, and per-unit outcomes for intervals."""

    main_metric: str
    scores: Mapping[str, float | None]
    n_units: int
    units: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def main_score(self) -> float | None:
        return self.scores.get(self.main_metric)


class Adapter(Protocol):
    """Scores one encoder on one task split, following the field's protocol for the type."""

    task_type: ClassVar[str]
    main_metric: ClassVar[str]

    def validate(self, task: TaskSpec) -> None:
        """Check settings and data (raise DataError naming file, line, field) before any model loads."""
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


def check_settings(task: TaskSpec, allowed: Mapping[str, str]) -> None:
    """Reject unknown setting keys (typos would otherwise be silently ignored)."""
    from evalkit.errors import DataError

    for key in task.settings:
        if key not in allowed:
            import difflib

            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed)
            raise DataError(f"unknown setting for a '{task.type}' task", path=task.source, field=f"settings.{key}", hint=hint)
