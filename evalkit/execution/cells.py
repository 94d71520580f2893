"""A cell is one (encoder, task, split); evaluating it yields one CellResult.

Executors differ only in where cells run; what a cell does is defined once here.
"""

from __future__ import annotations

import functools
import hashlib
import math
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalkit.adapters import adapter_for
from evalkit.environment import environment
from evalkit.errors import EvalkitError
from evalkit.reading import verify_units
from evalkit.results.schema import CellResult, config_hash
from evalkit.spec import EncoderSpec
from evalkit.stats import cell_interval
from evalkit.taskspec import TaskSpec
from evalkit.throughput import MeteredEncoder

SEEDS = {"global": 0}


@dataclass(frozen=True)
class Cell:
    encoder: EncoderSpec
    task: TaskSpec
    split: str

    @property
    def label(self) -> str:
        return f"{self.encoder} × {self.task.name}/{self.split}"

    def config(self) -> dict[str, object]:
        """Everything that defines this cell's result; a stored result with another hash is redone."""
        from evalkit.encoders.objects import config_identity
        from evalkit.model_identity import spec_model_identity

        files = sorted({str(p) for group in self.task.files.values() for p in group})
        # a model folder edited in place, or an in-memory model changed since, is a new configuration
        model = config_identity(self.encoder) if self.encoder.backend == "obj" else spec_model_identity(self.encoder)
        return {
            "encoder": str(self.encoder),
            **({"model": model} if model else {}),
            "task": self.task.name,
            "split": self.split,
            "task_file": _file_digest(self.task.source) if self.task.source else "",
            "data": [_file_digest(Path(p)) for p in files],
            "seeds": SEEDS,
            **({"limit": self.task.limit} if self.task.limit is not None else {}),  # a subset is another cell (evalkit.subset)
            **({"protocol": self.task.protocol, "settings": _plain(self.task.settings)} if self.task.protocol else {}),
        }

    def config_hash(self) -> str:
        return config_hash(self.config())


@functools.lru_cache(maxsize=1024)
def _digest_cached(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return _digest_cached(str(path), stat.st_size, stat.st_mtime)


def plan(encoders: Sequence[EncoderSpec], tasks: Sequence[TaskSpec], split: str | None = None) -> list[Cell]:
    """Every encoder on every task (encoder-major, so each model loads once)."""
    return [Cell(e, t, split or t.split) for e in encoders for t in tasks]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def header(cell: Cell) -> dict[str, object]:
    """The fields every result of this cell has, whether it succeeds or fails."""
    try:
        metric = cell.task.main_score or adapter_for(cell.task.type).main_metric
    except EvalkitError:
        metric = cell.task.main_score or "main"
    return {
        "encoder": str(cell.encoder),
        "task": cell.task.name,
        "task_type": cell.task.type,
        "split": cell.split,
        "main_metric": metric,
        "config_hash": cell.config_hash(),
        "seeds": seeds_for(cell),
        **({"subset": subset_of(cell)} if cell.task.limit is not None else {}),
    }


def subset_of(cell: Cell) -> dict[str, object] | None:
    """The result's ``subset`` field (``--limit``): limit, seed and what the adapter counts as a unit."""
    from evalkit import subset

    try:
        unit = str(getattr(adapter_for(cell.task.type), "limit_unit", "units"))
    except EvalkitError:
        unit = "units"
    return subset.record(cell.task, unit)


def seeds_for(cell: Cell) -> dict[str, int]:
    """Every seed that shapes this cell's score: evalkit's global one, the task's (its setting or default), the spec's."""
    from evalkit.adapters.base import settings_model
    from evalkit.schemas.base import SEED_MAX

    seeds = dict(SEEDS)
    try:
        task_seed = getattr(cell.task.settings_as(settings_model(adapter_for(cell.task.type))), "seed", None)
    except EvalkitError:  # a task that no longer validates is reported by the cell itself
        task_seed = None
    if isinstance(task_seed, int) and not isinstance(task_seed, bool):
        seeds["task"] = task_seed
    value = cell.encoder.opts.get("seed")
    if value is not None and str(value).isdigit() and int(str(value)) <= SEED_MAX:
        seeds["encoder"] = int(str(value))
    return seeds


def check_task(task: TaskSpec, split: str) -> None:
    """Validate a task's data for ``split``, before any model loads (its file and settings were checked when it loaded).

    Bad input (a malformed file, a duplicate id, a score out of range, a training split
    that is the evaluated one) then stops the run with exit code 2 and no result files,
    instead of surfacing as one failed cell per encoder after minutes of model loading;
    failures left to ``evaluate_cell`` are the ones that only happen at run time (out
    of memory, a model that breaks). Data-quality warnings are printed here, once.
    """
    import inspect

    adapter = adapter_for(task.type)
    task.files_for(split)
    if task.limit is not None and not getattr(adapter, "limit_unit", None):
        raise EvalkitError(
            f"task type '{task.type}' cannot be run on a subset: its adapter declares no limit_unit",
            path=task.source,
            field="--limit",
            hint=f"run {task.name} without --limit",
        )
    try:
        inspect.signature(adapter.validate).bind(task, split)
    except TypeError:  # an adapter whose validate() takes only the task: it checks the default split; read ``split`` too
        adapter.validate(task)
        load = getattr(adapter, "load", None)
        if callable(load):
            try:
                inspect.signature(load).bind(task, split)
            except TypeError:  # a loader that needs more than (task, split): validate() is all we can ask of it
                return
            load(task, split)
        return
    adapter.validate(task, split)


def evaluate_cell(encoder: MeteredEncoder, cell: Cell) -> CellResult:
    """Score one cell; a failure becomes a 'failed' result with its error, not an exception.

    A main score that comes out undefined (NaN or None: every gold score equal, a
    constant similarity, a degenerate split) is a failure too, with the reason, so no
    ``ok`` result ever lacks a number. The adapter's data warnings go into the result.

    The global generators (``random``, NumPy, torch) are seeded for the cell, so the same
    run twice gives bit-identical scores, and the caller's states are put back after it.
    """
    import numpy  # noqa: F401  (seeded() seeds the generators of the libraries imported by then)

    from evalkit.context import seeded

    encoder.reset()
    with seeded(SEEDS["global"]):
        return _score_cell(encoder, cell)


def _score_cell(encoder: MeteredEncoder, cell: Cell) -> CellResult:
    base = {**header(cell), **identity(cell)}
    try:
        adapter = adapter_for(cell.task.type)
        outcome = adapter.evaluate(encoder, cell.task, cell.split)
    except Exception as exc:  # one bad cell must not stop the matrix
        # a forward pass it ran (which siblings of a pooling sweep may read) is kept with the failure: what it cost
        return failed(cell, exc, throughput=_spent(encoder))
    notes = [_writable(str(w)) for w in getattr(outcome, "warnings", ()) or ()]
    metric = str(base["main_metric"])
    scores = {str(k): _finite_or_none(v) for k, v in outcome.scores.items()}
    if metric not in scores:
        error = EvalkitError(f"task declares main_score '{metric}', which the adapter does not report")
        return failed(cell, error, warnings=notes)
    if scores[metric] is None:
        error = EvalkitError(
            f"the main score '{metric}' is undefined on {cell.task.name}/{cell.split}: the metric cannot be computed on this data "
            "(for example every gold score is equal, every similarity is the same, or a split holds a single class)",
            hint="fix the data; nothing is compared for this cell",
        )
        # its forward pass still ran (and siblings of a pooling sweep may have read it): keep what it cost
        return failed(cell, error, warnings=notes, scores=scores, throughput=encoder.reset().as_dict())
    throughput = encoder.reset()
    try:
        fields = {
            **base,
            "main_score": scores[metric],
            "scores": scores,
            "n_units": int(outcome.n_units),
            "units": dict(outcome.units),
            "details": dict(outcome.details),
            "ci": cell_interval(adapter, metric, cell.task.name, cell.split, outcome),
            "throughput": throughput.as_dict(),
            "environment": environment(),
            "encoder_fingerprint": dict(encoder.fingerprint()),
            "warnings": notes,
            "created_at": now(),
        }
        result = CellResult(**fields).sealed()
        try:
            verify_units(result)
        except EvalkitError as exc:  # the adapter's units cannot reproduce its score: keep the score, not a wrong interval
            notes = [*notes, f"per-unit outcomes stored without: {exc.message}; no interval, no paired test"]
            result = CellResult(**{**fields, "units": {}, "ci": {}, "warnings": notes})
    except Exception as exc:  # a non-finite or malformed value from an adapter or encoder
        return failed(cell, exc, warnings=notes)
    return result


def _spent(encoder: MeteredEncoder) -> dict[str, Any] | None:
    """What a failed cell's encoder had done (None when it encoded nothing or cannot say)."""
    try:
        spent = encoder.reset().as_dict()
    except Exception:  # the encoder that just failed: its failure is the cell's error, not this
        return None
    return spent if spent.get("forward_batches") or spent.get("texts") else None


def failed(
    cell: Cell,
    exc: BaseException,
    *,
    warnings: Sequence[str] = (),
    scores: Mapping[str, float | None] | None = None,
    throughput: Mapping[str, Any] | None = None,
) -> CellResult:
    """A 'failed' result: the error, the cell's identity, and (``scores``) any metrics that were defined, as details."""
    from evalkit.extras import missing_extra

    exc = missing_extra(exc) or exc  # a missing optional extra (onnxruntime, openvino): one line naming it
    message = exc.render() if isinstance(exc, EvalkitError) else f"{type(exc).__name__}: {exc}"
    detail = "" if isinstance(exc, EvalkitError) else traceback.format_exc(limit=8)
    message, detail = _writable(message), _writable(detail)  # an exception's text may hold lone surrogates
    details: dict[str, object] = {"traceback": detail} if detail else {}
    if scores:
        details["scores"] = {k: v for k, v in scores.items() if v is not None}
    return CellResult(
        **header(cell),
        **identity(cell),
        main_score=None,
        scores={},
        status="failed",
        error=message or type(exc).__name__,
        details=details,
        warnings=[_writable(str(w)) for w in warnings],
        throughput=dict(throughput or {}),
        environment=environment(),
        created_at=now(),
    )


def identity(cell: Cell) -> dict[str, str]:
    """What the gate compares between baseline and candidate: the task's protocol and its data, not the encoder.

    ``task_hash`` digests the task type, split, declared main score, settings and the
    task's seeds; ``data_hash`` the content of every data file the task declares, by
    role. Both leave out paths, comments and the encoder, so the same task on another
    machine hashes the same and a baseline recorded elsewhere still compares.
    """
    task = cell.task
    seeds = {k: v for k, v in seeds_for(cell).items() if k != "encoder"}
    protocol = {
        "type": task.type,
        "split": cell.split,
        "main_score": task.main_score,
        "settings": _plain(task.settings),
        "seeds": seeds,
        **({"limit": task.limit} if task.limit is not None else {}),
    }
    data = {role: [_file_digest(Path(p)) for p in paths] for role, paths in sorted(task.files.items())}
    return {"task_hash": config_hash(protocol), "data_hash": config_hash(data)}


def _plain(value: object) -> object:
    """Settings as JSON-able data with a stable order (TOML tables, tuples, pydantic models)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _writable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _finite_or_none(value: Any) -> float | None:
    """A score as a plain float; NaN, ±inf and None are all "undefined"."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
