#!/usr/bin/env python
"""evalkit versus MTEB's own evaluator on the same local data and the same model; prints a Markdown table.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/compare_mteb.py [--tasks STSBenchmark,MRPC] [--native]

Each task file is scored twice: by evalkit's adapter, and by the installed ``mteb``
package's task class, whose dataset is replaced in-process by the same local files
(``task.dataset = ...; task.data_loaded = True`` skips the hub download). By default
both sides share one vector cache, so each distinct text is encoded once and the
comparison isolates the protocol (sampling, classifier, thresholds, search, metrics);
``--native`` gives MTEB its own ``SentenceTransformerEncoderWrapper`` around the same
sentence-transformers model instead (slower: everything is encoded twice).

The helpers (:class:`MtebBridge`, :func:`mteb_task`, :func:`mteb_main_score`) are also
what ``tests/test_golden_mteb.py`` and the per-type tests use for their reference side.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evalkit.adapters import adapter_for  # noqa: E402
from evalkit.data import read_many, read_rows  # noqa: E402
from evalkit.encoders.base import Encoder, EncoderWrapper, Role  # noqa: E402
from evalkit.taskspec import TaskIndex, TaskSpec  # noqa: E402

# MTEB's published all-MiniLM-L6-v2 main scores (embeddings-benchmark/results, mteb 1.12.75 runs, and the issue for SciFact).
PUBLISHED = {
    "STSBenchmark": 0.8203247283076371,
    "SICK-R": 0.7758245525469719,
    "Banking77Classification": 0.8004220779220779,
    "EmotionClassification": 0.4083,
    "SciFact": 0.6451,
}
# evalkit task -> (MTEB task whose class and metadata are used, its hf_subset)
MTEB_NAMES = {
    "STSBenchmark": ("STSBenchmark", "default"),
    "SICK-R": ("SICK-R", "default"),
    "Banking77Classification": ("Banking77Classification", "default"),
    "EmotionClassification": ("EmotionClassification", "default"),
    "AmazonCounterfactualClassification": ("AmazonCounterfactualClassification", "en"),
    "SciFact": ("SciFact", "default"),
}
# a task of each type whose class carries user tasks MTEB does not know
CARRIERS = {
    "sts": "STSBenchmark",
    "classification": "Banking77Classification",
    "pair_classification": "TwitterSemEval2015",
    "retrieval": "SciFact",
}
DEFAULT_TASKS = [
    "STSBenchmark",
    "SICK-R",
    "Banking77Classification",
    "EmotionClassification",
    "AmazonCounterfactualClassification",
    "MRPC",
    "SciFact",
]
ENCODE_KWARGS = {"batch_size": 32, "show_progress_bar": False}


class CachedEncoder(EncoderWrapper):
    """An evalkit encoder whose vectors are remembered per (role, text), so both sides share them."""

    def __init__(self, inner: Encoder) -> None:
        super().__init__(inner)
        self.cache: dict[tuple[str, str], np.ndarray] = {}

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        key = role.value if role else ""
        missing = list(dict.fromkeys(t for t in texts if (key, t) not in self.cache))
        if missing:
            for text, vector in zip(missing, self.inner.encode(missing, role), strict=True):
                self.cache[(key, text)] = vector
        return np.stack([self.cache[(key, t)] for t in texts]) if texts else np.zeros((0, 0), np.float32)


def bridge_class() -> type:
    """MTEB's encoder protocol over an evalkit encoder: MTEB's query/document prompt types become evalkit roles."""
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.models.model_meta import ModelMeta, ScoringFunction
    from mteb.types import PromptType

    class MtebBridge(AbsEncoder):
        def __init__(self, encoder: Encoder) -> None:
            self.model = encoder
            self.mteb_model_meta = ModelMeta.create_empty(
                overwrites={"name": f"evalkit/{encoder.spec.backend}", "similarity_fn_name": ScoringFunction.COSINE}
            )

        def encode(
            self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str, prompt_type: Any = None, **kwargs: Any
        ) -> np.ndarray:
            texts = [text for batch in inputs for text in batch["text"]]
            role = {PromptType.query: Role.QUERY, PromptType.document: Role.DOCUMENT}.get(prompt_type)
            return self.model.encode(texts, role)

    return MtebBridge


def MtebBridge(encoder: Encoder) -> Any:
    return bridge_class()(encoder)


def native_model(encoder: Encoder) -> Any:
    """MTEB's own SentenceTransformer wrapper around the sentence-transformers model inside an ``sbert:`` encoder."""
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    inner = getattr(encoder, "inner", encoder)
    return SentenceTransformerEncoderWrapper(inner.model)  # type: ignore[attr-defined]


def _dataset(rows: Iterable[dict[str, Any]]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(list(rows))


def mteb_task(task: TaskSpec, split: str) -> tuple[Any, str]:
    """The MTEB task object for an evalkit task, loaded with the same local files; returns (task, hf_subset)."""
    import mteb
    from datasets import DatasetDict

    if task.type in EXTRA_TYPES:  # task types added later, each with its own loader (end of this file)
        return EXTRA_TYPES[task.type](task, split)
    name, subset = MTEB_NAMES.get(task.name, (CARRIERS[task.type], "default"))
    ref = mteb.get_task(name, languages=["eng"]) if subset != "default" else mteb.get_task(name)
    settings = task.settings
    if task.type == "sts":
        cols = {"sentence1": "sentence1", "sentence2": "sentence2", "score": "score", **settings.get("columns", {})}
        rows = read_many(task.files_for(split), list(cols.values()))
        ref.min_score, ref.max_score = settings.get("min_score", 0), settings.get("max_score", 5)
        data = _dataset(
            {"sentence1": r.get(cols["sentence1"]), "sentence2": r.get(cols["sentence2"]), "score": float(r.get(cols["score"]))}
            for r in rows
        )
        ref.dataset = {subset: DatasetDict({split: data})}
    elif task.type == "classification":
        cols = {"text": "text", "label": "label", **settings.get("columns", {})}

        def load(key: str) -> Any:
            return _dataset(
                {"text": r.get(cols["text"]), "label": r.get(cols["label"])} for r in read_many(task.files_for(key), list(cols.values()))
            )

        train_key = settings.get("train_split", "train")
        if settings.get("protocol") == "senteval":
            raise ValueError(f"{task.name}: MTEB has no SentEval protocol (tests/test_senteval_protocol.py checks it against scikit-learn)")
        single = settings.get("protocol") == "cross_validation"  # evalkit never switches protocol implicitly
        if settings.get("mode", "undersample") != "undersample":
            raise ValueError(f"{task.name}: MTEB has no '{settings.get('mode')}' mode")
        if task.name in MTEB_NAMES:  # a real MTEB task: its metadata must agree with the task file
            assert settings.get("samples_per_label", 8) == ref.samples_per_label, (task.name, ref.samples_per_label)
            assert settings.get("n_experiments", 10) == ref.n_experiments, (task.name, ref.n_experiments)
        ref.samples_per_label = settings.get("samples_per_label", 8)
        ref.n_experiments = settings.get("n_experiments", 10)
        ref.is_cross_validation = single
        ref.n_splits = settings.get("k_folds", 5)
        ref.train_split = split if single else "train"
        ref.seed = settings.get("seed", 42)
        splits = {split: load(split)} if single else {"train": load(train_key), split: load(split)}
        ref.dataset = {subset: DatasetDict(splits)}
    elif task.type == "pair_classification":
        cols = {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label", **settings.get("columns", {})}
        rows = read_many(task.files_for(split), list(cols.values()))
        data = _dataset(
            {"sentence1": r.get(cols["sentence1"]), "sentence2": r.get(cols["sentence2"]), "labels": int(r.get(cols["label"]))}
            for r in rows
        )
        ref.dataset = {subset: DatasetDict({split: data})}
    elif task.type == "retrieval":
        corpus = _dataset(
            {"id": str(r.get("_id")), "title": r.values.get("title") or "", "text": r.get("text")}
            for r in read_rows(task.files_for("corpus")[0])
        )
        queries = _dataset({"id": str(r.get("_id")), "text": r.get("text")} for r in read_rows(task.files_for("queries")[0]))
        qrels: dict[str, dict[str, int]] = {}
        for r in read_many(task.files_for(split), ["query-id", "corpus-id", "score"]):
            qrels.setdefault(str(r.get("query-id")), {})[str(r.get("corpus-id"))] = int(float(r.get("score")))
        ref.ignore_identical_ids = bool(settings.get("ignore_identical_ids", False))
        ref.k_values = tuple(sorted(set(settings.get("k_values", [1, 3, 5, 10, 20, 100, 1000])) | {10}))
        ref._top_k = max(ref.k_values)
        ref.dataset = {subset: {split: {"corpus": corpus, "queries": queries, "relevant_docs": qrels, "top_ranked": None}}}
    else:
        raise ValueError(f"no MTEB counterpart for task type {task.type!r}")
    ref.data_loaded = True
    return ref, subset


def mteb_scores(task: TaskSpec, split: str, model: Any) -> dict[str, Any]:
    """Run MTEB's evaluator for ``task`` in-process; its score dict for the subset."""
    ref, subset = mteb_task(task, split)
    return dict(ref.evaluate(model, split, subsets_to_run=[subset], encode_kwargs=ENCODE_KWARGS)[subset])


def mteb_main_score(task: TaskSpec, split: str, model: Any) -> float:
    return float(mteb_scores(task, split, model)["main_score"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="sbert:all-MiniLM-L6-v2")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task names or .toml files")
    parser.add_argument("--native", action="store_true", help="MTEB encodes with its own SentenceTransformer wrapper")
    args = parser.parse_args()

    import logging
    import warnings

    from evalkit.encoders import load_encoder

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    index = TaskIndex()
    base = load_encoder(args.encoder)
    rows = []
    for name in args.tasks.split(","):
        task = index.get(name.strip())
        encoder = CachedEncoder(base)  # fresh cache per task: keeps memory to one task's vectors
        start = time.perf_counter()
        outcome = adapter_for(task.type).evaluate(encoder, task, task.split)  # type: ignore[arg-type]
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        model = native_model(base) if args.native else MtebBridge(encoder)  # type: ignore[arg-type]
        theirs = mteb_main_score(task, task.split, model)
        theirs_s = time.perf_counter() - start
        ours = float(outcome.main_score or float("nan"))
        published = PUBLISHED.get(task.name)
        rows.append((task.name, outcome.main_metric, ours, theirs, published, ours_s, theirs_s))
        print(f"{task.name}: evalkit {ours:.5f} ({ours_s:.0f}s), MTEB {theirs:.5f} ({theirs_s:.0f}s)", file=sys.stderr, flush=True)
    print("| task | metric | evalkit | MTEB evaluator | |Δ| | published (MTEB) | evalkit s | MTEB s |\n|---|---|---|---|---|---|---|---|")
    for name, metric, ours, theirs, published, ours_s, theirs_s in rows:
        pub = f"{published:.6g}" if published is not None else "—"
        print(f"| {name} | {metric} | {ours:.5f} | {theirs:.5f} | {abs(ours - theirs):.1e} | {pub} | {ours_s:.0f} | {theirs_s:.0f} |")
    worst = max(abs(r[2] - r[3]) for r in rows)
    print(
        f"\nlargest |evalkit - MTEB evaluator| = {worst:.2e} ({'within' if worst <= 1e-3 else 'OUTSIDE'} ±0.001); encoder {args.encoder}"
        f"{', MTEB encodes natively' if args.native else ', shared vectors'}"
    )
    return 0 if worst <= 1e-3 else 1


# ---- summarization and clustering (issue 13) ------------------------------------------------------


def summarization_task(task: TaskSpec, split: str) -> tuple[Any, str]:
    """mteb's SummEval class with the task's data: ``SummEvalSummarization.v2``, or ``SummEval`` (v1) with average_pvalues."""
    import mteb
    from datasets import DatasetDict

    from evalkit.adapters.summarization import SummarizationSettings

    opts = task.settings_as(SummarizationSettings)
    cols = opts.columns
    ref = mteb.get_task("SummEval" if opts.average_pvalues else "SummEvalSummarization.v2")
    ref.min_score, ref.max_score = opts.min_score, opts.max_score
    rows = read_many(task.files_for(split), [cols.human_summaries, cols.machine_summaries, cols.relevance])
    data = _dataset(
        {
            "text": r.values.get(cols.text) or "",
            "human_summaries": list(r.get(cols.human_summaries)),
            "machine_summaries": list(r.get(cols.machine_summaries)),
            "relevance": [float(x) for x in r.get(cols.relevance)],
        }
        for r in rows
    )
    ref.dataset = {"default": DatasetDict({split: data})}
    ref.data_loaded = True
    return ref, "default"


def clustering_task(task: TaskSpec, split: str) -> tuple[Any, str]:
    """mteb's clustering classes with the task's data: ``TwentyNewsgroupsClustering.v2`` (v2) or its legacy version."""
    import random

    import mteb
    from datasets import DatasetDict

    from evalkit.adapters.clustering import ClusteringAdapter, ClusteringSettings

    opts = task.settings_as(ClusteringSettings)
    docs, _ = ClusteringAdapter().load(task, split)
    if opts.mode == "v2":
        ref = mteb.get_task("TwentyNewsgroupsClustering.v2")
        limit = opts.embed_limit()
        ref.max_fraction_of_documents_to_embed = limit[1] if limit is not None and limit[0] == "fraction" else None
        ref.max_document_to_embed = int(limit[1]) if limit is not None and limit[0] == "count" else None
        ref.max_documents_per_cluster = opts.max_documents_per_cluster
        ref.n_clusters = opts.n_experiments
        ref.k_mean_batch_size = opts.kmeans_batch_size
        ref.seed = opts.seed
        ref.rng_state, ref.np_rng = random.Random(opts.seed), np.random.default_rng(opts.seed)
        data = _dataset({"sentences": t, "labels": y} for t, y in zip(docs.texts, docs.labels, strict=True))
    else:
        if opts.seed != 42:
            raise ValueError(f"{task.name}: mteb's legacy clustering evaluator always uses seed 42")
        ref = mteb.get_task("TwentyNewsgroupsClustering")
        sets: dict[Any, tuple[list[str], list[Any]]] = {}
        for t, y, key in zip(docs.texts, docs.labels, docs.sets or [None] * len(docs.texts), strict=True):
            sets.setdefault(key, ([], []))
            sets[key][0].append(t)
            sets[key][1].append(y)
        data = _dataset({"sentences": texts, "labels": labels} for texts, labels in sets.values())
    ref.dataset = {"default": DatasetDict({split: data})}
    ref.data_loaded = True
    return ref, "default"


EXTRA_TYPES = {"summarization": summarization_task, "clustering": clustering_task}
# MTEB's published SummEval score for all-MiniLM-L6-v2 (its v1 evaluator: per-text correlations averaged with their p-values)
PUBLISHED["SummEval-MTEBv1"] = 0.3081
DEFAULT_TASKS += ["SummEval", str(REPO / "tasks" / "variants" / "summeval_mteb_v1.toml"), "Banking77Clustering", "EmotionClustering"]


# ---- reranking (issue 13) ------------------------------------------------------------------------


def reranking_task(task: TaskSpec, split: str) -> tuple[Any, str]:
    """mteb's SciDocsRR class (an ``AbsTaskRetrieval`` of type Reranking, main score map_at_1000) with the task's data as ``top_ranked``.

    The corpus handed to mteb is the candidate documents (title and text as in the corpus
    file): mteb encodes its whole corpus but compares each query only with its own
    candidates, so no other document can change a score; encoding them would only cost time.
    """
    import mteb

    from evalkit.adapters.reranking import RerankingAdapter, RerankingSettings

    opts = task.settings_as(RerankingSettings)
    data = RerankingAdapter().load(task, split, opts)
    corpus = _dataset(
        {"id": str(r.get("_id")), "title": r.values.get("title") or "", "text": r.get("text")}
        for r in read_rows(task.files_for("corpus")[0])
        if str(r.get("_id")) in data.documents
    )
    queries = _dataset({"id": str(r.get("_id")), "text": r.get("text")} for r in read_rows(task.files_for("queries")[0]))
    ref = mteb.get_task("SciDocsRR")
    ref.ignore_identical_ids = opts.ignore_identical_ids
    ref.k_values = tuple(opts.cutoffs)
    ref._top_k = max(ref.k_values)
    top_ranked = {q: list(ids) for q, ids in data.candidates.items()}
    ref.dataset = {"default": {split: {"corpus": corpus, "queries": queries, "relevant_docs": data.qrels, "top_ranked": top_ranked}}}
    ref.data_loaded = True
    return ref, "default"


EXTRA_TYPES["reranking"] = reranking_task
DEFAULT_TASKS += ["SciFactReranking"]


if __name__ == "__main__":
    raise SystemExit(main())
