"""Classification: a logistic regression on frozen vectors, MTEB's protocol exactly.

``mode = "undersample"`` (default, MTEB): ``n_experiments`` training sets of at most
``samples_per_label`` examples per label, drawn with MTEB's seeded shuffling (one
``RandomState(seed)`` per experiment, each reshuffling the previous order); each
fits ``LogisticRegression(max_iter=100, random_state=seed)`` on the raw vectors and
predicts the test split. The score is the mean over experiments. ``mode = "full"``
fits once on all of train (SentEval-style, no undersampling).

A task with no train files (or evaluated on its train split) runs MTEB's
cross-validation: ``KFold(k_folds, shuffle=True, random_state=seed)``, undersampling
each fold's training part. MTEB uses a plain shuffled KFold, not a stratified one;
it is kept for parity. Data: TSV/CSV/JSONL with ``text`` and ``label`` columns
(int or string labels; renamable with ``settings.columns``).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from evalkit.adapters.base import TaskOutcome, check_settings, embed, fit_if_needed
from evalkit.data import Row, read_many
from evalkit.encoders.base import Encoder
from evalkit.errors import DataError
from evalkit.taskspec import TaskSpec

SETTINGS = {
    "mode": "'undersample' (MTEB, default) or 'full' (one fit on all of train, as SentEval)",
    "n_experiments": "undersampled training sets (default 10)",
    "samples_per_label": "training examples per label in each experiment (default 8)",
    "train_split": "file group the classifier is trained on (default 'train')",
    "k_folds": "folds when the task has a single split (default 5)",
    "seed": "seed of the sampling, the folds and the classifier (default 42, MTEB's)",
    "max_iter": "LogisticRegression iterations (default 100, MTEB's)",
    "columns": "rename columns: {text = ..., label = ...}",
}
MODES = ("undersample", "full")
METRICS = ("accuracy", "f1", "f1_weighted", "precision", "precision_weighted", "recall", "recall_weighted", "ap", "ap_weighted")


@dataclass(frozen=True)
class Labelled:
    texts: list[str]
    labels: list[Hashable]
    rows: list[Row]


def undersample(labels: Sequence[Hashable], per_label: int, seed: int, order: list[int] | None) -> tuple[list[int], list[int]]:
    """MTEB's ``_undersample_data``: reshuffle ``order`` with a fresh RandomState(seed), keep the first ``per_label`` of each label."""
    order = list(range(len(labels))) if order is None else order
    np.random.RandomState(seed).shuffle(order)
    counts: dict[Hashable, int] = defaultdict(int)
    picked = []
    for i in order:
        if counts[labels[i]] < per_label:
            picked.append(i)
            counts[labels[i]] += 1
    return picked, order


def metrics(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> dict[str, float | None]:
    """MTEB's ``_calculate_scores``; AP (binary tasks) on the hard predictions, positive label 1 (else the larger label)."""
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_score, recall_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        scores: dict[str, float | None] = {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "f1": float(f1_score(y_true, y_pred, average="macro")),
            "f1_weighted": float(f1_score(y_true, y_pred, average="weighted")),
            "precision": float(precision_score(y_true, y_pred, average="macro")),
            "precision_weighted": float(precision_score(y_true, y_pred, average="weighted")),
            "recall": float(recall_score(y_true, y_pred, average="macro")),
            "recall_weighted": float(recall_score(y_true, y_pred, average="weighted")),
            "ap": None,
            "ap_weighted": None,
        }
    classes = sorted(set(y_true), key=_label_key)
    if len(classes) == 2:
        positive = 1 if set(classes) == {0, 1} else classes[1]
        truth = np.asarray([y == positive for y in y_true], dtype=np.int64)
        predicted = np.asarray([y == positive for y in y_pred], dtype=np.float64)
        scores["ap"] = scores["ap_weighted"] = float(average_precision_score(truth, predicted))
    return scores


def _label_key(label: Hashable) -> tuple[int, Any]:
    return (0, label) if isinstance(label, int) else (1, str(label))


def mean_scores(per_experiment: list[dict[str, float | None]]) -> dict[str, float | None]:
    """MTEB's ``_calculate_avg_scores``: mean of each metric over the experiments that define it."""
    out: dict[str, float | None] = {}
    for key in METRICS:
        values = [float(v) for s in per_experiment if (v := s[key]) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


class ClassificationAdapter:
    task_type: ClassVar[str] = "classification"
    main_metric: ClassVar[str] = "accuracy"

    def validate(self, task: TaskSpec) -> None:
        check_settings(task, SETTINGS)
        self._options(task)
        columns = task.setting("columns", {})
        if not isinstance(columns, dict) or set(columns) - {"text", "label"}:
            raise DataError("must be a table with keys text and/or label", path=task.source, field="settings.columns")
        test = self.load(task, task.split)
        if not self._cross_validation(task, task.split):
            self._check_labels(task, self.load(task, task.setting("train_split", "train")), test, warn=False)

    def _options(self, task: TaskSpec) -> dict[str, Any]:
        opts: dict[str, Any] = {"mode": task.setting("mode", "undersample")}
        if opts["mode"] not in MODES:
            raise DataError(f"must be one of {', '.join(MODES)}, got {opts['mode']!r}", path=task.source, field="settings.mode")
        for key, default, low in (
            ("n_experiments", 10, 1),
            ("samples_per_label", 8, 1),
            ("k_folds", 5, 2),
            ("seed", 42, 0),
            ("max_iter", 100, 1),
        ):
            value = task.setting(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise DataError(f"must be an integer >= {low}, got {value!r}", path=task.source, field=f"settings.{key}")
            opts[key] = value
        train = task.setting("train_split", "train")
        if not isinstance(train, str):
            raise DataError("must be text", path=task.source, field="settings.train_split")
        opts["train_split"] = train
        return opts

    def _cross_validation(self, task: TaskSpec, split: str) -> bool:
        train = task.setting("train_split", "train")
        return train not in task.files or train == split

    def load(self, task: TaskSpec, split: str) -> Labelled:
        columns = {"text": "text", "label": "label", **task.setting("columns", {})}
        rows = read_many(task.files_for(split), [columns["text"], columns["label"]])
        labels: list[Hashable] = []
        kind: type | None = None
        for row in rows:
            value = row.get(columns["label"])
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise DataError(
                    f"label must be an integer or a string, got {value!r}", path=row.path, line=row.line, field=columns["label"]
                )
            if kind is not None and type(value) is not kind:
                raise DataError(
                    f"label {value!r} is a {type(value).__name__} but earlier labels are {kind.__name__}s",
                    path=row.path,
                    line=row.line,
                    field=columns["label"],
                    hint="use one type for all labels (MTEB would treat 1 and '1' as different classes)",
                )
            kind = type(value)
            labels.append(value)
        return Labelled([r.text(columns["text"]) for r in rows], labels, rows)

    def _check_labels(self, task: TaskSpec, train: Labelled, test: Labelled, warn: bool = True) -> None:
        """A train split with one class cannot be fitted; test labels unseen in train are tolerated as MTEB does, with a warning."""
        known = set(train.labels)
        if len(known) < 2:
            raise DataError(
                f"the training data has a single label ({next(iter(known))!r}); a classifier needs two", path=train.rows[0].path
            )
        if type(train.labels[0]) is not type(test.labels[0]):
            raise DataError(
                "train labels and test labels have different types (int vs string)", path=test.rows[0].path, line=test.rows[0].line
            )
        unseen = [(r, y) for r, y in zip(test.rows, test.labels, strict=True) if y not in known]
        if unseen and warn:
            names = sorted({str(y) for _, y in unseen})
            warnings.warn(
                f"{unseen[0][0].path}: {len(unseen)} test examples (first at line {unseen[0][0].line}) have labels absent from train "
                f"({', '.join(names[:5])}); they are kept and always misclassified, as in MTEB",
                stacklevel=3,
            )

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        opts = self._options(task)
        if self._cross_validation(task, split):
            return self._cross_validate(encoder, task, split, opts)
        train, test = self.load(task, opts["train_split"]), self.load(task, split)
        self._check_labels(task, train, test)
        if opts["mode"] == "full":
            picks = [list(range(len(train.labels)))]
        else:
            picks, order = [], None
            for _ in range(opts["n_experiments"]):
                picked, order = undersample(train.labels, opts["samples_per_label"], opts["seed"], order)
                picks.append(picked)
        union = sorted(set().union(*picks))
        texts = [train.texts[i] for i in union] + test.texts
        fit_if_needed(encoder, texts)
        vectors = embed(encoder, texts)
        position = {index: pos for pos, index in enumerate(union)}
        train_vectors, test_vectors = vectors[: len(union)], vectors[len(union) :]
        runs = []
        for picked in picks:
            rows = [position[i] for i in picked]
            runs.append((train_vectors[rows], [train.labels[i] for i in picked], test_vectors, test.labels, None))
        return self._outcome(runs, len(test.labels), opts, {"n_train_embedded": len(union)})

    def _cross_validate(self, encoder: Encoder, task: TaskSpec, split: str, opts: dict[str, Any]) -> TaskOutcome:
        """MTEB's ``_evaluate_subset_cross_validation`` (the shuffled order is carried from fold to fold, as there)."""
        from sklearn.model_selection import KFold

        data = self.load(task, split)
        if len(data.labels) < opts["k_folds"]:
            raise DataError(f"{len(data.labels)} examples cannot be split into {opts['k_folds']} folds", path=data.rows[0].path)
        fit_if_needed(encoder, data.texts)
        vectors = embed(encoder, data.texts)
        labels = data.labels
        runs, order = [], None
        folds = KFold(n_splits=opts["k_folds"], shuffle=True, random_state=opts["seed"]).split(range(len(labels)))
        for train_idx, test_idx in folds:
            fold_labels = [labels[i] for i in train_idx]
            if opts["mode"] == "full":
                picked = list(range(len(train_idx)))
            else:
                picked, order = undersample(fold_labels, opts["samples_per_label"], opts["seed"], order)
            runs.append(
                (vectors[train_idx][picked], [fold_labels[i] for i in picked], vectors[test_idx], [labels[i] for i in test_idx], test_idx)
            )
        return self._outcome(runs, len(labels), opts, {"cross_validation_folds": opts["k_folds"]})

    def _outcome(self, runs: list[tuple[Any, ...]], n: int, opts: dict[str, Any], extra: dict[str, Any]) -> TaskOutcome:
        from sklearn.linear_model import LogisticRegression

        per_experiment, correct = [], []
        for x_train, y_train, x_test, y_test, members in runs:
            if len(set(y_train)) < 2:
                raise DataError("a training sample holds a single label; use more examples per label or fewer folds")
            model = LogisticRegression(max_iter=opts["max_iter"], random_state=opts["seed"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter=100 is MTEB's protocol, not a fault
                model.fit(x_train, y_train)
            predicted = model.predict(x_test).tolist()
            per_experiment.append(metrics(y_test, predicted))
            hits = ["1" if p == y else "0" for p, y in zip(predicted, y_test, strict=True)]
            if members is None:
                correct.append("".join(hits))
            else:  # a fold scores only its own examples; the others are marked '-'
                marks = ["-"] * n
                for i, hit in zip(members, hits, strict=True):
                    marks[i] = hit
                correct.append("".join(marks))
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=mean_scores(per_experiment),
            n_units=n,
            units={"correct": correct},
            details={"mode": opts["mode"], "scores_per_experiment": per_experiment, **extra},
        )

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        """Mean over experiments of the accuracy on the resampled test examples."""
        accuracies = []
        for run in units["correct"]:
            marks = np.frombuffer(run.encode("ascii"), dtype=np.uint8)[index]
            scored = marks != ord("-")
            if scored.any():
                accuracies.append(float(np.mean(marks[scored] == ord("1"))))
        return float(np.mean(accuracies)) if accuracies else float("nan")
