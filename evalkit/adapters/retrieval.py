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
rounded (MTEB rounds to 5 decimals).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from evalkit.adapters.base import TaskOutcome, check_settings, embed, fit_if_needed
from evalkit.data import iter_jsonl, read_rows
from evalkit.encoders.base import CorpusFitted, Encoder, Role
from evalkit.errors import DataError, EvalkitError
from evalkit.taskspec import TaskSpec

SETTINGS = {
    "k_values": "cut-offs for the metrics (default [1, 3, 5, 10, 20, 100, 1000], MTEB's); top-k = the largest",
    "ignore_identical_ids": "drop a document whose id equals the query id from the ranking (MTEB's option, default false)",
    "chunk_size": "documents encoded and searched at once (default 50000, MTEB's corpus_chunk_size)",
    "similarity": "'cosine' (default) or 'dot'",
    "missing_documents": "qrels naming a document absent from the corpus: 'error' (default) or 'keep' (MTEB: relevant, never found)",
}
DEFAULT_K = (1, 3, 5, 10, 20, 100, 1000)
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


class RetrievalAdapter:
    task_type: ClassVar[str] = "retrieval"
    main_metric: ClassVar[str] = "ndcg_at_10"

    def validate(self, task: TaskSpec) -> None:
        check_settings(task, SETTINGS)
        opts = self._options(task)
        self.load(task, task.split, opts)

    def _options(self, task: TaskSpec) -> dict[str, Any]:
        k_values = task.setting("k_values", list(DEFAULT_K))
        if (
            not isinstance(k_values, list)
            or not k_values
            or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in k_values)
        ):
            raise DataError("must be a non-empty list of positive integers", path=task.source, field="settings.k_values")
        chunk = task.setting("chunk_size", 50_000)
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise DataError("must be a positive integer", path=task.source, field="settings.chunk_size")
        choices = {"similarity": ("cosine", "dot"), "missing_documents": ("error", "keep")}
        opts: dict[str, Any] = {"k_values": sorted(set(k_values) | {10}), "chunk_size": chunk}  # 10: the main score
        for key, allowed in choices.items():
            opts[key] = task.setting(key, allowed[0])
            if opts[key] not in allowed:
                raise DataError(f"must be one of {', '.join(allowed)}", path=task.source, field=f"settings.{key}")
        opts["ignore_identical_ids"] = task.setting("ignore_identical_ids", False)
        if not isinstance(opts["ignore_identical_ids"], bool):
            raise DataError("must be true or false", path=task.source, field="settings.ignore_identical_ids")
        return opts

    def load(self, task: TaskSpec, split: str, opts: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, int]], int]:
        """Queries (those with qrels), qrels and the corpus size; every id is checked against the corpus."""
        (corpus_path,), (queries_path,) = self._single(task, "corpus"), self._single(task, "queries")
        doc_lines: dict[str, int] = {}
        for chunk in iter_corpus(corpus_path, opts["chunk_size"]):
            for doc_id, _, line in chunk:
                if doc_id in doc_lines:
                    raise DataError(
                        f"document id {doc_id!r} is duplicated (first at line {doc_lines[doc_id]})", path=corpus_path, line=line
                    )
                doc_lines[doc_id] = line
        queries: dict[str, str] = {}
        query_lines: dict[str, int] = {}
        for row in read_rows(queries_path, ["_id", "text"]):
            query_id = str(row.get("_id"))
            if query_id in queries:
                raise DataError(
                    f"query id {query_id!r} is duplicated (first at line {query_lines[query_id]})", path=row.path, line=row.line
                )
            queries[query_id], query_lines[query_id] = row.text("text"), row.line
        qrels: dict[str, dict[str, int]] = {}
        unknown_queries: list[str] = []
        missing_docs = []
        for path in task.files_for(split):
            for row in read_rows(path, ["query-id", "corpus-id", "score"]):
                query_id, doc_id, value = str(row.get("query-id")), str(row.get("corpus-id")), row.number("score")
                if value != int(value):
                    raise DataError(f"relevance must be an integer, got {value}", path=row.path, line=row.line, field="score")
                if query_id not in queries:
                    unknown_queries.append(f"{query_id} (line {row.line})")
                    continue
                if doc_id not in doc_lines:
                    if opts["missing_documents"] == "error":
                        raise DataError(
                            f"qrels name document {doc_id!r}, which is not in the corpus {corpus_path.name}",
                            path=row.path,
                            line=row.line,
                            field="corpus-id",
                            hint="fix the id, or set settings.missing_documents = 'keep' to count it as relevant but unfindable (MTEB)",
                        )
                    missing_docs.append(doc_id)
                if doc_id in qrels.setdefault(query_id, {}):
                    raise DataError(f"pair ({query_id}, {doc_id}) is judged twice", path=row.path, line=row.line)
                qrels[query_id][doc_id] = int(value)
        if unknown_queries:
            warnings.warn(
                f"{task.files_for(split)[0]}: dropped {len(unknown_queries)} qrels whose query is not in {queries_path.name}: "
                + ", ".join(unknown_queries[:5]),
                stacklevel=3,
            )
        if missing_docs:
            warnings.warn(
                f"{len(missing_docs)} qrels name documents absent from the corpus (kept, as MTEB does): {missing_docs[:5]}", stacklevel=3
            )
        if not qrels:
            raise DataError("no qrels name a known query", path=task.files_for(split)[0])
        return {q: queries[q] for q in queries if q in qrels}, qrels, len(doc_lines)

    def _single(self, task: TaskSpec, key: str) -> tuple[Path]:
        paths = task.files_for(key)
        if len(paths) != 1:
            raise DataError("must name exactly one file", path=task.source, field=f"files.{key}")
        return (paths[0],)

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        opts = self._options(task)
        queries, qrels, n_docs = self.load(task, split, opts)
        corpus_path = task.files_for("corpus")[0]
        if isinstance(encoder, CorpusFitted):  # TF-IDF sees every text first (this one pass holds the corpus text)
            fit_if_needed(encoder, [t for c in iter_corpus(corpus_path, opts["chunk_size"]) for _, t, _ in c] + list(queries.values()))
        query_ids = list(queries)
        cosine = opts["similarity"] == "cosine"
        query_vectors = _unit(embed(encoder, list(queries.values()), Role.QUERY), cosine)
        doc_ids: list[str] = []

        def doc_chunks() -> Iterator[np.ndarray]:
            for chunk in iter_corpus(corpus_path, opts["chunk_size"]):
                doc_ids.extend(doc_id for doc_id, _, _ in chunk)
                yield _unit(embed(encoder, [text for _, text, _ in chunk], Role.DOCUMENT), cosine)

        top_k = max(opts["k_values"])
        scores, index = search(query_vectors, doc_chunks(), top_k)
        run: dict[str, dict[str, float]] = {}
        for row, query_id in enumerate(query_ids):
            hits = {doc_ids[i]: float(s) for i, s in zip(index[row], scores[row], strict=True)}
            if opts["ignore_identical_ids"]:
                hits.pop(query_id, None)
            run[query_id] = hits
        result, per_query = evaluate_run(run, qrels, opts["k_values"])
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=result,
            n_units=len(per_query),
            units={"query_ids": list(per_query), "ndcg_at_10": [round(v, 6) for v in per_query.values()]},
            details={"n_documents": n_docs, "n_queries": len(query_ids), "top_k": top_k},
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
