"""MTEB interoperability: evalkit cells ⇄ MTEB result files (``TaskResult`` layout).

MTEB keeps one JSON per (model, revision, task) at
``<model name, '/' → '__'>/<revision>/<TaskName>.json``::

    {"dataset_revision": ..., "task_name": "STSBenchmark", "mteb_version": ..., "evaluation_time": ...,
     "kg_co2_emissions": null, "scores": {"test": [{"main_score": 0.82, "hf_subset": "default",
     "languages": ["eng-Latn"], "cosine_spearman": 0.82, ...}]}}

Export writes that layout (validated by MTEB's own ``TaskResult`` when mteb is
installed); import reads it, published files included, into CellResults with
``origin = "mteb-import"`` and encoder ``mteb:<model name>``, so imported rows are
marked as such in every report and never pass for evalkit's own runs. Imported
rows carry no per-unit outcomes, hence no intervals or ranks.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field

from evalkit.data import read_json_file
from evalkit.errors import DataError, EvalkitError
from evalkit.results.schema import CellResult, config_hash
from evalkit.results.store import atomic_write
from evalkit.schemas.base import Finite, Name, Schema, Text, parse
from evalkit.spec import EncoderSpec

ORIGIN = "mteb-import"
BACKEND = "mteb"
NO_REVISION = "no_revision_available"
TYPE_SUFFIXES = {"classification": "Classification", "pair_classification": "PairClassification", "retrieval": "Retrieval"}
MTEB_TYPES = {"STS": "sts", "Classification": "classification", "PairClassification": "pair_classification", "Retrieval": "retrieval"}


def _mteb_task(name: str) -> Any | None:
    """MTEB's task object for a name, or None (mteb not installed, or no such task)."""
    try:
        import mteb
    except ImportError:
        return None
    try:
        return mteb.get_task(name)
    except Exception:  # KeyError / ValueError across mteb versions
        return None


def preferred_subset(subsets: Sequence[str]) -> str | None:
    """evalkit's tasks are English: MTEB's ``default`` subset, else its English one; None = all (their mean)."""
    for name in ("default", "en", "en-en", "eng"):
        if name in subsets:
            return name
    return None


def mteb_name(task: str, task_type: str) -> str:
    """The MTEB task an evalkit task corresponds to (same name, or name + type suffix; ``mteb:NAME[:SUBSET]`` is NAME)."""
    if task[:5].lower() == "mteb:":
        return task[5:].partition(":")[0]
    for candidate in (task, task + TYPE_SUFFIXES.get(task_type, "")):
        if _mteb_task(candidate) is not None:
            return candidate
    return task


def model_name(encoder: str) -> str:
    """The MTEB model name of an evalkit spec: imported rows get theirs back; others are ``evalkit/<spec>``."""
    spec = EncoderSpec.parse(encoder)
    return spec.model if spec.backend == BACKEND else f"evalkit/{encoder}"


def _path_part(text: str) -> str:
    """MTEB's ``model_name_as_path`` plus what a file system needs for a spec (``?``, ``:``, ``&``, ``=``)."""
    out = text.replace("/", "__").replace(" ", "_")
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in out)


def to_task_result(result: CellResult) -> tuple[str, dict[str, Any]]:
    """One cell as an MTEB ``TaskResult`` dict (and the MTEB task name)."""
    name = mteb_name(result.task, result.task_type)
    task = _mteb_task(name)
    scores: dict[str, float] = {k: v for k, v in result.scores.items() if v is not None}
    scores["main_score"] = float(result.main_score or 0.0)
    seconds = result.throughput.get("encode_seconds")
    if task is not None:
        from mteb.results import TaskResult

        subsets = list(task.metadata.hf_subsets_to_langscripts)
        named = result.task[5:].partition(":")[2] if result.task[:5].lower() == "mteb:" else ""  # mteb:NAME:SUBSET ran SUBSET
        subset = named if named in subsets else preferred_subset(subsets) or "default"
        tr = TaskResult.from_task_results(task, {result.split: {subset: scores}}, evaluation_time=seconds or 0.0)
        data = tr.to_dict()
        data["date"] = None
    else:
        data = {
            "dataset_revision": f"evalkit:{result.config_hash}",
            "task_name": name,
            "mteb_version": None,
            "scores": {result.split: [{**scores, "hf_subset": "default", "languages": []}]},
            "evaluation_time": seconds,
            "kg_co2_emissions": None,
        }
    data["evalkit"] = {"encoder": result.encoder, "task": result.task, "origin": result.origin, "n_units": result.n_units}
    return name, data


def export_results(results: Sequence[CellResult], folder: Path) -> list[Path]:
    """Write every successful cell as ``folder/<model>/<revision>/<Task>.json`` plus a ``model_meta.json``."""
    written = []
    subsets = [r for r in results if r.ok and r.subset is not None]
    if subsets:  # an MTEB result file has no notion of a subset: it would read as the full task's score
        print(
            f"evalkit: warning: not exported: {len(subsets)} subset result(s) (--limit); MTEB files hold full-task scores", file=sys.stderr
        )
    for result in results:
        if not result.ok or result.main_score is None or result.subset is not None:
            continue
        name, data = to_task_result(result)
        revision = str(result.details.get("model_revision") or "") or _revision(result)
        target = folder / _path_part(model_name(result.encoder)) / _path_part(revision)
        atomic_write(target / f"{_path_part(name)}.json", json.dumps(data, indent=2, default=str, allow_nan=False) + "\n")
        meta = {"name": model_name(result.encoder), "revision": revision, "framework": ["evalkit"], "evalkit_spec": result.encoder}
        atomic_write(target / "model_meta.json", json.dumps(meta, indent=2) + "\n")
        written.append(target / f"{_path_part(name)}.json")
    return written


def _revision(result: CellResult) -> str:
    weights = result.encoder_fingerprint.get("weights", "")
    return weights.split(":", 1)[-1][:40] if weights else NO_REVISION


# --- import --------------------------------------------------------------------------------------

MAX_MTEB_FILE_BYTES = 64 << 20
"""An MTEB result file is a few KiB (a few hundred KiB for many languages)."""
MAX_NAME = 200
"""Longest task or model name accepted from a file (names become file names)."""
EPOCH_MAX = 253402300799
"""``date`` as a Unix time must fall in years 1970..9999 (what a datetime can hold)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_controls(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


MtebName = Annotated[Name, AfterValidator(_no_controls), Field(max_length=MAX_NAME)]


def _iso_date(value: Any) -> str | None:
    """MTEB's ``date`` (a Unix time; some tools write ISO text) as ISO 8601 UTC; anything else is refused."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value <= EPOCH_MAX:  # NaN fails this too
            raise ValueError(f"must be a Unix time from 1970 to 9999, got {value!r:.40}")
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    if isinstance(value, str) and len(value) <= 64:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat(timespec="seconds")
    raise ValueError(f"must be a Unix time or an ISO 8601 date, got {type(value).__name__} {str(value)[:40]!r}")


class _Lenient(Schema):
    """MTEB's files carry more keys than evalkit reads (and add some in new versions): those are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)


class MtebTaskResult(_Lenient):
    """The part of an MTEB ``TaskResult`` file that import reads; everything else is ignored, not trusted."""

    task_name: MtebName
    scores: dict[Text, Any]
    dataset_revision: Text | None = None
    mteb_version: Text | None = None
    evaluation_time: Annotated[Finite, Field(ge=0)] | None = None
    date: Annotated[Any, AfterValidator(_iso_date)] = None


class MtebModelMeta(_Lenient):
    """``model_meta.json`` beside the task files: the model's name and revision."""

    name: Annotated[Text, AfterValidator(_no_controls), Field(max_length=MAX_NAME)] | None = None
    revision: Annotated[Text, AfterValidator(_no_controls), Field(max_length=MAX_NAME)] | None = None


def result_files(paths: Iterable[Path]) -> list[Path]:
    """MTEB task result files under the given files or folders (``model_meta.json`` is not one)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json") if p.name != "model_meta.json" and not p.is_dir())
        elif path.exists():
            files.append(path)  # a FIFO or a device is refused when read, with its own message
        else:
            raise DataError("no such file or folder", path=path)
    if not files:
        raise DataError("no MTEB result files found", path=", ".join(map(str, paths)))
    return files


def _model_from_path(path: Path) -> tuple[str, str]:
    """``<model as path>/<revision>/<Task>.json`` → (model name, revision); model_meta.json wins when present."""
    meta_path = path.parent / "model_meta.json"
    if meta_path.exists():
        meta = parse(MtebModelMeta, _read_json(meta_path, "MTEB model_meta"), path=meta_path)
        if meta.name and meta.name.strip():
            return meta.name, meta.revision or NO_REVISION
    if path.parent.parent != path.parent and path.parent.parent.name:
        return path.parent.parent.name.replace("__", "/"), path.parent.name
    return path.parent.name.replace("__", "/") or "unknown", NO_REVISION


def _read_json(path: Path, kind: str) -> Any:
    """A JSON object from a regular, bounded, UTF-8 file; NaN is allowed here and refused field by field."""
    data = read_json_file(path, kind, max_bytes=MAX_MTEB_FILE_BYTES, finite=False)
    if not isinstance(data, dict):
        raise DataError(f"{kind} file must be a JSON object, got {type(data).__name__}", path=path)
    return data


def _numbers(entry: dict[str, Any], path: Path, where: str) -> dict[str, float]:
    """The numeric scores of a subset entry (MTEB also stores lists, e.g. ``"pearson": [r, p]``, and metadata).

    A non-finite score is refused, not dropped: a NaN ``main_score`` or metric is a
    broken evaluation, and importing the rest would pass for a complete one.
    """
    out = {}
    for key, value in entry.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer of 400 digits
                number = math.inf
            if not math.isfinite(number):
                raise DataError(f"is not a finite number, got {value!r:.30}", path=path, field=f"{where}.{key}")
            out[key] = number
    return out


def _evalkit_task(name: str) -> tuple[str, str, str] | None:
    """(evalkit task name, type, main metric) for an MTEB task name, if evalkit has that task."""
    from evalkit.adapters import ADAPTERS, adapter_for
    from evalkit.taskspec import TaskIndex

    index = TaskIndex()
    names = {n.lower(): n for n in index.names()}
    candidates = [name] + [name[: -len(s)] for s in TYPE_SUFFIXES.values() if name.endswith(s)]
    for candidate in candidates:
        if candidate.lower() in names:
            spec = index.get(names[candidate.lower()])
            metric = spec.main_score or (adapter_for(spec.type).main_metric if spec.type in ADAPTERS else "main_score")
            return spec.name, spec.type, metric
    return None


def read_mteb_file(path: Path, *, split: str = "test", subset: str | None = None, all_tasks: bool = False) -> CellResult | None:
    """One MTEB result file as a CellResult (None: a task evalkit does not have, unless ``all_tasks``)."""
    raw = _read_json(path, "MTEB result")
    if not isinstance(raw.get("task_name"), str) or not isinstance(raw.get("scores"), dict):
        hint = "files from mteb < 1.11 use another layout; load them with mteb and save them again" if "mteb_dataset_name" in raw else None
        raise DataError("not an MTEB TaskResult (needs task_name and scores)", path=path, hint=hint)
    data = parse(MtebTaskResult, raw, path=path)
    task_name = data.task_name
    known = _evalkit_task(task_name)
    if known is None and not all_tasks:
        return None
    if split not in data.scores:
        splits = ", ".join(repr(s)[1:-1] for s in list(data.scores)[:20])
        raise DataError(f"has no '{split}' split; it has: {splits or 'none'}", path=path, field="scores")
    entries = data.scores[split]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise DataError("must be a non-empty list of score objects", path=path, field=f"scores.{split}")
    indexed = list(enumerate(entries))
    if subset is not None:
        indexed = [(i, e) for i, e in indexed if e.get("hf_subset") == subset]
        if not indexed:
            raise DataError(f"has no hf_subset '{subset}'", path=path, field=f"scores.{split}")
    elif len(indexed) > 1:
        chosen = preferred_subset([str(e.get("hf_subset")) for _, e in indexed])
        indexed = [(i, e) for i, e in indexed if chosen is None or e.get("hf_subset") == chosen]
    numbers = [_numbers(e, path, f"scores.{split}.{i}") for i, e in indexed]
    missing = next((i for (i, _), n in zip(indexed, numbers, strict=True) if "main_score" not in n), None)
    if missing is not None:
        raise DataError("a score object has no numeric main_score", path=path, field=f"scores.{split}.{missing}")
    # several subsets (languages): their mean, as MTEB's own get_score does
    keys = set.intersection(*(set(n) for n in numbers))
    scores = {k: math.fsum(n[k] for n in numbers) / len(numbers) for k in sorted(keys)}
    if not all(math.isfinite(v) for v in scores.values()):  # a mean of huge finite values can overflow
        raise DataError("scores are too large to average", path=path, field=f"scores.{split}")
    if known is not None:
        task, task_type, metric = known
    else:
        mteb_task = _mteb_task(task_name)
        task = task_name
        task_type = MTEB_TYPES.get(getattr(getattr(mteb_task, "metadata", None), "type", ""), "mteb")
        metric = "main_score"
    if metric not in scores:
        metric = "main_score"
    model, revision = _model_from_path(path)
    short = revision[:10] if revision and revision != NO_REVISION else ""
    short = "".join(c for c in short if c.isalnum() or c in "-_.")
    model = "".join("_" if c in "?&=#%" or c.isspace() or not c.isprintable() else c for c in model)  # a model name, not spec options
    encoder = f"{BACKEND}:{model}" + (f"?revision={short}" if short else "")
    try:
        spec = str(EncoderSpec.parse(encoder))
    except EvalkitError as exc:
        raise DataError(f"the model name {model!r:.80} does not make an encoder spec ({exc.message})", path=path) from None
    try:
        return CellResult(
            encoder=spec,
            task=task,
            task_type=task_type,
            split=split,
            main_metric=metric,
            main_score=scores[metric],
            scores=scores,
            config_hash=config_hash({"mteb_file": json.dumps(raw, sort_keys=True, default=str)}),
            created_at=data.date or datetime.now(UTC).isoformat(timespec="seconds"),
            origin=ORIGIN,
            details={
                "source": str(path),
                "mteb_task": task_name,
                "mteb_version": data.mteb_version,
                "dataset_revision": data.dataset_revision,
                "model_revision": revision,
                "hf_subsets": [e.get("hf_subset") if isinstance(e.get("hf_subset"), str) else None for _, e in indexed],
            },
            throughput={} if data.evaluation_time is None else {"evaluation_seconds": data.evaluation_time},
        )
    except EvalkitError as exc:
        raise DataError(exc.message, path=path, field=exc.field, hint=exc.hint) from None


def import_files(
    paths: Sequence[Path], *, split: str = "test", subset: str | None = None, all_tasks: bool = False
) -> tuple[list[CellResult], list[Path]]:
    """Imported cells, and the files skipped because evalkit has no such task; every file is read before any is written."""
    imported, skipped = [], []
    for path in result_files(paths):
        result = read_mteb_file(path, split=split, subset=subset, all_tasks=all_tasks)
        if result is None:
            skipped.append(path)
        else:
            CellResult.from_dict(json.loads(result.to_json()), path)  # what the store will read back must validate
            imported.append(result)
    return imported, skipped
