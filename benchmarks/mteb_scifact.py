"""Run MTEB's own SciFact evaluator on the shipped BEIR files, with no hub access.

The MTEB side of the SciFact end-to-end comparison (``test_bench_sbert.py``): a fresh
process that imports mteb, loads the packaged MiniLM as MTEB wraps a SentenceTransformer,
injects ``tasks/data/retrieval/scifact`` into mteb's ``SciFact`` task (as
``scripts/compare_mteb.py`` does, but read with the standard library: the only evalkit
code on this side finds the packaged model's folder), evaluates the test split and
prints ndcg@10 as JSON.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tasks" / "data" / "retrieval" / "scifact"
K_VALUES = (1, 3, 5, 10, 20, 100, 1000)  # tasks/scifact.toml


def scifact_task() -> Any:
    """mteb's SciFact task with the local corpus, queries and test qrels already loaded."""
    import mteb
    from datasets import Dataset

    def jsonl(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    docs = jsonl(DATA / "corpus.jsonl")
    corpus = Dataset.from_list([{"id": str(d["_id"]), "title": d.get("title") or "", "text": d["text"]} for d in docs])
    queries = Dataset.from_list([{"id": str(q["_id"]), "text": q["text"]} for q in jsonl(DATA / "queries.jsonl")])
    qrels: dict[str, dict[str, int]] = {}
    with (DATA / "qrels" / "test.tsv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(float(row["score"]))
    task = mteb.get_task("SciFact")
    task.ignore_identical_ids = False
    task.k_values = K_VALUES
    task._top_k = max(K_VALUES)
    task.dataset = {"default": {"test": {"corpus": corpus, "queries": queries, "relevant_docs": qrels, "top_ranked": None}}}
    task.data_loaded = True
    return task


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mteb_local import minilm_wrapper

    scores = scifact_task().evaluate(minilm_wrapper(), "test", encode_kwargs={"batch_size": 32, "show_progress_bar": False})
    print(json.dumps({"ndcg_at_10": float(scores["default"]["ndcg_at_10"])}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
