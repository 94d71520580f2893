#!/usr/bin/env python
"""Build evalkit's SciFactReranking task: each SciFact test claim with its gold abstracts and BM25 hard negatives.

    .venv/bin/python scripts/build_reranking_task.py [--check]

Input: the vendored BEIR SciFact files (``tasks/data/retrieval/scifact/``): the 5,183
abstracts, the queries and ``qrels/test.tsv`` (300 claims, 339 judgements). For every
test claim, in the order the claims first appear in the qrels file:

1. BM25 (Okapi, Lucene's idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``, ``k1 = 0.9``,
   ``b = 0.4``, Anserini's BEIR defaults) scores every abstract. Documents read
   ``title + " " + text`` as the retrieval task does; tokens are scikit-learn's
   ``CountVectorizer`` defaults (lowercase, ``\\b\\w\\w+\\b``) minus its English stop
   words; each distinct query token counts once.
2. The candidate list is the claim's gold abstracts plus the highest-scoring
   non-gold abstracts, ``CANDIDATES`` (20) in all, ordered by BM25 score (best first;
   ties by corpus file order), gold ones at their own BM25 rank.

There is no randomness: ties are broken by corpus order, and sorting is stable, so the
output is byte-for-byte reproducible. ``--check`` rebuilds in memory and fails if the
committed ``candidates.jsonl`` differs. This is an evalkit task, not an MTEB task (MTEB
has no SciFact reranking task); the qrels, queries and corpus are the retrieval
task's files, unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO / "tasks" / "data" / "retrieval" / "scifact"
TARGET = REPO / "tasks" / "data" / "reranking" / "scifact" / "candidates.jsonl"
CANDIDATES = 20
K1, B = 0.9, 0.4


def read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def bm25_scores(documents: list[str], queries: list[str]) -> np.ndarray:
    """BM25 of every query against every document: (n_queries, n_documents), float64."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(stop_words="english", dtype=np.float64)
    counts = vectorizer.fit_transform(documents).tocsr()  # (docs, terms)
    n_docs = counts.shape[0]
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
    norm = K1 * (1.0 - B + B * lengths / lengths.mean())
    weights = counts.copy()
    rows = np.repeat(np.arange(n_docs), np.diff(counts.indptr))
    weights.data = idf[counts.indices] * counts.data * (K1 + 1.0) / (counts.data + norm[rows])
    terms = vectorizer.transform(queries).tocsr()
    terms.data[:] = 1.0  # each distinct query token once
    return np.asarray((terms @ weights.T).toarray())


def build() -> tuple[bytes, dict[str, float]]:
    """The candidates file's bytes and a few facts about it (for SOURCE.md)."""
    corpus = read_jsonl(SCIFACT / "corpus.jsonl")
    doc_ids = [d["_id"] for d in corpus]
    documents = [(d["title"] + " " + d["text"]).strip() if d["title"] else d["text"].strip() for d in corpus]
    queries = {q["_id"]: q["text"] for q in read_jsonl(SCIFACT / "queries.jsonl")}
    gold: dict[str, set[str]] = {}
    with (SCIFACT / "qrels" / "test.tsv").open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                gold.setdefault(query_id, set()).add(doc_id)
    query_ids = list(gold)
    scores = bm25_scores(documents, [queries[q] for q in query_ids])
    position = {d: i for i, d in enumerate(doc_ids)}
    lines, gold_ranks, distinct = [], [], set()
    for row, query_id in enumerate(query_ids):
        order = np.argsort(-scores[row], kind="stable")  # best first, ties in corpus order
        rank_of = {doc_ids[i]: r for r, i in enumerate(order, start=1)}
        negatives = [doc_ids[i] for i in order if doc_ids[i] not in gold[query_id]][: CANDIDATES - len(gold[query_id])]
        chosen = sorted([*gold[query_id], *negatives], key=lambda d: (-scores[row][position[d]], position[d]))
        gold_ranks.extend(rank_of[d] for d in gold[query_id])
        distinct.update(chosen)
        lines.append(json.dumps({"query-id": query_id, "corpus-ids": chosen}))
    facts = {
        "queries": len(query_ids),
        "gold": sum(len(g) for g in gold.values()),
        "distinct_documents": len(distinct),
        "gold_rank_median": float(np.median(gold_ranks)),
        "gold_in_bm25_top20": float(np.mean(np.asarray(gold_ranks) <= CANDIDATES)),
    }
    return ("\n".join(lines) + "\n").encode("utf-8"), facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs from a rebuild")
    args = parser.parse_args()
    data, facts = build()
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        same = TARGET.is_file() and TARGET.read_bytes() == data
        print(f"{TARGET.relative_to(REPO)}: {'matches' if same else 'DIFFERS from'} a rebuild (sha256 {digest})")
        return 0 if same else 1
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(data)
    print(f"wrote {TARGET.relative_to(REPO)}: {len(data):,} bytes, sha256 {digest}")
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
