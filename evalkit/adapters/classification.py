"""Classification: a logistic regression on frozen vectors, MTEB's protocol exactly.

Two protocols, chosen in the task file and never switched silently:

``protocol = "train_test"`` (default): the classifier is trained on the file group
``train_split`` (default ``train``; a name that is not a file group is an error) and
scored on the evaluated split, which must be another group. ``mode = "undersample"``
(default, MTEB): ``n_experiments`` training sets of at most ``samples_per_label``
examples per label, drawn with MTEB's seeded shuffling (one ``RandomState(seed)`` per
experiment, each reshuffling the previous order); each fits
``LogisticRegression(max_iter=100, random_state=seed)`` on the raw vectors and
predicts the evaluated split. The score is the mean over experiments. ``mode =
"full"`` fits once on all of train (SentEval-style, no undersampling).

``protocol = "cross_validation"``: MTEB's cross-validation on the evaluated split
alone (a task with a single file group, or scoring the train split itself):
``KFold(k_folds, shuffle=True, random_state=seed)`` (``k_folds`` default 5, allowed
only with this protocol), undersampling each fold's training part. MTEB uses a plain
shuffled KFold, not a stratified one; it is kept for parity.

``protocol = "senteval"``: SentEval's ``InnerKFoldClassifier`` (``usepytorch=False``),
for tasks with a single split (MR, CR, SUBJ, MPQA style): outer
``StratifiedKFold(k_folds, shuffle=True, random_state=seed)`` (``k_folds`` default 10,
``seed`` default 1111, SentEval's), no undersampling; in each outer fold the L2 penalty
``C`` is chosen from SentEval's grid ``[2**t for t in range(-2, 4)]`` by an inner
stratified k-fold on the fold's training part (same k and seed; dev accuracies rounded
to 2 decimals in percent and the first best kept, as there), then
``LogisticRegression(C, random_state=seed, max_iter)`` is refitted on the whole training
part and scored on the held-out fold. ``accuracy`` is the mean fold accuracy (SentEval
rounds each to 2 decimals in percent: that number is ``details.senteval.test_accuracy``);
the other metrics are averaged over folds. The logistic regression is scikit-learn's of
today (lbfgs); SentEval's papers ran sklearn < 0.22, whose default solver was liblinear.
Costs ``k_folds * (6 * k_folds + 1)`` fits (610 at k = 10).

Data: TSV/CSV/JSONL with ``text`` and ``label`` columns (int or string labels;
renamable with ``settings.columns``). Blank texts, empty labels, duplicate rows and
texts repeated with a different label are warnings (``TaskOutcome.warnings``), as are
test labels absent from train (kept and always wrong, as in MTEB); every fold or
experiment whose training sample holds one label is refused before any model loads.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from evalkit import subset
from evalkit.adapters.base import TaskAdapter, TaskOutcome, check_work, embed, emit, fit_if_needed, quality_warnings, where
from evalkit.data import Row, read_many
from evalkit.encoders.base import Encoder
from evalkit.errors import DataError
from evalkit.schemas import Schema, Seed
from evalkit.schemas.task import Column, GroupName, distinct_columns, groups_in
from evalkit.taskspec import TaskSpec

METRICS = ("accuracy", "f1", "f1_weighted", "precision", "precision_weighted", "recall", "recall_weighted", "ap", "ap_weighted")
LABEL_LIMIT = 2**63  # labels are numpy int64 inside scikit-learn
SENTEVAL_GRID = tuple(2**t for t in range(-2, 4, 1))  # InnerKFoldClassifier's C values when usepytorch=False
SENTEVAL_K_FOLDS = 10  # SentEval's examples run kfold = 10
SENTEVAL_SEED = 1111  # SentEval's default seed (its folds' random_state)


class ClassificationColumns(Schema):
    """Which data columns hold the text and the label."""

    text: Column = "text"
    label: Column = "label"

    @model_validator(mode="after")
    def _distinct(self) -> ClassificationColumns:
        distinct_columns(self)
        return self


class ClassificationSettings(Schema):
    """``[settings]`` of a classification task; ``train_split`` and ``k_folds`` resolve to the protocol's defaults."""

    protocol: Literal["train_test", "cross_validation", "senteval"] = Field(
        default="train_test",
        description="train_test (train on train_split), cross_validation (MTEB's k-fold on the split) or senteval "
        "(SentEval's stratified 10-fold with the L2 penalty chosen by inner cross-validation)",
    )
    mode: Literal["undersample", "full"] = "undersample"
    n_experiments: Annotated[int, Field(ge=1, le=1000)] = 10
    samples_per_label: Annotated[int, Field(ge=1, le=10**9)] = 8
    train_split: GroupName | None = Field(default=None, validate_default=True)
    k_folds: Annotated[int, Field(ge=2, le=1000)] | None = Field(default=None, validate_default=True)
    seed: Seed = 42
    max_iter: Annotated[int, Field(ge=1, le=100_000)] = 100
    columns: ClassificationColumns = Field(default_factory=ClassificationColumns)

    @model_validator(mode="before")
    @classmethod
    def _senteval_defaults(cls, data: Any) -> Any:
        """SentEval's own defaults under its protocol: every training example (no undersampling) and seed 1111."""
        if isinstance(data, dict) and data.get("protocol") == "senteval":
            return {"mode": "full", "seed": SENTEVAL_SEED, **data}
        return data

    @field_validator("mode")
    @classmethod
    def _senteval_mode(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("protocol") == "senteval" and value != "full":
            raise ValueError("protocol = 'senteval' trains on every example of each fold; undersampling does not apply")
        return value

    @field_validator("n_experiments", "samples_per_label")
    @classmethod
    def _undersampling_only(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("protocol") == "senteval":
            raise ValueError("does not apply to protocol = 'senteval' (each fold trains on all of its training part)")
        if info.data.get("mode") == "full":
            raise ValueError("applies only to mode = 'undersample' (mode = 'full' fits once on all of train)")
        return value

    @field_validator("train_split")
    @classmethod
    def _train_split(cls, value: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("protocol")
        if protocol in ("cross_validation", "senteval"):
            if value is not None:
                raise ValueError(f"does not apply to protocol = '{protocol}' (the folds come from the evaluated split)")
            return None
        value = value or "train"
        groups = groups_in(info)
        if protocol is not None and groups is not None and value not in groups:
            raise ValueError(
                f"the classifier's training split names no file group ([files] has: {', '.join(groups)}; "
                "to cross-validate on the evaluated split instead, set protocol = 'cross_validation')"
            )
        return value

    @field_validator("k_folds")
    @classmethod
    def _k_folds(cls, value: int | None, info: ValidationInfo) -> int | None:
        protocol = info.data.get("protocol")
        if protocol == "cross_validation":
            return 5 if value is None else value
        if protocol == "senteval":
            return SENTEVAL_K_FOLDS if value is None else value
        if value is not None and protocol is not None:
            raise ValueError("applies only to protocol = 'cross_validation' or 'senteval'")
        return value


@dataclass(frozen=True)
class Labelled:
    texts: list[str]
    labels: list[Hashable]
    rows: list[Row]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What one evaluation fits and scores, decided from labels alone (so it is checked before any model loads).

    ``runs`` are (training indices, test indices): into ``train`` and ``test`` for the
    train/test protocol (test indices None: all of test), into ``test`` for
    cross-validation (``train`` is None). ``inner`` (SentEval only) holds each run's
    inner folds, as (training, held-out) positions into that run's training indices.
    """

    settings: ClassificationSettings
    test: Labelled
    train: Labelled | None
    runs: list[tuple[list[int], list[int] | None]]
    warnings: tuple[str, ...] = field(default=())
    inner: list[list[tuple[np.ndarray, np.ndarray]]] | None = None


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


def limited(data: Labelled, task: TaskSpec) -> Labelled:
    """``--limit``: a stratified sample of the evaluated split (every row was checked when it loaded)."""
    keep = subset.stratified(data.labels, subset.limit_of(task))
    if keep is None:
        return data
    return Labelled(subset.pick(data.texts, keep), subset.pick(data.labels, keep), subset.pick(data.rows, keep), data.warnings)


def _stratified(task: TaskSpec, labels: np.ndarray, k: int, seed: int, what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``StratifiedKFold(k, shuffle=True, random_state=seed)`` folds of ``labels`` (SentEval's), or one DataError."""
    from sklearn.model_selection import StratifiedKFold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a label rarer than k: said once in the plan's warnings
        try:
            return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros((len(labels), 1)), labels))
        except ValueError as exc:
            raise task.error("settings.k_folds", f"{k} stratified folds{what} cannot be made: {exc}"[:300]) from None


def senteval_penalty(
    x: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], seed: int, max_iter: int
) -> tuple[float, float]:
    """SentEval's inner cross-validation: the grid's C with the best dev accuracy (percent, rounded to 2 decimals, first best).

    The 6 x k small fits run on one BLAS thread: on fits this size BLAS threads mostly
    spin (17 times the CPU time for a 216 x 256 fit, measured on 2 cores).
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    scores = []
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter=100 is SentEval's protocol too
        for c in SENTEVAL_GRID:
            accuracies = []
            for inner_train, inner_test in folds:
                model = LogisticRegression(C=c, random_state=seed, max_iter=max_iter)
                model.fit(x[inner_train], y[inner_train])
                accuracies.append(model.score(x[inner_test], y[inner_test]))
            scores.append(round(100 * np.mean(accuracies), 2))  # numpy's rounding of a numpy float, exactly as SentEval
    best = int(np.argmax(scores))
    return float(SENTEVAL_GRID[best]), float(scores[best])


def mean_scores(per_experiment: list[dict[str, float | None]]) -> dict[str, float | None]:
    """MTEB's ``_calculate_avg_scores``: mean of each metric over the experiments that define it."""
    out: dict[str, float | None] = {}
    for key in METRICS:
        values = [float(v) for s in per_experiment if (v := s[key]) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


class ClassificationAdapter(TaskAdapter):
    task_type: ClassVar[str] = "classification"
    scale_invariant: ClassVar[bool] = False  # logistic regression is not: its penalty depends on scale
    main_metric: ClassVar[str] = "accuracy"
    Settings: ClassVar[type[Schema]] = ClassificationSettings
    limit_unit: ClassVar[str] = "examples"  # --limit N: N examples of the evaluated split, stratified; train untouched
    metrics: ClassVar[tuple[str, ...]] = METRICS

    def validate(self, task: TaskSpec, split: str | None = None) -> None:
        emit(self.plan(task, split or task.split).warnings)

    def load(self, task: TaskSpec, split: str) -> Labelled:
        columns = task.settings_as(ClassificationSettings).columns
        rows = read_many(task.files_for(split), [columns.text, columns.label])
        labels: list[Hashable] = []
        kind: type | None = None
        for row in rows:
            value = row.get(columns.label)
            if isinstance(value, bool) or not isinstance(value, int | str) or (isinstance(value, int) and abs(value) >= LABEL_LIMIT):
                raise DataError(
                    f"label must be an integer or a string, got {value!r}"[:200], path=row.path, line=row.line, field=columns.label
                )
            if kind is not None and type(value) is not kind:
                raise DataError(
                    f"label {value!r} is a {type(value).__name__} but earlier labels are {kind.__name__}s"[:200],
                    path=row.path,
                    line=row.line,
                    field=columns.label,
                    hint="use one type for all labels (MTEB would treat 1 and '1' as different classes)",
                )
            kind = type(value)
            labels.append(value)
        texts = [r.text(columns.text) for r in rows]
        notes = quality_warnings(rows, {columns.text: texts}, key=lambda i: texts[i], target=labels)
        return Labelled(texts, labels, rows, tuple(notes))

    def plan(self, task: TaskSpec, split: str) -> Plan:
        """The protocol's training samples for ``split``, checked: every one must hold two labels."""
        settings = task.settings_as(ClassificationSettings)
        if settings.protocol == "cross_validation":
            return self._plan_folds(task, split, settings)
        if settings.protocol == "senteval":
            return self._plan_senteval(task, split, settings)
        train_split = settings.train_split or "train"
        if split == train_split:
            raise DataError(
                f"split '{split}' is the classifier's training split; scoring it would test the classifier on its own training data",
                path=task.source,
                field="split",
                hint="evaluate another split, or set protocol = 'cross_validation' in [settings] to cross-validate on it",
            )
        shared = sorted(set(task.files_for(split)) & set(task.files_for(train_split)))
        if shared:
            raise task.error(
                f"files.{split}",
                f"split '{split}' reads {shared[0].name}, which the training split '{train_split}' also reads; "
                "the classifier would be scored on its own training data",
                hint="point the groups at different files, or set protocol = 'cross_validation'",
            )
        test = limited(self.load(task, split), task)
        train = self.load(task, train_split)
        notes = [*train.warnings, *test.warnings, *self._check_labels(task, train, test)]
        if settings.mode == "full":
            runs: list[tuple[list[int], list[int] | None]] = [(list(range(len(train.labels))), None)]
        else:
            n = len(train.labels)
            per_run = min(n, settings.samples_per_label * len(set(train.labels)))
            what = f"n_experiments x training examples = {settings.n_experiments} x {per_run:,} planned indices"
            check_work(task, "settings.n_experiments", settings.n_experiments * per_run, n, what)
            runs, order = [], None
            for _ in range(settings.n_experiments):
                picked, order = undersample(train.labels, settings.samples_per_label, settings.seed, order)
                runs.append((picked, None))
        self._check_main_score(task, test)
        return Plan(settings, test, train, runs, tuple(notes))

    def _plan_folds(self, task: TaskSpec, split: str, settings: ClassificationSettings) -> Plan:
        """MTEB's ``_evaluate_subset_cross_validation`` folds (the shuffled order is carried from fold to fold, as there)."""
        from sklearn.model_selection import KFold

        data = limited(self.load(task, split), task)
        labels, k = data.labels, settings.k_folds or 5
        if len(labels) < k:
            raise task.error("settings.k_folds", f"split '{split}' has {len(labels)} examples, too few for {k} folds")
        n = len(labels)  # each fold shuffles and samples from its n(k-1)/k training examples
        check_work(task, "settings.k_folds", k * n, n, f"k_folds x examples = {k} x {n:,} planned fold indices")
        runs: list[tuple[list[int], list[int] | None]] = []
        order = None
        for number, (train_idx, test_idx) in enumerate(
            KFold(n_splits=k, shuffle=True, random_state=settings.seed).split(range(len(labels))), 1
        ):
            fold_labels = [labels[i] for i in train_idx]
            if settings.mode == "full":
                picked = list(range(len(train_idx)))
            else:
                picked, order = undersample(fold_labels, settings.samples_per_label, settings.seed, order)
            chosen = [int(train_idx[i]) for i in picked]
            if len({labels[i] for i in chosen}) < 2:
                raise task.error(
                    "settings.k_folds",
                    f"fold {number} of {k} trains on examples of a single label; a classifier needs two",
                    hint="use fewer folds, more examples per label, or more data",
                )
            runs.append((chosen, [int(i) for i in test_idx]))
        self._check_main_score(task, data)
        return Plan(settings, data, None, runs, data.warnings)

    def _plan_senteval(self, task: TaskSpec, split: str, settings: ClassificationSettings) -> Plan:
        """SentEval's ``InnerKFoldClassifier`` folds, outer and inner, from labels alone: every training part must hold two labels."""
        data = limited(self.load(task, split), task)
        k = settings.k_folds or SENTEVAL_K_FOLDS
        n = len(data.labels)  # each of k outer folds plans k inner folds over its n(k-1)/k examples
        check_work(task, "settings.k_folds", k * k * n, n, f"k_folds^2 x examples = {k}^2 x {n:,} planned fold indices")
        labels = np.asarray(data.labels)
        counts = Counter(data.labels)
        if len(counts) < 2:
            raise DataError(
                f"split '{split}' has a single label ({next(iter(counts))!r}); a classifier needs two"[:200], path=data.rows[0].path
            )
        notes = list(data.warnings)
        rare = sorted((label for label, n in counts.items() if n < k), key=_label_key)
        if rare:
            shown = ", ".join(repr(label)[:40] for label in rare[:5]) + (", ..." if len(rare) > 5 else "")
            notes.append(
                f"{data.rows[0].path}: {len(rare)} labels have fewer than {k} examples ({shown}); "
                "some folds hold none of them (stratified folds, as in SentEval)"
            )
        runs: list[tuple[list[int], list[int] | None]] = []
        inner: list[list[tuple[np.ndarray, np.ndarray]]] = []
        for number, (train_idx, test_idx) in enumerate(_stratified(task, labels, k, settings.seed, ""), 1):
            part = labels[train_idx]
            folds = _stratified(task, part, k, settings.seed, f" of the training part of fold {number}")
            if any(len(set(part[inner_train].tolist())) < 2 for inner_train, _ in [(np.arange(len(part)), None), *folds]):
                raise task.error(
                    "settings.k_folds",
                    f"a training part of fold {number} of {k} (outer or inner) holds a single label; a classifier needs two",
                    hint="use fewer folds, or more examples per label",
                )
            runs.append(([int(i) for i in train_idx], [int(i) for i in test_idx]))
            inner.append(folds)
        self._check_main_score(task, data)
        return Plan(settings, data, None, runs, tuple(notes), inner=inner)

    def _check_labels(self, task: TaskSpec, train: Labelled, test: Labelled) -> list[str]:
        """A train split with one class cannot be fitted; test labels unseen in train are kept as MTEB does, with a warning."""
        known = set(train.labels)
        if len(known) < 2:
            raise DataError(
                f"the training data has a single label ({next(iter(known))!r}); a classifier needs two"[:200], path=train.rows[0].path
            )
        if type(train.labels[0]) is not type(test.labels[0]):
            raise DataError(
                "train labels and test labels have different types (int vs string)", path=test.rows[0].path, line=test.rows[0].line
            )
        unseen = [(r, y) for r, y in zip(test.rows, test.labels, strict=True) if y not in known]
        if not unseen:
            return []
        names = sorted({str(y) for _, y in unseen})
        shown = ", ".join(repr(n)[:40] for n in names[:5]) + (", ..." if len(names) > 5 else "")
        return [
            f"{where(unseen[0][0].path, unseen[0][0].line)}: {len(unseen)} test examples have labels absent from train "
            f"({shown}); they are kept and always misclassified, as in MTEB"
        ]

    def _check_main_score(self, task: TaskSpec, test: Labelled) -> None:
        if task.main_score in ("ap", "ap_weighted") and len(set(test.labels)) != 2:
            raise task.error("main_score", f"'{task.main_score}' is defined only for two classes; this split has {len(set(test.labels))}")

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        plan = self.plan(task, split)
        test = plan.test
        if plan.train is None:  # cross-validation: one set of vectors, folds index into it
            fit_if_needed(encoder, test.texts)
            vectors = embed(encoder, test.texts)
            runs: list[tuple[Any, ...]] = []
            for chosen, members in plan.runs:
                assert members is not None
                runs.append(
                    (vectors[chosen], [test.labels[i] for i in chosen], vectors[members], [test.labels[i] for i in members], members)
                )
            extra: dict[str, Any] = {"cross_validation_folds": len(plan.runs)}
            if plan.inner is not None:  # SentEval: each fold's L2 penalty from its own inner cross-validation
                labels, opts = np.asarray(test.labels), plan.settings
                penalties = [
                    senteval_penalty(vectors[part], labels[part], folds, opts.seed, opts.max_iter)
                    for (part, _), folds in zip(plan.runs, plan.inner, strict=True)
                ]
                extra["senteval"] = {"C": [c for c, _ in penalties], "dev_accuracy": [dev for _, dev in penalties]}
        else:
            train = plan.train
            union = sorted(set().union(*(picked for picked, _ in plan.runs)))
            texts = [train.texts[i] for i in union] + test.texts
            fit_if_needed(encoder, texts)
            vectors = embed(encoder, texts)
            position = {index: pos for pos, index in enumerate(union)}
            train_vectors, test_vectors = vectors[: len(union)], vectors[len(union) :]
            runs = []
            for picked, _ in plan.runs:
                rows = [position[i] for i in picked]
                runs.append((train_vectors[rows], [train.labels[i] for i in picked], test_vectors, test.labels, None))
            extra = {"n_train_embedded": len(union)}
        return self._outcome(runs, len(test.labels), plan.settings, extra, plan.warnings)

    def _outcome(
        self, runs: list[tuple[Any, ...]], n: int, settings: ClassificationSettings, extra: dict[str, Any], notes: tuple[str, ...]
    ) -> TaskOutcome:
        from sklearn.linear_model import LogisticRegression

        senteval = extra.get("senteval")
        per_experiment, correct = [], []
        for number, (x_train, y_train, x_test, y_test, members) in enumerate(runs):
            penalty = senteval["C"][number] if senteval else 1.0  # sklearn's default C elsewhere (MTEB)
            model = LogisticRegression(C=penalty, max_iter=settings.max_iter, random_state=settings.seed)
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
        if senteval:  # the numbers SentEval prints: percent, each fold rounded to 2 decimals, then the mean rounded
            senteval["dev_accuracy_mean"] = float(round(np.mean(senteval["dev_accuracy"]), 2))
            senteval["test_accuracy"] = float(round(np.mean([round(100 * s["accuracy"], 2) for s in per_experiment]), 2))  # type: ignore[operator]
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=mean_scores(per_experiment),
            n_units=n,
            units={"correct": correct},
            details={"mode": settings.mode, "protocol": settings.protocol, "scores_per_experiment": per_experiment, **extra},
            warnings=notes,
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
