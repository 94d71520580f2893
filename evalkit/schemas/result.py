"""A result file (one cell: encoder × task × split) as one typed model, checked on every read and every write.

Report, gate and resume only ever see :class:`CellResult` objects, so a hand-edited,
truncated or tampered file is refused with the field that is wrong instead of
skewing a table or passing a gate. What is checked here, beyond the types:

* every number anywhere in the file is finite (JSON ``NaN``/``Infinity``/``1e999``
  are refused by the reader, and ``throughput``/``details``/... are walked here);
* ``status = "ok"`` has a defined ``main_score`` equal to ``scores[main_metric]``:
  a cell whose score is undefined (all gold scores equal, a degenerate split) is
  recorded as ``failed`` with the reason in ``error``, never ``ok`` with ``null``;
* ``status = "failed"`` has no ``main_score`` and says why in ``error``.

That the main score agrees with the stored per-unit outcomes needs the task type's
adapter, so it is checked a layer up, by :func:`evalkit.reading.verify_units`, whenever
results are read for a report, the gate or a resume.

The stored interval (``ci``) is sealed: ``ci.digest`` is a SHA-256 over the main score,
the unit count, the per-unit outcomes and the interval itself, written by the run that
drew it (:meth:`CellResult.sealed`). A ``ci`` whose digest disagrees is refused like any
other edited field; one without a digest (hand-written, or older files) is not trusted:
:meth:`CellResult.read` drops it and readers redraw it from the units.

Schema version 1 still: ``task_hash``, ``data_hash``, ``warnings`` and ``ci.digest`` are
new, optional fields, and files written before them read as before (the gate then says
it cannot verify the data identity).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from evalkit.errors import DataError
from evalkit.schemas.base import Finite, Name, Schema, Text, error_from, parse

SCHEMA_VERSION = 1
MAX_DEPTH = 64
"""Deepest nesting inside a free-form field (``details``, ``units``, ...); evalkit writes about four levels."""
REQUIRED_IN_FILE = ("schema_version", "status")
"""Fields with a default for code that builds a result, which a file must still state."""
VOLATILE_FIELDS = ("created_at", "throughput", "environment")
"""Measurements of the run, not of the encoder: two runs of one cell may differ here and only here."""
SCORE_TOLERANCE = 1e-5
"""How far a main score may sit from the one recomputed from the stored per-unit outcomes.

Units are stored rounded (similarities to 6-7 decimals, which can merge near-ties),
so the recomputation differs by up to ~1e-7 on real runs; 1e-5 is 0.001 points,
a hundred times below the smallest drop a gate rule would allow.
"""


def ci_digest(main_score: Any, n_units: Any, units: Any, ci: dict[str, Any]) -> str:
    """SHA-256 of what an interval is a function of, and of the interval (its ``digest`` key left out)."""
    body = {k: v for k, v in ci.items() if k != "digest"}
    payload = json.dumps([main_score, n_units, units, body], sort_keys=True, ensure_ascii=False, allow_nan=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _check_tree(value: Any) -> None:
    """Finite numbers and bounded nesting inside a free-form field (iterative: no document exhausts the stack)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, list) and set(map(type, item)) == {float} and all(map(math.isfinite, item)):
                continue  # per-unit outcomes (1e6 floats): checked at C speed; a list with a bad number is walked below to name it
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(child, dict | list | tuple | float):
                    stack.append((child, f"{where}.{key}" if where else str(key), depth + 1))
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"holds a number that is not finite ({item}) at '{where}'")


class Subset(Schema):
    """A result scored on a quick subset (``evalkit run --limit N``, :mod:`evalkit.subset`): never a full result."""

    limit: int = Field(ge=1, description="at most this many units per task")
    seed: int = Field(ge=0, description="seed of the draw")
    unit: Name = Field(description="what a unit is for this task type (pairs, examples, queries, ...)")


class CellResult(Schema):
    """The outcome of scoring one encoder on one task split.

    Constructing one validates it like a file read does; a violation raises one
    :class:`~evalkit.errors.DataError` naming the field (never a pydantic traceback).
    """

    schema_version: int = Field(default=SCHEMA_VERSION, description="version of this layout; readers refuse versions they do not know")
    encoder: Name = Field(description="canonical encoder spec")
    task: Name
    task_type: Name
    split: Name
    status: Literal["ok", "failed"] = "ok"
    scores: dict[Text, Finite | None] = Field(description="every metric the adapter reports (None: undefined on this data)")
    main_metric: Name
    main_score: Finite | None = Field(description="scores[main_metric]; None exactly when status is 'failed'")
    error: Text | None = Field(default=None, validate_default=True, description="why a failed cell failed")
    config_hash: Text = Field(description="digest of everything that defines the cell (encoder, task file, data, seeds): resume key")
    created_at: Text
    n_units: int = Field(default=0, ge=0, description="units the main score is a function of (pairs, test examples, queries)")
    units: dict[Text, Any] = Field(default_factory=dict, description="per-unit outcomes: intervals, paired tests, the main-score check")
    details: dict[Text, Any] = Field(default_factory=dict)
    throughput: dict[Text, Any] = Field(default_factory=dict)
    environment: dict[Text, Any] = Field(default_factory=dict)
    encoder_fingerprint: dict[Text, Any] = Field(default_factory=dict)
    seeds: dict[Text, int] = Field(default_factory=dict)
    ci: dict[Text, Any] = Field(default_factory=dict, description="bootstrap interval of main_score (evalkit.stats)")
    origin: Text = "evalkit"
    task_hash: Text | None = Field(default=None, description="digest of the task's protocol (type, split, settings, main score, seeds)")
    data_hash: Text | None = Field(default=None, description="digest of the content of every data file of the task")
    warnings: list[Text] = Field(default_factory=list, description="data problems the adapter noticed (empty texts, duplicates, ...)")
    subset: Subset | None = Field(default=None, description="set when the cell scored a seeded subset (--limit), not the full task")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise error_from(exc, type(self)) from None

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unknown version; re-run the cell or upgrade evalkit (this one reads version {SCHEMA_VERSION})")
        return value

    @field_validator("main_metric")
    @classmethod
    def _metric_is_scored(cls, value: str, info: ValidationInfo) -> str:
        scores = info.data.get("scores")
        if info.data.get("status") == "ok" and scores is not None and value not in scores:
            raise ValueError("main metric is not among the scores")
        return value

    @field_validator("main_score")
    @classmethod
    def _main_score_matches(cls, value: float | None, info: ValidationInfo) -> float | None:
        status, scores, metric = info.data.get("status"), info.data.get("scores"), info.data.get("main_metric")
        if status == "failed" and value is not None:
            raise ValueError("a failed cell has no main score")
        if status == "ok":
            if value is None:
                raise ValueError("an 'ok' cell needs a defined main score (an undefined one is recorded as a failed cell)")
            if scores is not None and metric in scores and scores[metric] != value:
                raise ValueError(f"main score is not scores.{metric} ({scores[metric]!r})")
        return value

    @field_validator("error")
    @classmethod
    def _failure_says_why(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("status") == "failed" and not (value or "").strip():
            raise ValueError("a failed cell must say why in 'error'")
        return value

    @field_validator("units", "details", "throughput", "environment", "encoder_fingerprint", "ci")
    @classmethod
    def _finite_and_shallow(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_tree(value)
        return value

    @field_validator("ci")
    @classmethod
    def _ci_matches_its_digest(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """An edited interval (or units, or main score under a sealed interval) is refused, not displayed."""
        if "digest" in value:
            expected = ci_digest(info.data.get("main_score"), info.data.get("n_units"), info.data.get("units"), value)
            if value["digest"] != expected:
                raise ValueError("the interval does not match its digest (the file was edited or is corrupt); re-run this cell")
        return value

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def ci_sealed(self) -> bool:
        """Whether ``ci`` carries the digest of the run that drew it (checked when the result was built)."""
        return "digest" in self.ci

    def sealed(self) -> CellResult:
        """This result with its interval sealed (what a run writes); unchanged when there is no interval."""
        if not self.ci or "low" not in self.ci:
            return self
        ci = {**self.ci, "digest": ci_digest(self.main_score, self.n_units, self.units, self.ci)}
        return self.model_copy(update={"ci": ci})  # only the digest of fields validated already: no second pass

    def replace(self, **changes: Any) -> CellResult:
        """A copy with ``changes``, validated like any other result (``dataclasses.replace`` for this model)."""
        return type(self)(**{**dict(self), **changes})

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"

    def comparable(self) -> dict[str, Any]:
        """The fields two runs of the same cell must agree on: all but when, how fast and on which process.

        A resumed, a Ray and an uninterrupted run write the same result in this sense;
        ``created_at``, ``throughput`` and ``environment`` (torch thread count differs
        in a Ray worker) are measurements of the run, not of the encoder.
        """
        return self.model_dump(exclude=set(VOLATILE_FIELDS))

    @classmethod
    def from_dict(cls, data: Any, path: Path | str | None = None) -> CellResult:
        """A result from parsed JSON, validated by the schema (``evalkit.reading`` also checks it against its units)."""
        if not isinstance(data, dict):
            raise DataError(f"result must be a JSON object, got {type(data).__name__}", path=path)
        for key in REQUIRED_IN_FILE:
            if key not in data:
                raise DataError("required field is missing", path=path, field=key)
        try:
            result = parse(cls, data, path=path)
        except DataError as exc:  # model_validate runs __init__, whose error has no path yet
            if exc.path is not None or path is None:
                raise
            raise DataError(exc.message, path=path, line=exc.line, field=exc.field, hint=exc.hint) from None
        return result

    @classmethod
    def read(cls, path: Path | str) -> CellResult:
        """A result file: a regular, bounded, UTF-8 (BOM dropped), finite, shallow JSON object; else one DataError."""
        from evalkit.data import read_json_file

        result = cls.from_dict(read_json_file(path, "result"), path)
        return result.replace(ci={}) if result.ci and not result.ci_sealed else result  # unsealed: redrawn from the units
