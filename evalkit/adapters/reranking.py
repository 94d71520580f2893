"""Reranking: each query's candidate documents ordered by similarity, scored as MTEB v2 scores its reranking tasks.

MTEB v2 runs reranking tasks (SciDocsRR, StackOverflowDupQuestions, AskUbuntuDupQuestions,
...) through its retrieval evaluator with ``top_ranked``: the query is compared only with
its own candidates (``rerank_top_ranked_documents``), the best ``max(k_values)`` are kept,
and the run is scored with pytrec_eval and MTEB's MRR. This adapter does the same, with
retrieval's files plus the candidate lists (the layout of MTEB's ``top_ranked`` config):

- ``corpus``: JSONL ``{"_id", "title", "text"}`` (a document reads ``title + " " + text``)
- ``queries``: JSONL ``{"_id", "text"}``
- ``candidates``: JSONL ``{"query-id": ..., "corpus-ids": [...]}``, one line per query
  (ids are strings or integers; ``5`` and ``"5"`` are the same id); its order is not used
- one qrels file per split: TSV ``query-id``, ``corpus-id``, ``score`` (positives > 0;
  candidates without a judgement are negatives)

Queries are encoded with ``Role.QUERY`` and documents with ``Role.DOCUMENT`` (so
``query_prompt`` / ``document_prompt`` apply); only candidate documents are encoded.
Metrics: nDCG, MAP, recall, precision, hit rate and MRR at each cut-off (``k_values``
plus 10 and 1000); main score ``map_at_1000``, as MTEB's English reranking tasks declare
(``mrr_at_10`` is reported too). Per-unit outcomes are the queries' average precision,
so the interval is over queries.

Departures from MTEB, all said in the result: a candidate naming a document absent from
the corpus is an error (MTEB stops with a KeyError); a judged query without candidates
scores 0, as in MTEB, with a warning (every judged query without one is an error); a
document listed twice in one list is counted once, with a warning. Relevant documents
outside a query's candidate list count as not found (as in MTEB), with a warning
saying how many queries have one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BeforeValidator, Field

from evalkit.adapters.base import Scaling, TaskAdapter, TaskOutcome, embed, emit, fit_if_needed
from evalkit.adapters.records import Record, parse_record
from evalkit.adapters.retrieval import DEFAULT_K, FAMILIES, RetrievalAdapter, RetrievalSettings, _unit, evaluate_run, iter_corpus
from evalkit.data import read_many
from evalkit.encoders.base import CorpusFitted, Encoder, Role
from evalkit.errors import DataError, EvalkitError
from evalkit.schemas import Schema, Text
from evalkit.taskspec import TaskSpec

FILE_GROUPS = ("corpus", "queries", "candidates")  # every other group is a split of qrels
MAIN = "map_at_1000"
ALWAYS = (10, 1000)  # mrr_at_10 and the main score exist whatever k_values says
MAX_CANDIDATES = 1_000_000


class RerankingSettings(Schema):
    """``[settings]`` of a reranking task (MTEB's defaults)."""

    k_values: Annotated[list[Annotated[int, Field(ge=1, le=1_000_000)]], Field(min_length=1, max_length=100)] = Field(
        default_factory=lambda: list(DEFAULT_K), description="metric cut-offs (10 and 1000 are always added); the largest is kept per query"
    )
    ignore_identical_ids: bool = Field(default=False, description="drop a candidate whose id equals the query id (MTEB's option)")
    similarity: Literal["cosine", "dot"] = Field(default="cosine", description="how a candidate is scored against its query")
    missing_documents: Literal["error", "keep"] = Field(
        default="error", description="qrels naming a document absent from the corpus: an error, or kept as MTEB does"
    )

    @property
    def cutoffs(self) -> list[int]:
        return sorted(set(self.k_values) | set(ALWAYS))


def _id(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a string or an integer, got {type(value).__name__}"[:120])
    return str(value)


DocId = Annotated[Text, BeforeValidator(_id)]


class CandidateList(Record):
    """One line of the candidates file."""

    query_id: DocId
    corpus_ids: Annotated[list[DocId], Field(max_length=MAX_CANDIDATES)]


CANDIDATE_COLUMNS = {"query_id": "query-id", "corpus_ids": "corpus-ids"}


@dataclass(frozen=True)
class Ranking:
    """A split ready to score: judged queries, their qrels and candidates, the candidate documents' texts."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, list[str]]  # judged query -> its candidates (absent: none)
    documents: dict[str, str]  # every candidate document's text, in corpus order
    n_docs: int
    warnings: tuple[str, ...] = ()


class RerankingAdapter(TaskAdapter):
    task_type: ClassVar[str] = "reranking"
    scale_invariant: ClassVar[bool] = True  # every metric is unchanged when all vectors are scaled alike

    def vector_scaling(self, task: TaskSpec) -> Scaling:
        """Cosine ranks each query's documents alike whatever each vector's length; a dot product only under one common scale."""
        return "row" if task.settings_as(RerankingSettings).similarity == "cosine" else "uniform"

    main_metric: ClassVar[str] = MAIN
    unit_bounds: ClassVar[dict[str, tuple[float, float]]] = {MAIN: (0.0, 1.0)}
    Settings: ClassVar[type[Schema]] = RerankingSettings
    metrics: ClassVar[tuple[str, ...]] = tuple(f"{family}_{k}" for family in FAMILIES for k in DEFAULT_K)

    def metric_names(self, settings: Schema) -> tuple[str, ...]:
        assert isinstance(settings, RerankingSettings)
        return tuple(f"{family}_{k}" for family in FAMILIES for k in settings.cutoffs)

    def validate(self, task: TaskSpec, split: str | None = None) -> None:
        emit(self.load(task, split or task.split).warnings)

    def load(self, task: TaskSpec, split: str, settings: RerankingSettings | None = None) -> Ranking:
        """Queries, qrels (checked by the retrieval reader), candidate lists and their documents; every id checked."""
        settings = settings or task.settings_as(RerankingSettings)
        if split in FILE_GROUPS:
            raise DataError(
                f"'{split}' is the {split} file, not a split of qrels", path=task.source, field="split", hint="evaluate a qrels group"
            )
        paths = task.files_for("candidates")
        judged = RetrievalAdapter().load(task, split, RetrievalSettings(missing_documents=settings.missing_documents))
        notes = list(judged.warnings)
        known_queries = self._query_ids(task)
        lists: dict[str, list[str]] = {}
        first_line: dict[str, tuple[Path, int]] = {}
        duplicated: list[str] = []
        unknown: list[str] = []
        for row in read_many(paths, list(CANDIDATE_COLUMNS.values())):
            record = parse_record(CandidateList, row, CANDIDATE_COLUMNS)
            if record.query_id in first_line:
                path, line = first_line[record.query_id]
                raise DataError(
                    f"query {record.query_id!r} has a second candidate list (first at {Path(path).name}:{line})"[:300],
                    path=row.path,
                    line=row.line,
                    field="query-id",
                )
            first_line[record.query_id] = (row.path, row.line)
            if record.query_id not in known_queries:
                unknown.append(f"{record.query_id} (line {row.line})"[:80])
                continue
            if record.query_id not in judged.queries:
                continue  # another split's query
            unique = list(dict.fromkeys(record.corpus_ids))
            if len(unique) < len(record.corpus_ids):
                duplicated.append(f"{record.query_id} (line {row.line})"[:80])
            lists[record.query_id] = unique
        wanted = {doc_id for ids in lists.values() for doc_id in ids}
        documents = self._documents(task, wanted)
        for query_id, ids in lists.items():
            absent = next((d for d in ids if d not in documents), None)
            if absent is not None:
                path, line = first_line[query_id]
                raise DataError(
                    f"candidate {absent!r} of query {query_id!r} is not in the corpus {task.files_for('corpus')[0].name}"[:300],
                    path=path,
                    line=line,
                    field="corpus-ids",
                    hint="every candidate must be a corpus document",
                )
        where = paths[0]
        if unknown:
            notes.append(f"{where}: dropped {len(unknown)} candidate lists whose query is not in the queries file: " + _some(unknown))
        if duplicated:
            notes.append(f"{where}: {len(duplicated)} candidate lists name a document twice; counted once: " + _some(duplicated))
        without = [q for q in judged.queries if not lists.get(q)]
        if len(without) == len(judged.queries):
            raise DataError(
                f"no judged query of split '{split}' has a candidate list; there is nothing to rerank",
                path=where,
                field="query-id",
                hint="the candidates' query-id values must be the ids of the queries file",
            )
        if without:
            notes.append(f"{where}: {len(without)} judged queries have no candidates and score 0, as in MTEB: " + _some(without))
        outside = [q for q in judged.queries if lists.get(q) and any(r > 0 and d not in set(lists[q]) for d, r in judged.qrels[q].items())]
        if outside:
            notes.append(
                f"{where}: {len(outside)} queries have relevant documents outside their candidate list; "
                "those count as not found, as in MTEB: " + _some(outside)
            )
        return Ranking(judged.queries, judged.qrels, lists, documents, judged.n_docs, tuple(notes))

    def _query_ids(self, task: TaskSpec) -> set[str]:
        return {str(row.get("_id")) for row in read_many(task.files_for("queries"), ["_id"])}

    def _documents(self, task: TaskSpec, wanted: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in iter_corpus(task.files_for("corpus")[0], 50_000):
            for doc_id, text, _ in chunk:
                if doc_id in wanted:
                    found[doc_id] = text
        return found

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        settings = task.settings_as(RerankingSettings)
        data = self.load(task, split, settings)
        query_ids = list(data.queries)
        if isinstance(encoder, CorpusFitted):  # TF-IDF sees the whole corpus and the queries first, as in retrieval
            corpus = task.files_for("corpus")[0]
            fit_if_needed(encoder, [t for c in iter_corpus(corpus, 50_000) for _, t, _ in c] + list(data.queries.values()))
        cosine = settings.similarity == "cosine"
        query_vectors = _unit(embed(encoder, list(data.queries.values()), Role.QUERY), cosine)
        doc_ids = list(data.documents)
        doc_vectors = _unit(embed(encoder, list(data.documents.values()), Role.DOCUMENT), cosine)
        position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
        top_k = max(settings.cutoffs)
        run: dict[str, dict[str, float]] = {}
        for row, query_id in enumerate(query_ids):
            ids = data.candidates.get(query_id, [])
            scores = doc_vectors[[position[d] for d in ids]] @ query_vectors[row] if ids else np.empty(0, np.float32)
            keep = np.argsort(-scores, kind="stable")[:top_k]  # MTEB keeps the best max(k_values) of each list
            hits = {ids[i]: float(scores[i]) for i in keep}
            if settings.ignore_identical_ids:
                hits.pop(query_id, None)
            run[query_id] = hits
        result, _ = evaluate_run(run, data.qrels, settings.cutoffs)
        average_precision = per_query_ap(run, data.qrels)
        sizes = [len(data.candidates.get(q, ())) for q in query_ids]
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=result,
            n_units=len(query_ids),
            units={"query_ids": query_ids, MAIN: [round(average_precision[q], 6) for q in query_ids]},
            details={
                "n_queries": len(query_ids),
                "n_documents": data.n_docs,
                "n_candidate_documents": len(doc_ids),
                "candidates_per_query": {"min": min(sizes), "mean": float(np.mean(sizes)), "max": max(sizes)},
                "top_k": top_k,
            },
            warnings=data.warnings,
        )

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        """Mean per-query average precision (MAP@1000) over the resampled queries."""
        return float(np.mean(np.asarray(units[MAIN], dtype=np.float64)[index]))

    def score_counts(self, units: Mapping[str, Any], counts: np.ndarray) -> np.ndarray:
        values = np.asarray(units[MAIN], dtype=np.float64)
        return np.asarray((counts @ values) / counts.sum(axis=1))


def per_query_ap(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """pytrec_eval's ``map_cut_1000`` of each query (the units the main score averages)."""
    try:
        import pytrec_eval
    except ImportError:
        raise EvalkitError("reranking needs pytrec_eval", hint="pip install pytrec-eval-terrier") from None
    scored = pytrec_eval.RelevanceEvaluator(qrels, {"map_cut.1000"}).evaluate(run)
    return {q: float(scored[q]["map_cut_1000"]) if q in scored else 0.0 for q in run}


def _some(items: list[str]) -> str:
    return ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
