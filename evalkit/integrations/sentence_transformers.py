"""``EvalkitEvaluator``: evalkit's tasks as a sentence-transformers evaluator, for ``SentenceTransformerTrainer``.

    trainer = SentenceTransformerTrainer(model=model, ..., evaluator=EvalkitEvaluator(["STSBenchmark"]))

Each call scores the model as it is at that step (a fresh fingerprint, so nothing is
served from an earlier step's vectors; a subclass of ``SentenceTransformer`` has no
fingerprint and is always encoded afresh) and leaves it as it was (train/eval mode,
tokenizer settings), with evalkit's protocols, and returns, per task,
the main score and its bootstrap interval (× 100 is *not* applied: the values are the
metric's own scale, as sentence-transformers' evaluators report them):
``evalkit_STSBenchmark_cosine_spearman``, ``…_ci_low``, ``…_ci_high``. The primary
metric is the mean main score over the tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.taskspec import TaskSpec


def _base() -> type:
    """sentence-transformers >= 6 moved the evaluator base class; the old path still works there but warns."""
    import importlib

    try:
        module = importlib.import_module("sentence_transformers.sentence_transformer.evaluation")
    except ImportError:  # pragma: no cover - older sentence-transformers
        module = importlib.import_module("sentence_transformers.evaluation")
    base: type = module.SentenceEvaluator
    return base


class EvalkitEvaluator(_base()):  # type: ignore[misc]
    """Scores the training model on evalkit tasks; metrics named ``{name}_{task}_{metric}``."""

    def __init__(
        self,
        tasks: Sequence[str | Path | TaskSpec],
        *,
        name: str = "evalkit",
        split: str | None = None,
        output: str | Path | None = None,
    ) -> None:
        super().__init__()
        from evalkit.api import prepare

        prepare(["tfidf:lexical"], tasks, split=split)  # validate the tasks now, not at the first evaluation step
        self.tasks = list(tasks)
        self.name = name
        self.split = split
        self.output = output
        self.greater_is_better = True
        self.primary_metric = "mean_main_score"

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        from evalkit.api import evaluate

        label = f"{self.name}-epoch{epoch}-step{steps}" if epoch >= 0 or steps >= 0 else self.name
        results = evaluate({label: model}, self.tasks, split=self.split, output=self.output, cache=False, progress=False)
        metrics: dict[str, float] = {}
        scores = []
        for cell in results.cells:
            if not cell.ok or cell.main_score is None:
                raise RuntimeError(f"evalkit: {cell.task} failed: {cell.error}")
            key = f"{cell.task}_{cell.main_metric}"
            metrics[key] = float(cell.main_score)
            for bound in ("low", "high"):
                value = (cell.ci or {}).get(bound)
                if value is not None:
                    metrics[f"{key}_ci_{bound}"] = float(value)
            scores.append(float(cell.main_score))
        metrics["mean_main_score"] = sum(scores) / len(scores)
        self.primary_metric = "mean_main_score"
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
