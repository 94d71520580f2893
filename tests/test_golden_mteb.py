"""Golden comparison: evalkit against the real mteb evaluator, same local data, same MiniLM weights.

MTEB encodes with its own ``SentenceTransformerEncoderWrapper`` (its own batching and
dataloaders) around the sentence-transformers model that ``sbert:all-MiniLM-L6-v2``
loads, so the vectors travel two independent paths. Fixed subsets keep this fast; the
full-size comparison is ``scripts/compare_mteb.py`` (docs/mteb_comparison.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_classification import compare_module, emotion_tsv_task, write_task
from test_pair_classification import mrpc_tsv_task
from test_retrieval import scifact_subset

from evalkit.adapters import adapter_for
from evalkit.encoders import load_encoder
from evalkit.taskspec import TaskSpec, load_task_file

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-3  # the bound; observed differences are ~1e-6 (float noise between the two encoding paths)


@pytest.fixture(scope="module")
def minilm() -> Any:
    encoder = load_encoder("sbert:all-MiniLM-L6-v2")
    yield encoder
    encoder.close()


def both_sides(encoder: Any, task: TaskSpec) -> tuple[float, float]:
    compare = compare_module()
    ours = adapter_for(task.type).evaluate(encoder, task, task.split)
    theirs = compare.mteb_main_score(task, task.split, compare.native_model(encoder))
    assert ours.main_score is not None
    print(f"{task.name}: evalkit {ours.main_score:.7f}, MTEB {theirs:.7f}, |diff| {abs(ours.main_score - theirs):.1e}")  # shown with -s
    return ours.main_score, theirs


def stsb_subset(folder: Path, n: int = 100) -> TaskSpec:
    lines = (REPO / "tasks" / "data" / "sts" / "stsbenchmark" / "test.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "test.tsv").write_text("\n".join(lines[: n + 1]) + "\n", encoding="utf-8")
    return load_task_file(
        write_task(
            folder,
            'name = "STSB-100"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "test.tsv"\n[settings]\nmin_score = 0\nmax_score = 5\n',
        )
    )


def test_sts_equals_mteb(tmp_path: Path, minilm: Any) -> None:
    ours, theirs = both_sides(minilm, stsb_subset(tmp_path))
    assert 0.5 < ours < 1
    assert abs(ours - theirs) <= TOLERANCE


def test_classification_equals_mteb(tmp_path: Path, minilm: Any) -> None:
    task = load_task_file(emotion_tsv_task(tmp_path, n_train=200, n_test=100))  # Emotion rows; 4 experiments of 6 per label
    ours, theirs = both_sides(minilm, task)
    assert 0.1 < ours < 1
    assert abs(ours - theirs) <= TOLERANCE


def test_pair_classification_equals_mteb(tmp_path: Path, minilm: Any) -> None:
    ours, theirs = both_sides(minilm, load_task_file(mrpc_tsv_task(tmp_path, limit=100)))
    assert 0.5 < ours < 1
    assert abs(ours - theirs) <= TOLERANCE


def test_retrieval_equals_mteb(tmp_path: Path, minilm: Any) -> None:
    ours, theirs = both_sides(minilm, load_task_file(scifact_subset(tmp_path, n_queries=10, n_other_docs=10)))
    assert 0.3 < ours < 1
    assert abs(ours - theirs) <= TOLERANCE
