"""The result file schema: typed, versioned, validated on every read.

Report and gate only ever see ``CellResult`` objects, so a hand-edited or
truncated file is rejected with the field that is wrong instead of skewing a table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import DataError

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed")


@dataclass(frozen=True)
class CellResult:
    """The outcome of scoring one encoder on one task split."""

    encoder: str
    task: str
    task_type: str
    split: str
    main_metric: str
    main_score: float | None
    scores: Mapping[str, float | None]
    config_hash: str
    created_at: str
    status: str = "ok"
    n_units: int = 0
    units: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    throughput: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    encoder_fingerprint: Mapping[str, str] = field(default_factory=dict)
    seeds: Mapping[str, int] = field(default_factory=dict)
    ci: Mapping[str, Any] = field(default_factory=dict)  # bootstrap interval of main_score (evalkit.stats)
    error: str | None = None
    origin: str = "evalkit"
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> CellResult:
        validate(data, path)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: Path) -> CellResult:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"result file is not valid JSON ({exc.msg})", path=path, line=exc.lineno) from None
        except UnicodeDecodeError:
            raise DataError("result file is not UTF-8 text", path=path) from None
        return cls.from_dict(data, path)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def comparable(self) -> dict[str, Any]:
        """The fields two runs of the same cell must agree on: all but when, how fast and on which process.

        A resumed, a Ray and an uninterrupted run write the same result in this sense;
        ``created_at``, ``throughput`` and ``environment`` (torch thread count differs
        in a Ray worker) are measurements of the run, not of the encoder.
        """
        data = asdict(self)
        for key in VOLATILE_FIELDS:
            data.pop(key, None)
        return data


VOLATILE_FIELDS = ("created_at", "throughput", "environment")


_TYPES: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "encoder": (str,),
    "task": (str,),
    "task_type": (str,),
    "split": (str,),
    "main_metric": (str,),
    "main_score": (int, float, type(None)),
    "scores": (dict,),
    "config_hash": (str,),
    "created_at": (str,),
    "status": (str,),
    "n_units": (int,),
    "units": (dict,),
    "details": (dict,),
    "throughput": (dict,),
    "environment": (dict,),
    "encoder_fingerprint": (dict,),
    "seeds": (dict,),
    "ci": (dict,),
    "error": (str, type(None)),
    "origin": (str,),
}
REQUIRED = ("schema_version", "encoder", "task", "split", "main_metric", "main_score", "scores", "status")


def validate(data: Any, path: Path | None = None) -> None:
    """Raise DataError naming the first wrong field."""
    if not isinstance(data, dict):
        raise DataError(f"result must be a JSON object, got {type(data).__name__}", path=path)
    for key in REQUIRED:
        if key not in data:
            raise DataError("required field is missing", path=path, field=key)
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise DataError(
            f"unknown schema_version {version!r}; this evalkit reads version {SCHEMA_VERSION}",
            path=path,
            field="schema_version",
            hint="re-run the evaluation or upgrade evalkit",
        )
    for key, types in _TYPES.items():
        if key in data and (not isinstance(data[key], types) or (isinstance(data[key], bool) and bool not in types)):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise DataError(f"must be {names}, got {type(data[key]).__name__}", path=path, field=key)
    if data["status"] not in STATUSES:
        raise DataError(f"must be one of {', '.join(STATUSES)}", path=path, field="status")
    for name, value in data["scores"].items():
        if not isinstance(value, int | float | type(None)) or isinstance(value, bool):
            raise DataError(f"score must be a number or null, got {value!r}", path=path, field=f"scores.{name}")
    if data["status"] == "ok" and data["main_metric"] not in data["scores"]:
        raise DataError(f"main metric '{data['main_metric']}' is not among the scores", path=path, field="main_metric")


def config_hash(payload: Mapping[str, Any]) -> str:
    """A stable digest of everything that defines a cell's configuration."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
