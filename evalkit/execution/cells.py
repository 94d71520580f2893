"""A cell is one (encoder, task, split); evaluating it yields one CellResult.

Executors differ only in where cells run; what a cell does is defined once here.
"""

from __future__ import annotations

import functools
import hashlib
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from evalkit.adapters import adapter_for
from evalkit.environment import environment
from evalkit.errors import EvalkitError
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
        files = sorted({str(p) for group in self.task.files.values() for p in group})
        return {
            "encoder": str(self.encoder),
            "task": self.task.name,
            "split": self.split,
            "task_file": _file_digest(self.task.source) if self.task.source else "",
            "data": [_file_digest(Path(p)) for p in files],
            "seeds": SEEDS,
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
    }


def seeds_for(cell: Cell) -> dict[str, int]:
    """Every seed that shapes this cell's score: evalkit's global one, plus any the task or spec sets."""
    seeds = dict(SEEDS)
    for name, value in (("task", cell.task.setting("seed")), ("encoder", cell.encoder.opts.get("seed"))):
        if value is not None and str(value).lstrip("-").isdigit():
            seeds[name] = int(value)
    return seeds


def check_task(task: TaskSpec, split: str) -> None:
    """Validate a task's settings and read its data for ``split``, before any model loads.

    Bad input (a malformed file, a duplicate id, a score out of range) then stops the
    run with exit code 2 and no result files, instead of surfacing as one failed cell
    per encoder after minutes of model loading; failures left to ``evaluate_cell``
    are the ones that only happen at run time (out of memory, a model that breaks).
    """
    import inspect

    adapter = adapter_for(task.type)
    adapter.validate(task)  # settings, and (for most adapters) the data of the default split
    task.files_for(split)
    load = getattr(adapter, "load", None)
    if not callable(load):
        return
    try:
        inspect.signature(load).bind(task, split)
    except TypeError:  # a loader that needs more than (task, split): validate() is all we can ask of it
        return
    load(task, split)


def seed_everything(seed: int) -> None:
    """Seed every generator a cell may touch, so the same run twice gives bit-identical scores."""
    import random
    import sys

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def evaluate_cell(encoder: MeteredEncoder, cell: Cell) -> CellResult:
    """Score one cell; a failure becomes a 'failed' result with its error, not an exception."""
    encoder.reset()
    seed_everything(SEEDS["global"])
    base = header(cell)
    try:
        adapter = adapter_for(cell.task.type)
        outcome = adapter.evaluate(encoder, cell.task, cell.split)
    except Exception as exc:  # one bad cell must not stop the matrix
        return failed(cell, exc)
    metric = str(base["main_metric"])
    if metric not in outcome.scores:
        return failed(cell, EvalkitError(f"task declares main_score '{metric}', which the adapter does not report"))
    throughput = encoder.reset()
    return CellResult(
        **base,  # type: ignore[arg-type]
        main_score=outcome.scores[metric],
        scores=dict(outcome.scores),
        n_units=outcome.n_units,
        units=dict(outcome.units),
        details=dict(outcome.details),
        ci=cell_interval(adapter, metric, cell.task.name, cell.split, outcome),
        throughput=throughput.as_dict(),
        environment=environment(),
        encoder_fingerprint=encoder.fingerprint(),
        created_at=now(),
    )


def failed(cell: Cell, exc: BaseException) -> CellResult:
    message = exc.render() if isinstance(exc, EvalkitError) else f"{type(exc).__name__}: {exc}"
    detail = "" if isinstance(exc, EvalkitError) else traceback.format_exc(limit=8)
    return CellResult(
        **header(cell),  # type: ignore[arg-type]
        main_score=None,
        scores={},
        status="failed",
        error=message,
        details={"traceback": detail} if detail else {},
        environment=environment(),
        created_at=now(),
    )
