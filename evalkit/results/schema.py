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

from evalkit.schemas.result import SCHEMA_VERSION, SCORE_TOLERANCE, VOLATILE_FIELDS, CellResult, check_units

STATUSES = ("ok", "failed")

__all__ = ["SCHEMA_VERSION", "SCORE_TOLERANCE", "STATUSES", "VOLATILE_FIELDS", "CellResult", "check_units", "config_hash"]


def config_hash(payload: Mapping[str, Any]) -> str:
    """A stable digest of everything that defines a cell's configuration."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
