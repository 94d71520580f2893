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
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalkit.errors import DataError
from evalkit.results.schema import CellResult, config_hash
from evalkit.results.store import atomic_write
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
    """The MTEB task an evalkit task corresponds to (same name, or name + type suffix)."""
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

        subset = preferred_subset(list(task.metadata.hf_subsets_to_langscripts)) or "default"
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
    for result in results:
        if not result.ok or result.main_score is None:
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


def result_files(paths: Iterable[Path]) -> list[Path]:
    """MTEB task result files under the given files or folders (``model_meta.json`` is not one)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json") if p.name != "model_meta.json")
        elif path.is_file():
            files.append(path)
        else:
            raise DataError("no such file or folder", path=path)
    if not files:
        raise DataError("no MTEB result files found", path=", ".join(map(str, paths)))
    return files


def _model_from_path(path: Path) -> tuple[str, str]:
    """``<model as path>/<revision>/<Task>.json`` → (model name, revision); model_meta.json wins when present."""
    meta = path.parent / "model_meta.json"
    if meta.is_file():
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            if isinstance(data.get("name"), str) and data["name"]:
                return data["name"], str(data.get("revision") or NO_REVISION)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            pass
    if path.parent.parent != path.parent and path.parent.parent.name:
        return path.parent.parent.name.replace("__", "/"), path.parent.name
    return path.parent.name.replace("__", "/") or "unknown", NO_REVISION


def _numbers(entry: dict[str, Any]) -> dict[str, float]:
    """The numeric scores of a subset entry (MTEB also stores lists, e.g. ``"pearson": [r, p]``, and metadata)."""
    out = {}
    for key, value in entry.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
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
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"MTEB result file is not valid JSON ({exc.msg})", path=path, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise DataError("MTEB result file is not UTF-8 text", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("task_name"), str) or not isinstance(data.get("scores"), dict):
        hint = "files from mteb < 1.11 use another layout; load them with mteb and save them again" if "mteb_dataset_name" in data else None
        raise DataError("not an MTEB TaskResult (needs task_name and scores)", path=path, hint=hint)
    task_name = data["task_name"]
    known = _evalkit_task(task_name)
    if known is None and not all_tasks:
        return None
    if split not in data["scores"]:
        raise DataError(f"has no '{split}' split; it has: {', '.join(data['scores'])}", path=path, field="scores")
    entries = data["scores"][split]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise DataError("must be a non-empty list of score objects", path=path, field=f"scores.{split}")
    if subset is not None:
        entries = [e for e in entries if e.get("hf_subset") == subset]
        if not entries:
            raise DataError(f"has no hf_subset '{subset}'", path=path, field=f"scores.{split}")
    elif len(entries) > 1:
        chosen = preferred_subset([str(e.get("hf_subset")) for e in entries])
        entries = [e for e in entries if chosen is None or e.get("hf_subset") == chosen]
    numbers = [_numbers(e) for e in entries]
    if not all("main_score" in n for n in numbers):
        raise DataError("a score object has no numeric main_score", path=path, field=f"scores.{split}")
    # several subsets (languages): their mean, as MTEB's own get_score does
    keys = set.intersection(*(set(n) for n in numbers))
    scores = {k: sum(n[k] for n in numbers) / len(numbers) for k in sorted(keys)}
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
    model = "".join("_" if c in "?&=#" or c.isspace() else c for c in model)  # a model name, not spec options
    encoder = f"{BACKEND}:{model}" + (f"?revision={short}" if short else "")
    return CellResult(
        encoder=str(EncoderSpec.parse(encoder)),
        task=task,
        task_type=task_type,
        split=split,
        main_metric=metric,
        main_score=scores[metric],
        scores=scores,
        config_hash=config_hash({"mteb_file": text}),
        created_at=_date(data.get("date")),
        origin=ORIGIN,
        details={
            "source": str(path),
            "mteb_task": task_name,
            "mteb_version": data.get("mteb_version"),
            "dataset_revision": data.get("dataset_revision"),
            "model_revision": revision,
            "hf_subsets": [e.get("hf_subset") for e in entries],
        },
        throughput={"evaluation_seconds": data["evaluation_time"]} if isinstance(data.get("evaluation_time"), int | float) else {},
    )


def _date(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    if isinstance(value, str) and value:
        return value
    return datetime.now(UTC).isoformat(timespec="seconds")


def import_files(
    paths: Sequence[Path], *, split: str = "test", subset: str | None = None, all_tasks: bool = False
) -> tuple[list[CellResult], list[Path]]:
    """Imported cells, and the files skipped because evalkit has no such task."""
    imported, skipped = [], []
    for path in result_files(paths):
        result = read_mteb_file(path, split=split, subset=subset, all_tasks=all_tasks)
        if result is None:
            skipped.append(path)
        else:
            CellResult.from_dict(json.loads(result.to_json()), path)  # what the store will read back must validate
            imported.append(result)
    return imported, skipped
