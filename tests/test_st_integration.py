"""evalkit as a sentence-transformers evaluator: a real (short) fine-tuning run of the packaged MiniLM tracks STS quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, STSB_TEST

pytestmark = pytest.mark.slow

TRAIN = REPO / "tasks" / "data" / "sts" / "stsbenchmark" / "train.tsv"


@pytest.fixture(scope="module")
def small_sts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("st-sts")
    lines = STSB_TEST.read_text(encoding="utf-8").splitlines()
    (folder / "test.tsv").write_text("\n".join(lines[:121]) + "\n", encoding="utf-8")
    (folder / "task.toml").write_text(
        'name = "STSB120"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "test.tsv"\n[settings]\nmin_score = 0\nmax_score = 5\n',
        encoding="utf-8",
    )
    return folder / "task.toml"


def test_trainer_reports_evalkit_scores_with_intervals_per_epoch(small_sts: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    from evalkit.catalogue import resolve
    from evalkit.integrations.sentence_transformers import EvalkitEvaluator

    rows = [line.split("\t") for line in TRAIN.read_text(encoding="utf-8").splitlines()[1:201]]
    train = Dataset.from_dict(
        {"sentence1": [r[0] for r in rows], "sentence2": [r[1] for r in rows], "score": [float(r[2]) / 5 for r in rows]}
    )
    model = SentenceTransformer(str(resolve("all-MiniLM-L6-v2")), device="cpu")
    evaluator = EvalkitEvaluator([small_sts])
    before = evaluator(model)
    key = "evalkit_STSB120_cosine_spearman"
    assert {key, f"{key}_ci_low", f"{key}_ci_high", "evalkit_mean_main_score"} <= set(before)
    assert before[f"{key}_ci_low"] <= before[key] <= before[f"{key}_ci_high"]
    assert evaluator.primary_metric == "evalkit_mean_main_score"

    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "train"),
        num_train_epochs=1,
        per_device_train_batch_size=32,
        learning_rate=5e-5,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=CosineSimilarityLoss(model), evaluator=evaluator)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if f"eval_{key}" in entry]
    assert len(logged) == 1, trainer.state.log_history
    after = logged[0][f"eval_{key}"]
    assert after != pytest.approx(before[key], abs=1e-9), "a training epoch must change the score the evaluator reports"
    assert 0.5 < after < 1.0
