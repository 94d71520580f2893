"""The result file schema: typed, versioned, validated on every read.

The model itself is :class:`evalkit.schemas.result.CellResult` (the one validation
layer); this module keeps the names the rest of evalkit imports, and the digest
that keys a cell's configuration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from evalkit.schemas.result import SCHEMA_VERSION, SCORE_TOLERANCE, VOLATILE_FIELDS, CellResult

STATUSES = ("ok", "failed")

__all__ = [
    "BENCH_TASK_TYPE",
    "SCHEMA_VERSION",
    "SCORE_TOLERANCE",
    "STATUSES",
    "VOLATILE_FIELDS",
    "CellResult",
    "column_of",
    "config_hash",
    "is_bench",
]


def config_hash(payload: Mapping[str, Any]) -> str:
    """A stable digest of everything that defines a cell's configuration."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def column_of(result: CellResult) -> str:
    """Task column label: the task, with the split when it is not the usual test split, and ``(--limit N)`` for a subset."""
    name = result.task if result.split == "test" else f"{result.task}/{result.split}"
    return name if result.subset is None else f"{name} (--limit {result.subset.limit})"


BENCH_TASK_TYPE = "bench"  # the record kind of `evalkit bench` rows: throughput on a fixed sample, not a quality cell


def is_bench(result: Any) -> bool:
    """Whether a CellResult is a throughput row (reports keep these out of quality tables)."""
    return getattr(result, "task_type", None) == BENCH_TASK_TYPE
