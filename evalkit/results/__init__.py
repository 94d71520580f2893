"""Results: one validated JSON file per (encoder, task, split) cell, written atomically."""

from evalkit.results.schema import SCHEMA_VERSION, CellResult
from evalkit.results.store import ResultStore

__all__ = ["SCHEMA_VERSION", "CellResult", "ResultStore"]
