"""Pair classification adapter: MTEB's thresholds and APs, checked against the installed mteb."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_classification import compare_module, write_task

from evalkit.adapters import adapter_for
from evalkit.adapters.pair_classification import best_accuracy, best_f1
from evalkit.encoders import load_encoder
from evalkit.errors import DataError
from evalkit.taskspec import load_task_file

REPO = Path(__file__).resolve().parent.parent
MRPC = REPO / "tasks" / "data" / "pair_classification" / "mrpc" / "test.jsonl"


@pytest.fixture(scope="module")
def static() -> Any:
    return load_encoder("static:tokenlearn-static")


def mrpc_tsv_task(folder: Path, limit: int = 200) -> Path:
    """A user's task: TSV with its own column names, labels written as text."""
    with MRPC.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(limit), handle, strict=False)]
    lines = ["first\tsecond\tis_paraphrase"] + [f"{r['sentence1']}\t{r['sentence2']}\t{r['label']}" for r in rows]
    (folder / "pairs.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return write_task(
        folder,
        'name = "MyParaphrases"\ntype = "pair_classification"\nsplit = "test"\n[files]\ntest = "pairs.tsv"\n'
        '[settings]\ncolumns = {sentence1 = "first", sentence2 = "second", label = "is_paraphrase"}\n',
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thresholds_equal_mteb_including_ties(seed: int) -> None:
    import mteb

    ref = mteb.get_task("TwitterSemEval2015")
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=300), 1)  # many ties: a threshold must not split them
    labels = (scores + rng.normal(scale=1.0, size=300) > 0.3).astype(np.int64)
    assert best_accuracy(scores, labels)[0] == pytest.approx(ref._find_best_acc_and_threshold(scores.tolist(), labels, True)[0])
    assert best_accuracy(scores, labels)[1] == pytest.approx(ref._find_best_acc_and_threshold(scores.tolist(), labels, True)[1])
    assert best_f1(scores, labels) == pytest.approx(ref._find_best_f1_and_threshold(scores.tolist(), labels, True))
    # distances: MTEB ranks them ascending, evalkit ranks the negated values descending
    assert best_f1(-scores, labels)[:3] == pytest.approx(ref._find_best_f1_and_threshold(scores.tolist(), labels, False)[:3])


def test_user_tsv_task_matches_mteb_evaluator(tmp_path: Path, static: Any) -> None:
    compare = compare_module()
    task = load_task_file(mrpc_tsv_task(tmp_path))
    adapter = adapter_for("pair_classification")
    adapter.validate(task)
    outcome = adapter.evaluate(static, task, "test")
    theirs = compare.mteb_scores(task, "test", compare.MtebBridge(static))
    for name in ("cosine", "dot", "euclidean", "manhattan"):
        for metric in ("accuracy", "f1", "precision", "recall", "ap"):
            assert outcome.scores[f"{name}_{metric}"] == pytest.approx(theirs[f"{name}_{metric}"], abs=1e-9), (name, metric)
    assert outcome.main_metric == "max_ap" and outcome.scores["max_ap"] == pytest.approx(theirs["main_score"], abs=1e-9)
    assert outcome.scores["max_ap"] == max(outcome.scores[f"{f}_ap"] for f in ("cosine", "dot", "euclidean", "manhattan"))
    assert adapter.score_units(outcome.units, np.arange(outcome.n_units)) == pytest.approx(outcome.scores["max_ap"], abs=1e-5)
    half = adapter.score_units(outcome.units, np.arange(100))
    assert half != pytest.approx(outcome.scores["max_ap"], abs=1e-6)  # a resample scores differently


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            '{"sentence1": "a", "sentence2": "b", "label": 1}\n{"sentence1": "a", "sentence2": "c", "label": 2}\n',
            r"p\.jsonl:2: field 'label': label must be 0 or 1",
        ),
        (
            '{"sentence1": "a", "sentence2": "b", "label": 1}\n{"sentence1": "a", "sentence2": "c", "label": 1}\n',
            r"p\.jsonl: every pair has label 1",
        ),
        (
            '{"sentence1": "a", "sentence2": "b", "label": 1}\n{"sentence1": "a", "label": 0}\n',
            r"p\.jsonl:2: field 'sentence2': missing key",
        ),
    ],
)
def test_malformed_pairs_name_file_and_line(tmp_path: Path, rows: str, message: str) -> None:
    (tmp_path / "p.jsonl").write_text(rows, encoding="utf-8")
    task = load_task_file(write_task(tmp_path, 'name = "P"\ntype = "pair_classification"\nsplit = "test"\n[files]\ntest = "p.jsonl"\n'))
    with pytest.raises(DataError, match=message):
        adapter_for("pair_classification").validate(task)
