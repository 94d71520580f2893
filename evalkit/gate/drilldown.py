"""Drill-down of a failed or borderline gate check: the units that moved most, with their texts and both scores.

A unit is what the task type stores per-unit outcomes for (``CellResult.units``): an
STS or pair-classification pair (its cosine on each side), a classification test
example (its accuracy over the protocol's experiments), a retrieval or reranking
query (nDCG@10 / MAP), a summarization text (its Spearman), a clustering experiment
(its V-measure). Units are ranked by how much the change *hurt* the candidate, worst
first: for per-unit scores that is baseline − candidate; for similarity tasks, whose
main score is a rank statistic, it is how much further the pair's similarity rank
moved from where its gold score (or label) puts it.

Result files store no texts. They come from the task's data when the task is
available here (a shipped task or one found by :class:`~evalkit.taskspec.TaskIndex`)
*and* its protocol and data hash to the result's ``task_hash`` / ``data_hash``;
otherwise the drill-down shows unit ids and says why. Nothing here can fail the gate:
any problem reading the task becomes that note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.gate.check import Drilldown, UnitRow

if TYPE_CHECKING:
    from evalkit.gate.check import Check
    from evalkit.results.schema import CellResult

TOP = 10  # rows kept per check (the Markdown summary shows fewer)


@dataclass(frozen=True)
class View:
    """Per-unit numbers of both sides, aligned."""

    ids: list[str]
    baseline: np.ndarray
    candidate: np.ndarray
    harm: np.ndarray
    reference: list[str | None]


def _pct(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return (rankdata(values) - 1) / max(len(values) - 1, 1)


def _sts(b: Mapping[str, Any], c: Mapping[str, Any]) -> View:
    gold = np.asarray(b["gold"], dtype=np.float64)
    base, cand = np.asarray(b["cosine"], dtype=np.float64), np.asarray(c["cosine"], dtype=np.float64)
    g = _pct(gold)
    harm = np.abs(_pct(cand) - g) - np.abs(_pct(base) - g)
    return View([f"pair {i + 1}" for i in range(len(gold))], base, cand, harm, [f"gold {v:.2f}" for v in gold])


def _pairs(b: Mapping[str, Any], c: Mapping[str, Any]) -> View:
    labels = np.asarray(b["labels"], dtype=np.float64)
    base, cand = np.asarray(b["cosine"], dtype=np.float64), np.asarray(c["cosine"], dtype=np.float64)
    harm = np.abs(_pct(cand) - labels) - np.abs(_pct(base) - labels)
    return View([f"pair {i + 1}" for i in range(len(labels))], base, cand, harm, [f"label {int(v)}" for v in labels])


def _accuracy(runs: Sequence[str]) -> np.ndarray:
    marks = np.stack([np.frombuffer(r.encode("ascii"), dtype=np.uint8) for r in runs])
    scored = (marks != ord("-")).sum(axis=0)
    return np.where(scored > 0, (marks == ord("1")).sum(axis=0) / np.maximum(scored, 1), np.nan)


def _classification(b: Mapping[str, Any], c: Mapping[str, Any]) -> View:
    base, cand = _accuracy(b["correct"]), _accuracy(c["correct"])
    return View([f"example {i + 1}" for i in range(base.size)], base, cand, base - cand, [None] * base.size)


def _per_unit(key: str, with_ids: bool) -> Callable[[Mapping[str, Any], Mapping[str, Any]], View]:
    def view(b: Mapping[str, Any], c: Mapping[str, Any]) -> View:
        base = np.asarray(b[key], dtype=np.float64)
        if with_ids:  # align the candidate's queries to the baseline's by id
            position = {q: i for i, q in enumerate(c["query_ids"])}
            if set(position) != set(b["query_ids"]):
                raise ValueError("the two sides scored different queries")
            cand = np.asarray([c[key][position[q]] for q in b["query_ids"]], dtype=np.float64)
            ids = [str(q) for q in b["query_ids"]]
        else:
            cand = np.asarray(c[key], dtype=np.float64)
            ids = [f"{'text' if key == 'cosine_spearman' else 'experiment'} {i + 1}" for i in range(base.size)]
        return View(ids, base, cand, base - cand, [None] * base.size)

    return view


# task type → (unit, value, order, view)
VIEWS: dict[str, tuple[str, str, str, Callable[[Mapping[str, Any], Mapping[str, Any]], View]]] = {
    "sts": ("pair", "cosine", "how much further the pair's similarity rank moved from its gold rank", _sts),
    "pair_classification": ("pair", "cosine", "how much further the pair's similarity rank moved from its label", _pairs),
    "classification": ("example", "accuracy over the experiments", "accuracy lost", _classification),
    "retrieval": ("query", "nDCG@10", "nDCG@10 lost", _per_unit("ndcg_at_10", True)),
    "reranking": ("query", "MAP@1000", "MAP lost", _per_unit("map_at_1000", True)),
    "summarization": ("text", "Spearman", "Spearman lost", _per_unit("cosine_spearman", False)),
    "clustering": ("experiment", "V-measure", "V-measure lost", _per_unit("v_measures", False)),
}


def texts_for(result: CellResult, ids: Sequence[str]) -> tuple[list[tuple[str, ...]] | None, list[str | None] | None, str | None]:
    """The units' texts (and labels) from the task's data, or None and why not.

    Only when the task is found here and hashes to the result's ``task_hash`` and
    ``data_hash``: other data would put the wrong texts beside the scores.
    """
    from evalkit.adapters import adapter_for
    from evalkit.execution.cells import Cell, identity
    from evalkit.results.store import limit_of
    from evalkit.spec import EncoderSpec
    from evalkit.taskspec import TaskIndex

    if result.data_hash is None or result.task_hash is None:
        return None, None, "texts not shown: the result predates data_hash, so its data cannot be matched"
    try:
        index = TaskIndex()
        # by registered name only: a result's task name is data, never a path or an MTEB download to follow
        if result.task.lower() not in {name.lower() for name in index.names()}:
            return None, None, f"texts not shown: task '{result.task}' is not available here"
        task = dataclasses.replace(index.get(result.task), limit=limit_of(result))
    except EvalkitError:
        return None, None, f"texts not shown: task '{result.task}' is not available here"
    try:
        # the identity leaves the encoder out; any spec will do
        same = identity(Cell(EncoderSpec.parse("tfidf:lexical"), task, result.split))
        if same != {"task_hash": result.task_hash, "data_hash": result.data_hash}:
            return None, None, f"texts not shown: the task '{result.task}' here differs from the one scored (data or protocol hash)"
        adapter: Any = adapter_for(task.type)  # the shipped adapters' own readers (load / plan), not the Protocol
        texts: list[tuple[str, ...]]
        labels: list[str | None] | None = None
        if task.type in ("sts", "pair_classification"):
            data = adapter.load(task, result.split)
            texts = list(zip(data.sentences1, data.sentences2, strict=True))
        elif task.type == "classification":
            test = adapter.plan(task, result.split).test
            texts, labels = [(t,) for t in test.texts], [f"label {label}" for label in test.labels]
        elif task.type in ("retrieval", "reranking"):
            queries = adapter.load(task, result.split).queries
            if any(q not in queries for q in ids):
                return None, None, "texts not shown: the task's queries do not match the result's"
            texts = [(queries[q],) for q in ids]
        else:
            return None, None, f"texts not shown for task type '{task.type}' (its units are not single texts)"
    except (EvalkitError, OSError, ValueError, KeyError, AttributeError) as exc:
        return None, None, f"texts not shown: reading task '{result.task}' failed ({type(exc).__name__})"
    if len(texts) != len(ids):
        return None, None, f"texts not shown: the task has {len(texts)} units here, the result {len(ids)}"
    return texts, labels, None


def drilldown(check: Check, why: str, top: int = TOP) -> Drilldown | None:
    """The ``top`` units that hurt the candidate most (None when the check has no per-unit outcomes to compare)."""
    b, c = check.baseline, check.candidate
    if not b.units or not c.units or not c.ok:
        return None
    spec = VIEWS.get(b.task_type)
    if spec is None:
        return Drilldown(why, "unit", "score", "", (), b.n_units, f"no per-unit view for task type '{b.task_type}'")
    unit, value, order, view = spec
    if not check.paired:
        return Drilldown(why, unit, value, order, (), b.n_units, "the two sides scored different data: no unit-by-unit comparison")
    try:
        v = view(b.units, c.units)
    except (KeyError, ValueError, TypeError) as exc:
        return Drilldown(why, unit, value, order, (), b.n_units, f"per-unit outcomes cannot be aligned ({exc})")
    harm = np.nan_to_num(v.harm, nan=-np.inf)
    picked = [int(i) for i in np.argsort(-harm, kind="stable")[:top]]
    texts, labels, note = texts_for(b, v.ids)
    reference = labels if labels is not None else v.reference
    rows = tuple(
        UnitRow(
            v.ids[i],
            texts[i] if texts is not None else (),
            reference[i],
            float(v.baseline[i]),
            float(v.candidate[i]),
            float(v.harm[i]),
        )
        for i in picked
    )
    return Drilldown(why, unit, value, order, rows, len(v.ids), note)


def attach(checks: Sequence[Check], top: int = TOP) -> None:
    """Give every failed or borderline check its drill-down."""
    for check in checks:
        why = "failed" if not check.passed else "borderline" if check.borderline else None
        if why is not None:
            check.drilldown = drilldown(check, why, top)
