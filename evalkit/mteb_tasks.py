"""MTEB's task catalogue through evalkit: ``-t mteb:NAME`` and ``protocol = "mteb:NAME"`` in task files.

``-t mteb:STSBenchmark`` runs an MTEB task through evalkit's own adapter for its type,
so it gets evalkit's intervals, cache, throughput, result files and gate. The task's
data is loaded by MTEB's own loader (``task.load_data()``: the Hugging Face hub, or the
local Hugging Face cache when offline) and written once, with a task file holding
MTEB's protocol settings, under ``$EVALKIT_CACHE_DIR/mteb/<mteb version>/`` (default
``~/.cache/evalkit/mteb``); later runs read that copy and do not import mteb at all.
The evalkit task is named ``mteb:NAME`` (``mteb:NAME:SUBSET`` for a task with several
Hugging Face subsets), so its results never mix with a shipped task of the same name.

Supported: MTEB's text tasks of the types evalkit has adapters for (see :data:`TYPES`).
A multilingual task needs a subset: ``mteb:AmazonCounterfactualClassification:en``;
without one, the ``default`` subset, else ``en``/``en-en``/``eng``, else the only
English one is taken, else the run stops naming the subsets. A retrieval or reranking task is
written for its main split only (``test`` where MTEB evaluates it).

**Protocol settings from MTEB's metadata** (:func:`protocol`): STS and summarization
score ranges; classification's ``samples_per_label``, ``n_experiments``, ``seed``,
``max_iter`` and cross-validation (``k_folds``); retrieval's and reranking's
``k_values`` and ``ignore_identical_ids``; clustering's mode (v2 / legacy), experiment count, sample
sizes, k-means batch size and seed; SummEval's p-value averaging (its deprecated
evaluator); the main score; the evaluated split. MTEB's retrieval keeps qrels naming a
missing document, so ``mteb:`` retrieval and reranking tasks set ``missing_documents = "keep"``.

A user's task file may say ``protocol = "mteb:TweetSentimentExtractionClassification"``
(a **top-level** key, beside ``type``; ``[settings].protocol`` is classification's
train/test-or-cross-validation switch) to inherit those settings and the main score
(:func:`inherit`). Settings the file states win; each one that differs from MTEB's is
reported as an ``evalkit: warning:`` line naming the file and line. Only metadata is
read: no MTEB data is loaded for a user's file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from evalkit.errors import DataError

PREFIX = "mteb:"
TYPES = {
    ("AbsTaskSTS", "STS"): "sts",
    ("AbsTaskClassification", "Classification"): "classification",
    ("AbsTaskPairClassification", "PairClassification"): "pair_classification",
    ("AbsTaskRetrieval", "Retrieval"): "retrieval",
    ("AbsTaskRetrieval", "Reranking"): "reranking",
    ("AbsTaskClustering", "Clustering"): "clustering",
    ("AbsTaskClusteringLegacy", "Clustering"): "clustering",
    ("AbsTaskSummarization", "Summarization"): "summarization",
}
"""(MTEB's abstract task class, metadata type) → evalkit task type; anything else is refused."""
PREFERRED_SUBSETS = ("default", "en", "en-en", "eng")
DESCRIPTION_MAX = 500


@dataclass(frozen=True)
class Protocol:
    """What evalkit takes from one MTEB task's metadata: its type, settings, main score and where its data lives."""

    name: str
    type: str
    settings: Mapping[str, Any]
    main_score: str
    eval_splits: tuple[str, ...]
    hf_subsets: tuple[str, ...]
    dataset: Mapping[str, Any] = field(default_factory=dict)
    languages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""
    reference: str = ""
    license: str = ""

    @property
    def split(self) -> str:
        """The split evalkit evaluates by default: ``test`` where MTEB evaluates it, else MTEB's first."""
        return "test" if "test" in self.eval_splits else self.eval_splits[0]


def is_mteb(text: object) -> bool:
    return isinstance(text, str) and text[: len(PREFIX)].lower() == PREFIX


def split_name(text: str) -> tuple[str, str | None]:
    """``mteb:NAME`` or ``mteb:NAME:SUBSET`` → (NAME, SUBSET or None)."""
    rest = text[len(PREFIX) :].strip()
    name, _, subset = rest.partition(":")
    if not name.strip():
        raise DataError(f"'{text}' names no MTEB task", field="--task", hint="write mteb:TASKNAME, e.g. mteb:STSBenchmark")
    return name.strip(), (subset.strip() or None)


def _mteb() -> Any:
    try:
        import mteb
    except ImportError:
        raise DataError("mteb: tasks need the mteb package", hint="pip install mteb") from None
    return mteb


def mteb_version() -> str:
    try:
        return importlib_metadata.version("mteb")
    except importlib_metadata.PackageNotFoundError:
        raise DataError("mteb: tasks need the mteb package", hint="pip install mteb") from None


def _names() -> list[str]:
    """Every task name MTEB knows (its registry; mteb's public API instantiates every task to list them)."""
    mteb = _mteb()
    try:
        from mteb.get_tasks import _TASKS_REGISTRY

        return list(_TASKS_REGISTRY)
    except ImportError:  # another mteb version
        return [t.metadata.name for t in mteb.get_tasks()]


def mteb_task(name: str, *, field_name: str = "--task") -> Any:
    """MTEB's task object for ``name`` (exact, else case-insensitive); unknown is one DataError with "did you mean"."""
    from evalkit.schemas.base import did_you_mean

    mteb = _mteb()
    names = _names()
    if name not in names:
        folded = [n for n in names if n.casefold() == name.casefold()]
        if len(folded) != 1:
            raise DataError(
                f"MTEB has no task named '{name}'",
                field=field_name,
                hint=did_you_mean(name, names).replace("allowed: ", "MTEB knows: ")[:300],
            )
        name = folded[0]
    try:
        return mteb.get_task(name)
    except Exception as exc:  # an MTEB task that will not instantiate
        raise DataError(f"MTEB cannot build its task '{name}' ({_first_line(exc)})", field=field_name) from None


def _class_of(task: Any) -> str:
    from mteb import abstasks

    for cls in type(task).__mro__:
        if cls.__name__.startswith("AbsTask") and getattr(abstasks, cls.__name__, None) is cls:
            return cls.__name__
    return type(task).__name__


def evalkit_type(task: Any, *, field_name: str = "--task") -> str:
    """evalkit's task type for an MTEB task object; an unsupported type or modality is one DataError."""
    meta = task.metadata
    kind = TYPES.get((_class_of(task), meta.type))
    supported = ", ".join(sorted({f"{t} ({c.removeprefix('AbsTask')})" for (c, _), t in TYPES.items()}))
    if kind is None:
        raise DataError(
            f"MTEB task '{meta.name}' is of type {meta.type} ({_class_of(task)}), which evalkit has no adapter for",
            field=field_name,
            hint=f"supported: {supported}",
        )
    if list(meta.modalities) != ["text"]:
        raise DataError(f"MTEB task '{meta.name}' is not text-only (modalities {', '.join(meta.modalities)})", field=field_name)
    from evalkit.adapters import ADAPTERS

    if kind not in ADAPTERS:
        raise DataError(f"MTEB task '{meta.name}' needs the '{kind}' task type, which is not registered", field=field_name)
    return kind


def protocol(task: Any, *, field_name: str = "--task") -> Protocol:
    """MTEB's protocol for ``task`` as evalkit settings (the module docstring lists what is taken)."""
    meta = task.metadata
    kind = evalkit_type(task, field_name=field_name)
    settings = _settings(task, kind, field_name)
    langs = {str(k): tuple(str(x) for x in v) for k, v in meta.hf_subsets_to_langscripts.items()}
    return Protocol(
        name=meta.name,
        type=kind,
        settings=settings,
        main_score=str(meta.main_score),
        eval_splits=tuple(str(s) for s in meta.eval_splits),
        hf_subsets=tuple(str(s) for s in task.hf_subsets),
        dataset=dict(meta.dataset),
        languages=langs,
        description=" ".join(str(meta.description or "").split())[:DESCRIPTION_MAX],
        reference=str(meta.reference or ""),
        license=str(meta.license or ""),
    )


def _settings(task: Any, kind: str, field_name: str) -> dict[str, Any]:
    name = task.metadata.name
    if kind in ("sts", "summarization"):
        out: dict[str, Any] = {"min_score": task.min_score, "max_score": task.max_score}
        if kind == "summarization":  # MTEB's original SummEval keeps its p-value-averaging evaluator (mteb issue 1156)
            out["average_pvalues"] = getattr(getattr(task, "evaluator", None), "__name__", "").startswith("Deprecated")
        return out
    if kind == "classification":
        from sklearn.linear_model import LogisticRegression

        model = task.evaluator_model
        if not isinstance(model, LogisticRegression):
            raise DataError(
                f"MTEB task '{name}' trains a {type(model).__name__}; evalkit's classification fits logistic regression",
                field=field_name,
            )
        out = {
            "mode": "undersample",
            "n_experiments": int(task.n_experiments),
            "samples_per_label": int(task.samples_per_label),
            "seed": int(task.seed),
            "max_iter": int(model.get_params().get("max_iter", 100)),
        }
        if task.is_cross_validation:
            out |= {"protocol": "cross_validation", "k_folds": int(task.n_splits)}
        return out
    if kind in ("retrieval", "reranking"):
        return {"k_values": sorted({int(k) for k in task.k_values}), "ignore_identical_ids": bool(task.ignore_identical_ids)}
    if kind == "pair_classification":
        return {}
    if _class_of(task) == "AbsTaskClusteringLegacy":
        return {"mode": "legacy", "clustering_batch_size": 500, "seed": int(task.seed)}
    out = {
        "mode": "v2",
        "n_experiments": int(task.n_clusters),
        "max_documents_per_cluster": int(task.max_documents_per_cluster),
        "kmeans_batch_size": int(task.k_mean_batch_size),
        "seed": int(task.seed),
    }
    if task.max_depth not in (None, 1):
        raise DataError(f"MTEB task '{name}' clusters {task.max_depth} label levels; evalkit clusters one", field=field_name)
    if task.max_document_to_embed is not None:
        out["max_document_to_embed"] = int(task.max_document_to_embed)
    elif task.max_fraction_of_documents_to_embed is not None:
        out["max_fraction_of_documents_to_embed"] = float(task.max_fraction_of_documents_to_embed)
    else:
        out["subsample"] = False
    return out


def protocol_of(text: str, *, field_name: str = "--task") -> Protocol:
    """The protocol of ``mteb:NAME`` from MTEB's metadata alone (no data is loaded)."""
    name, _ = split_name(text)
    return protocol(mteb_task(name, field_name=field_name), field_name=field_name)


# ---- protocol = "mteb:NAME" in a user's task file ------------------------------------------------------------------------
def inherit(
    text: str, task_type: str, explicit: Mapping[str, Any], main_score: str | None, *, path: Path, source: str = ""
) -> tuple[dict[str, Any], str | None]:
    """A task file's settings and main score with MTEB's protocol underneath (explicit values win, differences reported).

    Settings that an explicit choice makes inapplicable are not inherited: a classification
    file with ``mode = "full"`` takes no sample counts, one that sets ``protocol`` or
    ``train_split`` keeps its own protocol, a clustering file in the other mode takes only
    the seed, and one that sets how many documents to embed takes none of MTEB's limits.
    """
    from evalkit.adapters.base import emit
    from evalkit.schemas.base import toml_line

    line = toml_line(source, "protocol") if source else None
    try:
        proto = protocol_of(text, field_name="protocol")
        subset = split_name(text)[1]
        if subset is not None:  # the subset a file names must exist, as for -t mteb:NAME:SUBSET
            choose_subset(proto, subset)
    except DataError as exc:
        raise DataError(exc.message, path=path, line=line, field="protocol", hint=exc.hint) from None
    if proto.type != task_type:
        raise DataError(
            f"MTEB's {proto.name} is a {proto.type} task, but this file is type = '{task_type}'",
            path=path,
            line=line,
            field="protocol",
            hint=f"set type = '{proto.type}', or name an MTEB {task_type} task",
        )
    inherited = dict(proto.settings)
    if task_type == "classification":
        if explicit.get("mode") == "full":
            for key in ("n_experiments", "samples_per_label"):
                inherited.pop(key, None)
        if "protocol" in explicit or "train_split" in explicit:
            inherited.pop("protocol", None)
            inherited.pop("k_folds", None)
    if task_type == "clustering":
        if "mode" in explicit and explicit["mode"] != inherited.get("mode"):
            inherited = {"seed": inherited["seed"]} if "seed" in inherited else {}
        limits = ("max_fraction_of_documents_to_embed", "max_document_to_embed", "subsample")
        if any(key in explicit for key in limits):
            for key in limits:
                inherited.pop(key, None)
    notes = []
    where = f'(protocol = "mteb:{proto.name}")'
    for key, value in explicit.items():
        if key in inherited and inherited[key] != value:
            at = toml_line(source, f"settings.{key}") if source else None
            notes.append(f"{path}{f':{at}' if at else ''}: settings.{key} = {value!r} overrides MTEB's {inherited[key]!r} {where}")
    if main_score is not None and main_score != proto.main_score:
        at = toml_line(source, "main_score") if source else None
        notes.append(f"{path}{f':{at}' if at else ''}: main_score = {main_score!r} overrides MTEB's {proto.main_score!r} {where}")
    emit(notes)
    return {**inherited, **explicit}, main_score or proto.main_score


# ---- -t mteb:NAME ----------------------------------------------------------------------------------------------------
def cache_root() -> Path:
    from evalkit.catalogue import cache_dir

    return cache_dir() / "mteb"


def _key(name: str, subset: str | None) -> str:
    from evalkit.results.store import _escape_part

    return _escape_part(name.casefold() + (f":{subset}" if subset else ""), dots=True)  # injective: a name holds no ':'


def materialize(text: str) -> Path:
    """The task file of ``mteb:NAME[:SUBSET]``: MTEB's data written once under :func:`cache_root` (``TaskIndex.get`` loads it)."""
    name, subset = split_name(text)
    folder = cache_root() / mteb_version() / _key(name, subset)
    if (folder / "task.toml").is_file():
        return folder / "task.toml"
    task = mteb_task(name)
    proto = protocol(task)
    chosen = choose_subset(proto, subset)
    _check_main_score(proto)
    task.hf_subsets = [chosen]
    if proto.type in ("retrieval", "reranking"):
        task.filter_eval_splits([proto.split])
    _load_data(task, proto)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    except OSError as exc:
        raise DataError(f"cannot write MTEB's data for evalkit ({exc.strerror or exc})", path=folder.parent) from None
    try:
        _write_task(scratch, task, proto, chosen)
        try:
            os.rename(scratch, folder)
        except OSError:
            if not (folder / "task.toml").is_file():  # not another run that wrote it first
                raise
    except OSError as exc:
        raise DataError(f"cannot write MTEB's data for evalkit ({exc.strerror or exc})", path=folder) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder / "task.toml"


def choose_subset(proto: Protocol, subset: str | None) -> str:
    """The Hugging Face subset to evaluate: the one asked for, else the only one, else the English default (module docstring)."""
    subsets = list(proto.hf_subsets)
    if subset is not None:
        if subset in subsets:
            return subset
        from evalkit.schemas.base import did_you_mean

        raise DataError(f"MTEB task {proto.name} has no subset '{subset}'", field="--task", hint=did_you_mean(subset, subsets))
    if len(subsets) == 1:
        return subsets[0]
    for preferred in PREFERRED_SUBSETS:
        if preferred in subsets:
            return preferred
    english = [s for s in subsets if proto.languages.get(s) and all(lang.startswith("eng") for lang in proto.languages[s])]
    if len(english) == 1:
        return english[0]
    raise DataError(
        f"MTEB task {proto.name} has {len(subsets)} subsets; name one",
        field="--task",
        hint=f"e.g. mteb:{proto.name}:{(english or subsets)[0]}; subsets: {', '.join(subsets[:20])}"
        + (", ..." if len(subsets) > 20 else ""),
    )


def _check_main_score(proto: Protocol) -> None:
    from evalkit.adapters import adapter_for
    from evalkit.adapters.base import reported_metrics, settings_model

    adapter = adapter_for(proto.type)
    model = settings_model(adapter)
    metrics = reported_metrics(adapter, model.model_validate({**proto.settings, **_extra_settings(proto)}))
    if metrics is not None and proto.main_score not in metrics:
        raise DataError(
            f"MTEB's main score for {proto.name} is '{proto.main_score}', which evalkit's {proto.type} adapter does not report",
            field="--task",
        )


def _extra_settings(proto: Protocol) -> dict[str, Any]:
    """Settings an ``mteb:`` task adds to MTEB's protocol: MTEB scores qrels naming a missing document, so keep them."""
    return {"missing_documents": "keep"} if proto.type in ("retrieval", "reranking") else {}


def _offline() -> bool:
    values = (os.environ.get(key, "") for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(v.strip().upper() in ("1", "ON", "YES", "TRUE") for v in values)


def _load_data(task: Any, proto: Protocol) -> None:
    """MTEB's own loader; a dataset that cannot be had (offline and not cached, no network) is one DataError saying how to get it."""
    path, revision = proto.dataset.get("path", "?"), proto.dataset.get("revision")
    fetch = f"hf download --repo-type dataset {path}" + (f" --revision {revision}" if revision else "")
    try:
        task.load_data()
    except Exception as exc:  # whatever datasets / huggingface_hub raise: offline, 404, network, a broken loader
        version = f" (revision {str(revision)[:12]})" if revision else ""
        if _offline():
            raise DataError(
                f"mteb:{proto.name} needs the dataset {path}{version}, which is not in the local Hugging Face cache "
                "and HF_HUB_OFFLINE is set",
                field="--task",
                hint=f"unset HF_HUB_OFFLINE to download it, or fetch it first: {fetch}",
            ) from None
        raise DataError(
            f"cannot load the dataset {path}{version} of mteb:{proto.name}: {_first_line(exc)}",
            field="--task",
            hint=f"check the network, or fetch it first: {fetch}",
        ) from None
    if proto.type in ("retrieval", "reranking"):  # what AbsTaskRetrieval.evaluate does before scoring
        try:
            task.convert_v1_dataset_format_to_v2(num_proc=None)
        except Exception as exc:
            raise DataError(f"MTEB cannot convert its {proto.name} data ({_first_line(exc)})", field="--task") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# ---- writing MTEB's data as an evalkit task --------------------------------------------------------------------------
def _write_task(folder: Path, task: Any, proto: Protocol, subset: str) -> None:
    """``folder/task.toml`` and ``folder/data/*.jsonl`` from the loaded MTEB task (its subset ``subset``).

    The main score is written only where it is not the adapter's own, as in evalkit's
    task files, so an ``mteb:`` task and a shipped one with MTEB's settings share a ``task_hash``.
    """
    from evalkit.adapters import adapter_for

    data = folder / "data"
    data.mkdir()
    try:
        files = WRITERS[proto.type](task, proto, _subset_data(task, subset), data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise DataError(
            f"MTEB's dataset for {proto.name} has a layout evalkit cannot read ({type(exc).__name__}: {_first_line(exc)})",
            field="--task",
        ) from None
    name = f"{PREFIX}{proto.name}" + (f":{subset}" if len(proto.hf_subsets) > 1 else "")
    settings = {**proto.settings, **_extra_settings(proto)}
    if proto.type == "classification" and "protocol" not in settings:
        settings["train_split"] = str(task.train_split)
    lines = [
        f"# MTEB task {proto.name} (mteb {mteb_version()}), dataset {proto.dataset.get('path')} "
        f"revision {proto.dataset.get('revision')}, subset {subset} ({', '.join(proto.languages.get(subset, ()))}).",
        "# Written by evalkit (evalkit/mteb_tasks.py) from MTEB's loader; the settings are MTEB's task metadata.",
        f"name = {_toml(name)}",
        f"type = {_toml(proto.type)}",
        f"split = {_toml(proto.split)}",
        *([f"main_score = {_toml(proto.main_score)}"] if proto.main_score != adapter_for(proto.type).main_metric else []),
        f"description = {_toml(proto.description)}",
        f"reference = {_toml(proto.reference)}",
        f"license = {_toml(proto.license)}",
        "",
        "[files]",
        *(f"{_toml(group)} = {_toml(rel)}" for group, rel in files.items()),
        "",
        "[settings]",
        *(f"{key} = {_toml(value)}" for key, value in settings.items()),
    ]
    (folder / "task.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _toml(value: Any) -> str:
    """A TOML value: strings as basic strings (JSON escapes, which TOML shares, plus DEL), numbers, booleans, lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _subset_data(task: Any, subset: str) -> Any:
    """The loaded data of one Hugging Face subset (a monolingual task's data is not keyed by subset)."""
    dataset = task.dataset
    if subset not in dataset and subset == "default":
        return dataset
    return dataset[subset]


def _splits(proto: Protocol, data: Any, extra: Iterable[str] = ()) -> list[str]:
    from evalkit.schemas.task import GROUP_PATTERN

    wanted = list(dict.fromkeys([*proto.eval_splits, *extra]))
    missing = [s for s in wanted if s not in data]
    if missing:
        raise KeyError(f"split(s) {', '.join(missing)} missing from the loaded data")
    for split in wanted:
        if not GROUP_PATTERN.fullmatch(split) or split in ("corpus", "queries"):
            raise DataError(f"MTEB's split name '{split}' of {proto.name} cannot be an evalkit file group", field="--task")
    return wanted


def _jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
            count += 1
    if not count:
        raise ValueError(f"{path.name} would be empty")
    return count


def _columns(dataset: Any, *columns: str) -> Iterator[tuple[Any, ...]]:
    for row in dataset:
        yield tuple(row[c] for c in columns)


def _text_column(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must name one text column, not {value!r}")
    return value


def _write_sts(task: Any, proto: Protocol, data: Any, folder: Path) -> dict[str, str]:
    first, second = (_text_column(c, "column_names") for c in task.column_names)
    files = {}
    for split in _splits(proto, data):
        rows = ({"sentence1": a, "sentence2": b, "score": s} for a, b, s in _columns(data[split], first, second, "score"))
        _jsonl(folder / f"{split}.jsonl", rows)
        files[split] = f"data/{split}.jsonl"
    return files


def _write_classification(task: Any, proto: Protocol, data: Any, folder: Path) -> dict[str, str]:
    text, label = _text_column(task.input_column_name, "input_column_name"), task.label_column_name
    files = {}
    for split in _splits(proto, data, () if task.is_cross_validation else (task.train_split,)):
        _jsonl(folder / f"{split}.jsonl", ({"text": t, "label": y} for t, y in _columns(data[split], text, label)))
        files[split] = f"data/{split}.jsonl"
    return files


def _write_pairs(task: Any, proto: Protocol, data: Any, folder: Path) -> dict[str, str]:
    columns = (_text_column(task.input1_column_name, "input1"), _text_column(task.input2_column_name, "input2"), task.label_column_name)
    files = {}
    for split in _splits(proto, data):

        def rows(split: str = split) -> Iterator[dict[str, Any]]:
            for a, b, y in _columns(data[split], *columns):
                if isinstance(a, list):  # MTEB's v1 layout: one row holding every pair
                    for a1, b1, y1 in zip(a, b, y, strict=True):
                        yield {"sentence1": a1, "sentence2": b1, "label": int(y1)}
                else:
                    yield {"sentence1": a, "sentence2": b, "label": int(y)}

        _jsonl(folder / f"{split}.jsonl", rows())
        files[split] = f"data/{split}.jsonl"
    return files


def _write_retrieval(task: Any, proto: Protocol, data: Any, folder: Path) -> dict[str, str]:
    split = proto.split
    part = data[split]
    files = {}
    if proto.type == "reranking":  # MTEB's top_ranked: each query's candidate list
        candidates = ({"query-id": str(q), "corpus-ids": [str(d) for d in docs]} for q, docs in (part.get("top_ranked") or {}).items())
        _jsonl(folder / "candidates.jsonl", candidates)
        files["candidates"] = "data/candidates.jsonl"
    elif part.get("top_ranked"):
        raise DataError(
            f"MTEB task {proto.name} reranks given candidates (top_ranked); evalkit's retrieval searches the corpus", field="--task"
        )
    corpus = ({"_id": str(d["id"]), "title": d.get("title") or "", "text": d["text"]} for d in part["corpus"])
    _jsonl(folder / "corpus.jsonl", corpus)
    _jsonl(folder / "queries.jsonl", ({"_id": str(q["id"]), "text": q["text"]} for q in part["queries"]))
    qrels = (
        {"query-id": str(q), "corpus-id": str(d), "score": int(s)} for q, docs in part["relevant_docs"].items() for d, s in docs.items()
    )
    _jsonl(folder / f"qrels-{split}.jsonl", qrels)
    return {"corpus": "data/corpus.jsonl", "queries": "data/queries.jsonl", **files, split: f"data/qrels-{split}.jsonl"}


def _flat_label(value: Any) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"a document has {len(value)} label levels; evalkit clusters one")
        return value[0]
    return value


def _write_clustering(task: Any, proto: Protocol, data: Any, folder: Path) -> dict[str, str]:
    text, label = _text_column(task.input_column_name, "input_column_name"), task.label_column_name
    legacy = proto.settings.get("mode") == "legacy"
    files = {}
    for split in _splits(proto, data):

        def rows(split: str = split) -> Iterator[dict[str, Any]]:
            for number, (texts, labels) in enumerate(_columns(data[split], text, label)):
                if legacy:  # one row per clustering set
                    for t, y in zip(texts, labels, strict=True):
                        yield {"text": t, "label": y, "set": number}
                else:
                    yield {"text": texts, "label": _flat_label(labels)}

        _jsonl(folder / f"{split}.jsonl", rows())
        files[split] = f"data/{split}.jsonl"
    return files


def _write_summarization(task: Any, proto: Protocol, data: Any, folder: Path) -> dict[str, str]:
    columns = (task.text_column_name, task.human_summaries_column_name, task.machine_summaries_column_name, task.relevancy_column_name)
    files = {}
    for split in _splits(proto, data):
        rows = ({"text": t, "human_summaries": h, "machine_summaries": m, "relevance": r} for t, h, m, r in _columns(data[split], *columns))
        _jsonl(folder / f"{split}.jsonl", rows)
        files[split] = f"data/{split}.jsonl"
    return files


WRITERS = {
    "sts": _write_sts,
    "classification": _write_classification,
    "pair_classification": _write_pairs,
    "retrieval": _write_retrieval,
    "reranking": _write_retrieval,
    "clustering": _write_clustering,
    "summarization": _write_summarization,
}


SHIPPED = {
    "STSBenchmark": "STSBenchmark",
    "SICK-R": "SICK-R",
    "STS12": "STS12",
    "STS13": "STS13",
    "STS14": "STS14",
    "STS15": "STS15",
    "STS16": "STS16",
    "Banking77Classification": "Banking77Classification",
    "AmazonCounterfactualClassification": "AmazonCounterfactualClassification",
    "EmotionClassification": "EmotionClassification",
    "SciFact": "SciFact",
    "SummEval": "SummEvalSummarization.v2",
    "SummEval-MTEBv1": "SummEval",  # tasks/variants/summeval_mteb_v1.toml
}
"""Shipped task → the MTEB task whose metadata it must carry (``tests/test_mteb_tasks.py`` checks each)."""
