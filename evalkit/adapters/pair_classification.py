"""Pair classification: is a pair a paraphrase/duplicate? Scored as MTEB does, with no training.

Each pair gets a similarity under cosine, dot, Euclidean and Manhattan (distances
negated); for each function: the best-threshold accuracy, the best-threshold F1 with
its precision and recall (a threshold never splits tied scores, as in MTEB), and the
average precision. Main score ``max_ap``, the best AP over the functions (MTEB's
current definition; it also takes the model's own similarity, which is cosine or dot
for the models evalkit runs). Data: TSV/CSV/JSONL with ``sentence1``, ``sentence2``
and a 0/1 ``label`` (renamable with ``settings.columns``). Blank sentences, duplicate
pairs and pairs repeated with the other label are warnings (``TaskOutcome.warnings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from evalkit import subset
from evalkit.adapters.base import TaskAdapter, TaskOutcome, embed_pairs, emit, quality_warnings
from evalkit.adapters.similarity import similarities
from evalkit.data import read_many
from evalkit.encoders.base import Encoder
from evalkit.errors import DataError
from evalkit.schemas import Schema
from evalkit.schemas.task import Column, distinct_columns
from evalkit.taskspec import TaskSpec

FUNCTIONS = ("cosine", "dot", "euclidean", "manhattan")
KINDS = ("accuracy", "f1", "precision", "recall", "ap")


class PairColumns(Schema):
    """Which data columns hold the two sentences and the 0/1 label."""

    sentence1: Column = "sentence1"
    sentence2: Column = "sentence2"
    label: Column = "label"

    @model_validator(mode="after")
    def _distinct(self) -> PairColumns:
        distinct_columns(self)
        return self


class PairClassificationSettings(Schema):
    """``[settings]`` of a pair-classification task: column names only (there is no training)."""

    columns: PairColumns = Field(default_factory=PairColumns)


@dataclass(frozen=True)
class Pairs:
    sentences1: list[str]
    sentences2: list[str]
    labels: np.ndarray
    warnings: tuple[str, ...] = ()


def best_accuracy(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """MTEB's ``_find_best_acc_and_threshold``, vectorised: cut between distinct scores, ranked high to low."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    n = len(y)
    cut = np.flatnonzero(s[:-1] != s[1:])  # row i is the last one above the threshold
    if not len(cut):
        return 0.0, -1.0
    positives_above = np.cumsum(y)[cut]
    negatives_below = (n - np.sum(y)) - (cut + 1 - positives_above)
    accuracy = (positives_above + negatives_below) / n
    best = int(np.argmax(accuracy))
    if accuracy[best] <= 0:
        return 0.0, -1.0
    return float(accuracy[best]), float((s[cut[best]] + s[cut[best] + 1]) / 2)


def best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, float]:
    """MTEB's ``_find_best_f1_and_threshold``: (f1, precision, recall, threshold)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    cut = np.flatnonzero(s[:-1] != s[1:])
    correct = np.cumsum(y)[cut]
    keep = correct > 0
    cut, correct = cut[keep], correct[keep]
    if not len(cut):
        return 0.0, 0.0, 0.0, 0.0
    precision = correct / (cut + 1)
    recall = correct / np.sum(y)
    f1 = 2 * precision * recall / (precision + recall)
    best = int(np.argmax(f1))
    return float(f1[best]), float(precision[best]), float(recall[best]), float((s[cut[best]] + s[cut[best] + 1]) / 2)


def pair_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score

    accuracy, accuracy_threshold = best_accuracy(scores, labels)
    f1, precision, recall, f1_threshold = best_f1(scores, labels)
    return {
        "accuracy": accuracy,
        "accuracy_threshold": accuracy_threshold,
        "f1": f1,
        "f1_threshold": f1_threshold,
        "precision": precision,
        "recall": recall,
        "ap": float(average_precision_score(labels, scores)),
    }


class PairClassificationAdapter(TaskAdapter):
    task_type: ClassVar[str] = "pair_classification"
    scale_invariant: ClassVar[bool] = True  # every metric is unchanged when all vectors are scaled alike
    main_metric: ClassVar[str] = "max_ap"
    unit_bounds: ClassVar[dict[str, tuple[float, float]]] = {"cosine": (-1.0, 1.0), "labels": (0.0, 1.0)}
    Settings: ClassVar[type[Schema]] = PairClassificationSettings
    limit_unit: ClassVar[str] = "pairs"  # --limit N: N pairs stratified by label (evalkit.subset)
    metrics: ClassVar[tuple[str, ...]] = (*(f"{f}_{k}" for f in FUNCTIONS for k in KINDS), *(f"max_{k}" for k in KINDS))

    def validate(self, task: TaskSpec, split: str | None = None) -> None:
        emit(self.load(task, split or task.split).warnings)

    def load(self, task: TaskSpec, split: str) -> Pairs:
        columns = task.settings_as(PairClassificationSettings).columns
        rows = read_many(task.files_for(split), [columns.sentence1, columns.sentence2, columns.label])
        labels = []
        for row in rows:
            value = row.get(columns.label)
            if isinstance(value, bool) or not isinstance(value, int | str) or value not in (0, 1, "0", "1"):
                raise DataError(f"label must be 0 or 1, got {value!r}"[:200], path=row.path, line=row.line, field=columns.label)
            labels.append(int(value))
        y = np.asarray(labels, dtype=np.int64)
        if y.min() == y.max():
            raise DataError(f"every pair has label {y[0]}; AP and F1 need both classes", path=rows[0].path)
        first, second = [r.text(columns.sentence1) for r in rows], [r.text(columns.sentence2) for r in rows]
        notes = quality_warnings(
            rows, {columns.sentence1: first, columns.sentence2: second}, key=lambda i: (first[i], second[i]), target=labels, what="pair"
        )
        keep = subset.stratified(labels, subset.limit_of(task))
        if keep is not None:  # --limit: checked on every pair above, scored on the sample
            first, second, y = subset.pick(first, keep), subset.pick(second, keep), y[keep]
            if y.min() == y.max():
                raise DataError(f"--limit {task.limit} keeps pairs of a single label; AP needs both", path=rows[0].path, field="--limit")
        return Pairs(first, second, y, tuple(notes))

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        data = self.load(task, split)
        n = len(data.labels)
        sims = similarities(*embed_pairs(encoder, data.sentences1, data.sentences2))
        scores: dict[str, float | None] = {}
        thresholds: dict[str, float] = {}
        for name in FUNCTIONS:
            for metric, value in pair_metrics(sims[name], data.labels).items():
                # thresholds live in details; for distances they are negated (scores are -distance)
                (thresholds if metric.endswith("threshold") else scores)[f"{name}_{metric}"] = value
        for metric in KINDS:
            scores[f"max_{metric}"] = max(float(scores[f"{name}_{metric}"] or 0.0) for name in FUNCTIONS)
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=scores,
            n_units=n,
            units={"labels": data.labels.tolist(), **{name: sims[name].tolist() for name in FUNCTIONS}},
            details={"thresholds": thresholds, "best_ap_function": max(FUNCTIONS, key=lambda f: float(scores[f"{f}_ap"] or 0.0))},
            warnings=data.warnings,
        )

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        """max_ap on the resampled pairs (the best function may change between resamples, as it would on new data)."""
        from sklearn.metrics import average_precision_score

        labels = np.asarray(units["labels"])[index]
        return max(float(average_precision_score(labels, np.asarray(units[name])[index])) for name in FUNCTIONS)
