"""Run MTEB's own STSBenchmark evaluator on the shipped test.tsv, with no hub access.

MTEB loads its data from the hub; here the ``datasets.Dataset`` is built from
``tasks/data/sts/stsbenchmark/test.tsv`` and injected into the task object, so both
harnesses score exactly the same pairs. Run as a script, it is the "fresh process"
side of the end-to-end comparison and prints the main score as JSON.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STSB_TEST = REPO / "tasks" / "data" / "sts" / "stsbenchmark" / "test.tsv"


def stsb_task() -> Any:
    """mteb's STSBenchmark task with the local test split already loaded."""
    import mteb
    from datasets import Dataset, DatasetDict

    with STSB_TEST.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    data = {
        "sentence1": [r["sentence1"] for r in rows],
        "sentence2": [r["sentence2"] for r in rows],
        "score": [float(r["score"]) for r in rows],
    }
    task = mteb.get_task("STSBenchmark")
    task.dataset = DatasetDict({"test": Dataset.from_dict(data)})
    task.data_loaded = True
    return task


def minilm_wrapper(batch_size: int = 32) -> Any:
    """The packaged MiniLM as MTEB wraps a SentenceTransformer."""
    from mteb.models import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from evalkit.catalogue import resolve

    model = SentenceTransformer(str(resolve("all-MiniLM-L6-v2")), device="cpu")
    return SentenceTransformerEncoderWrapper(model)


def evaluate(task: Any, model: Any, batch_size: int = 32) -> float:
    """MTEB's evaluator on the loaded task: the cosine Spearman on test."""
    scores = task.evaluate(model, "test", encode_kwargs={"batch_size": batch_size, "show_progress_bar": False})
    return float(scores["default"]["cosine_spearman"])


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    score = evaluate(stsb_task(), minilm_wrapper())
    print(json.dumps({"cosine_spearman": score}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
