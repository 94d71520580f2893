"""Retrieval: exact dense search over a BEIR-layout corpus, scored with pytrec_eval as MTEB does.

Files: ``corpus`` (JSONL ``{"_id", "title", "text"}``), ``queries`` (JSONL ``{"_id",
"text"}``) and one qrels file per split (TSV ``query-id``, ``corpus-id``, ``score``).
A document reads ``title + " " + text`` (stripped; just the text when the title is
empty); queries are encoded with ``Role.QUERY`` and documents with ``Role.DOCUMENT``
so prompts can differ. The corpus is streamed and encoded ``chunk_size`` documents at
a time while a running top-k per query is kept (:func:`search`), so memory is bounded
by one chunk plus the k best per query, whatever the corpus size. Queries with no qrels
are dropped (MTEB). Metrics: nDCG, MAP, recall, precision, hit rate at each k from
pytrec_eval, MRR@k as MTEB computes it; main score ``ndcg_at_10``; averages are not
rounded (MTEB rounds to 5 decimals). Blank queries and documents, qrels whose query is
not in the queries file (dropped) and qrels naming a missing document (with
``missing_documents = "keep"``) are warnings (``TaskOutcome.warnings``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from evalkit import subset
from evalkit.adapters.base import Scaling, TaskAdapter, TaskOutcome, embed, emit, fit_if_needed, where
from evalkit.data import iter_jsonl, read_rows
from evalkit.encoders.base import CorpusFitted, Encoder, Role
from evalkit.errors import DataError, EvalkitError
from evalkit.schemas import Schema
from evalkit.taskspec import TaskSpec

DEFAULT_K = (1, 3, 5, 10, 20, 100, 1000)
FAMILIES = ("ndcg_at", "map_at", "recall_at", "precision_at", "hit_rate_at", "mrr_at")
FILE_GROUPS = ("corpus", "queries")  # every other group is a split of qrels
RELEVANCE_RANGE = (-(2**31), 1000)  # pytrec_eval reads a C int, and its work grows with the largest level (2**31-1: 56 s a query)


class RetrievalSettings(Schema):
    """``[settings]`` of a retrieval task (MTEB's defaults)."""

    k_values: Annotated[list[Annotated[int, Field(ge=1, le=1_000_000)]], Field(min_length=1, max_length=100)] = Field(
        default_factory=lambda: list(DEFAULT_K), description="metric cut-offs; the largest is the search depth"
    )
    ignore_identical_ids: bool = Field(default=False, description="drop a document whose id equals the query id (MTEB's option)")
    chunk_size: Annotated[int, Field(ge=1, le=10_000_000)] = Field(default=50_000, description="documents encoded and searched at once")
    similarity: Literal["cosine", "dot"] = "cosine"
    missing_documents: Literal["error", "keep"] = Field(
        default="error", description="qrels naming a document absent from the corpus: an error, or kept as MTEB does"
    )

    @property
    def cutoffs(self) -> list[int]:
        """The k values scored: the declared ones plus 10 (the main score is nDCG@10)."""
        return sorted(set(self.k_values) | {10})


@dataclass(frozen=True)
class Judged:
    """A split's queries (those with qrels), its qrels, the corpus size and data-quality warnings."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    n_docs: int
    warnings: tuple[str, ...] = ()
    documents: frozenset[str] | None = None  # --limit: the corpus ids kept (None: the whole corpus)


QUERY_BLOCK_CELLS = 1 << 24  # similarity cells scored at once (64 MiB of float32)


def search(queries: np.ndarray, chunks: Iterable[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product over document vectors arriving in chunks (corpus order).

    Returns ``(scores, doc_index)``, each (n_queries, min(k, n_docs)), best first. Only one
    chunk and the running top-k are alive at a time: the seam for sharding the corpus later.
    """
    n = queries.shape[0]
    best_scores = np.empty((n, 0), dtype=np.float32)
    best_index = np.empty((n, 0), dtype=np.int64)
    offset = 0
    for chunk in chunks:
        width = chunk.shape[0]
        block = max(1, QUERY_BLOCK_CELLS // max(width, 1))
        keep = min(k, best_scores.shape[1] + width)
        new_scores = np.empty((n, keep), dtype=np.float32)
        new_index = np.empty((n, keep), dtype=np.int64)
        for start in range(0, n, block):
            rows = slice(start, start + block)
            scores = np.hstack([best_scores[rows], queries[rows] @ chunk.T])
            index = np.hstack([best_index[rows], np.broadcast_to(np.arange(offset, offset + width), (scores.shape[0], width))])
            if keep < scores.shape[1]:
                part = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
                scores, index = np.take_along_axis(scores, part, 1), np.take_along_axis(index, part, 1)
            new_scores[rows], new_index[rows] = scores, index
        best_scores, best_index = new_scores, new_index
        offset += width
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_scores, order, 1), np.take_along_axis(best_index, order, 1)


def iter_corpus(path: Path, chunk_size: int) -> Iterator[list[tuple[str, str, int]]]:
    """Stream a BEIR corpus.jsonl as chunks of (id, text as the model reads it, line); malformed lines name file and line."""
    if not path.exists():
        raise DataError("data file does not exist", path=path)
    if path.suffix.lower() not in {".jsonl", ".ndjson"}:
        raise DataError("a retrieval corpus must be JSON Lines", path=path, hint='one {"_id": ..., "title": ..., "text": ...} per line')
    chunk: list[tuple[str, str, int]] = []
    for line_no, doc in iter_jsonl(path):
        doc_id = doc.get("_id", doc.get("id"))
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
            raise DataError("missing or non-scalar document id", path=path, line=line_no, field="_id")
        text, title = doc.get("text"), doc.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise DataError("text and title must be strings", path=path, line=line_no, field="text")
        chunk.append((str(doc_id), (title + " " + text).strip() if title else text.strip(), line_no))
        if len(chunk) == chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class RetrievalAdapter(TaskAdapter):
    task_type: ClassVar[str] = "retrieval"
    scale_invariant: ClassVar[bool] = True  # every metric is unchanged when all vectors are scaled alike

    def vector_scaling(self, task: TaskSpec) -> Scaling:
        """Cosine ranks each query's documents alike whatever each vector's length; a dot product only under one common scale."""
        return "row" if task.settings_as(RetrievalSettings).similarity == "cosine" else "uniform"

    main_metric: ClassVar[str] = "ndcg_at_10"
    unit_bounds: ClassVar[dict[str, tuple[float, float]]] = {"ndcg_at_10": (0.0, 1.0)}
    Settings: ClassVar[type[Schema]] = RetrievalSettings
    limit_unit: ClassVar[str] = "queries"  # --limit N: N queries, their judged documents and a sample of the rest
    metrics: ClassVar[tuple[str, ...]] = tuple(f"{family}_{k}" for family in FAMILIES for k in DEFAULT_K)

    def metric_names(self, settings: Schema) -> tuple[str, ...]:
        """The metrics reported with these settings: every family at every cut-off."""
        assert isinstance(settings, RetrievalSettings)
        return tuple(f"{family}_{k}" for family in FAMILIES for k in settings.cutoffs)

    def validate(self, task: TaskSpec, split: str | None = None) -> None:
        split = split or task.split
        if split in FILE_GROUPS:
            raise DataError(
                f"'{split}' is the {split} file, not a split of qrels", path=task.source, field="split", hint="evaluate a qrels group"
            )
        emit(self.load(task, split).warnings)

    def load(self, task: TaskSpec, split: str, settings: RetrievalSettings | None = None) -> Judged:
        """Queries (those with qrels), qrels and the corpus size; every id is checked against the corpus."""
        settings = settings or task.settings_as(RetrievalSettings)
        (corpus_path,), (queries_path,) = self._single(task, "corpus"), self._single(task, "queries")
        notes: list[str] = []
        doc_lines: dict[str, int] = {}
        blank_docs: list[int] = []
        for chunk in iter_corpus(corpus_path, settings.chunk_size):
            for doc_id, text, line in chunk:
                if doc_id in doc_lines:
                    raise DataError(
                        f"document id {doc_id!r} is duplicated (first at line {doc_lines[doc_id]})"[:300], path=corpus_path, line=line
                    )
                doc_lines[doc_id] = line
                if not text.strip():
                    blank_docs.append(line)
        if blank_docs and len(blank_docs) == len(doc_lines):
            raise DataError("every document is empty; the ranking would be meaningless", path=corpus_path, field="text")
        if blank_docs:
            notes.append(f"{where(corpus_path, blank_docs[0])}: {len(blank_docs)} empty or whitespace-only documents")
        queries: dict[str, str] = {}
        query_lines: dict[str, int] = {}
        for row in read_rows(queries_path, ["_id", "text"]):
            query_id = str(row.get("_id"))
            if query_id in queries:
                raise DataError(
                    f"query id {query_id!r} is duplicated (first at line {query_lines[query_id]})"[:300], path=row.path, line=row.line
                )
            queries[query_id], query_lines[query_id] = row.text("text"), row.line
        qrels: dict[str, dict[str, int]] = {}
        unknown_queries: list[str] = []
        missing_docs = []
        for path in task.files_for(split):
            for row in read_rows(path, ["query-id", "corpus-id", "score"]):
                query_id, doc_id, value = str(row.get("query-id")), str(row.get("corpus-id")), row.number("score")
                low, high = RELEVANCE_RANGE
                if value != int(value) or not low <= value <= high:
                    raise DataError(
                        f"relevance must be an integer from {low} to {high}, got {value:g}",
                        path=row.path,
                        line=row.line,
                        field="score",
                        hint="graded relevance is a small integer; pytrec_eval fails on larger ones, or works per level up to them",
                    )
                if query_id not in queries:
                    unknown_queries.append(f"{query_id} (line {row.line})")
                    continue
                if doc_id not in doc_lines:
                    if settings.missing_documents == "error":
                        raise DataError(
                            f"qrels name document {doc_id!r}, which is not in the corpus {corpus_path.name}",
                            path=row.path,
                            line=row.line,
                            field="corpus-id",
                            hint="fix the id, or set settings.missing_documents = 'keep' to count it as relevant but unfindable (MTEB)",
                        )
                    missing_docs.append(f"{doc_id!r} (line {row.line})"[:80])
                if doc_id in qrels.setdefault(query_id, {}):
                    raise DataError(f"pair ({query_id}, {doc_id}) is judged twice", path=row.path, line=row.line)
                qrels[query_id][doc_id] = int(value)
        qrels_path = task.files_for(split)[0]
        if unknown_queries:
            notes.append(
                f"{qrels_path}: dropped {len(unknown_queries)} qrels whose query is not in {queries_path.name}: "
                + ", ".join(unknown_queries[:5])
                + (", ..." if len(unknown_queries) > 5 else "")
            )
        if missing_docs:
            notes.append(
                f"{qrels_path}: {len(missing_docs)} qrels name documents absent from the corpus (kept, as MTEB does): "
                + ", ".join(missing_docs[:5])
                + (", ..." if len(missing_docs) > 5 else "")
            )
        if not qrels:
            raise DataError("no qrels name a known query", path=qrels_path)
        judged = {q: queries[q] for q in queries if q in qrels}
        blank = [query_lines[q] for q, text in judged.items() if not text.strip()]
        if blank and len(blank) == len(judged):
            raise DataError("every judged query is empty; the ranking would be meaningless", path=queries_path, field="text")
        if blank:
            notes.append(f"{where(queries_path, blank[0])}: {len(blank)} empty or whitespace-only queries")
        limited = subset.retrieval(judged, qrels, list(doc_lines), subset.limit_of(task))
        if limited is not None:  # --limit: every line checked above, a sample scored
            judged, qrels, kept = limited
            return Judged(judged, qrels, len(kept), tuple(notes), kept)
        return Judged(judged, qrels, len(doc_lines), tuple(notes))

    def _single(self, task: TaskSpec, key: str) -> tuple[Path]:
        paths = task.files_for(key)
        if len(paths) != 1:
            raise DataError("must name exactly one file", path=task.source, field=f"files.{key}")
        return (paths[0],)

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        settings = task.settings_as(RetrievalSettings)
        judged = self.load(task, split, settings)
        queries, qrels, n_docs = judged.queries, judged.qrels, judged.n_docs
        corpus_path = task.files_for("corpus")[0]
        kept = judged.documents

        def corpus() -> Iterator[list[tuple[str, str, int]]]:  # the whole corpus, or the documents --limit kept
            for chunk in iter_corpus(corpus_path, settings.chunk_size):
                chunk = chunk if kept is None else [doc for doc in chunk if doc[0] in kept]
                if chunk:
                    yield chunk

        if isinstance(encoder, CorpusFitted):  # TF-IDF sees every text first (this one pass holds the corpus text)
            fit_if_needed(encoder, [t for c in corpus() for _, t, _ in c] + list(queries.values()))
        query_ids = list(queries)
        cosine = settings.similarity == "cosine"
        query_vectors = _unit(embed(encoder, list(queries.values()), Role.QUERY), cosine)
        doc_ids: list[str] = []

        def doc_chunks() -> Iterator[np.ndarray]:
            for chunk in corpus():
                doc_ids.extend(doc_id for doc_id, _, _ in chunk)
                yield _unit(embed(encoder, [text for _, text, _ in chunk], Role.DOCUMENT), cosine)

        top_k = max(settings.cutoffs)
        scores, index = search(query_vectors, doc_chunks(), top_k)
        run: dict[str, dict[str, float]] = {}
        for row, query_id in enumerate(query_ids):
            hits = {doc_ids[i]: float(s) for i, s in zip(index[row], scores[row], strict=True)}
            if settings.ignore_identical_ids:
                hits.pop(query_id, None)
            run[query_id] = hits
        result, per_query = evaluate_run(run, qrels, settings.cutoffs)
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=result,
            n_units=len(per_query),
            units={"query_ids": list(per_query), "ndcg_at_10": [round(v, 6) for v in per_query.values()]},
            details={"n_documents": n_docs, "n_queries": len(query_ids), "top_k": top_k},
            warnings=judged.warnings,
        )

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        """Mean per-query nDCG@10 over the resampled queries."""
        return float(np.mean(np.asarray(units["ndcg_at_10"], dtype=np.float64)[index]))


def _unit(vectors: np.ndarray, normalise: bool) -> np.ndarray:
    if not normalise:
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def evaluate_run(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], k_values: list[int]
) -> tuple[dict[str, float | None], dict[str, float]]:
    """MTEB's ``calculate_retrieval_scores`` (without the nAUC extras): pytrec_eval means over queries, MRR@k as MTEB ranks ties."""
    try:
        import pytrec_eval
    except ImportError:
        raise EvalkitError("retrieval needs pytrec_eval", hint="pip install pytrec-eval-terrier") from None
    ks = ",".join(map(str, k_values))
    measures = {f"ndcg_cut.{ks}", f"map_cut.{ks}", f"recall.{ks}", f"P.{ks}", f"success.{ks}"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = {"ndcg_cut": "ndcg_at", "map_cut": "map_at", "recall": "recall_at", "P": "precision_at", "success": "hit_rate_at"}
    scores: dict[str, float | None] = {}
    for trec, ours in names.items():
        for k in k_values:
            scores[f"{ours}_{k}"] = float(np.mean([q[f"{trec}_{k}"] for q in per_query.values()]))
    reciprocal: dict[int, list[float]] = {k: [] for k in k_values}
    for query_id, hits in run.items():
        ranked = [d for d, _ in sorted(hits.items(), key=lambda item: (item[1], item[0]), reverse=True)]
        relevant = {d for d, rel in qrels[query_id].items() if rel > 0}
        first = next((rank for rank, d in enumerate(ranked, start=1) if d in relevant), None)
        for k in k_values:
            reciprocal[k].append(1.0 / first if first is not None and first <= k else 0.0)
    for k in k_values:
        scores[f"mrr_at_{k}"] = float(np.mean(reciprocal[k]))
    ndcg10 = {q: float(v.get("ndcg_cut_10", 0.0)) for q, v in per_query.items()}
    return scores, ndcg10
