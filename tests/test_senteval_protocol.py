"""SentEval's classification protocol (``protocol = "senteval"``) against a direct scikit-learn implementation.

The reference below is SentEval's ``InnerKFoldClassifier.run`` (``senteval/tools/validation.py``,
``usepytorch=False``) written out with scikit-learn: outer and inner
``StratifiedKFold(k, shuffle=True, random_state=seed)``, the grid ``[2**t for t in
range(-2, 4, 1)]``, dev accuracies rounded to 2 decimals in percent, ``np.argmax``
(first best), a refit on the outer training part. Both sides get the same vectors.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression  # imported before threadpool_limits, so its BLAS is one the limit sees
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from evalkit.adapters import adapter_for
from evalkit.adapters.base import embed
from evalkit.adapters.classification import ClassificationAdapter, ClassificationSettings
from evalkit.encoders import load_encoder
from evalkit.errors import DataError
from evalkit.taskspec import load_task_file

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tasks" / "data" / "classification"


@pytest.fixture(scope="module")
def static() -> Any:
    encoder = load_encoder("static:tokenlearn-static")
    yield encoder
    encoder.close()


def rows(path: Path, n: int) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(n), handle, strict=False)]


def task_file(folder: Path, data: list[dict[str, Any]], settings_toml: str = 'protocol = "senteval"\n') -> Path:
    (folder / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    path = folder / "task.toml"
    path.write_text(
        f'name = "SentEvalStyle"\ntype = "classification"\nsplit = "all"\n[files]\nall = "all.jsonl"\n[settings]\n{settings_toml}',
        encoding="utf-8",
    )
    return path


def senteval_inner_kfold(x: np.ndarray, y: np.ndarray, k: int, seed: int) -> dict[str, Any]:
    """SentEval's InnerKFoldClassifier.run, sklearn path, plus each fold's chosen C and unrounded accuracy."""
    regs = [2**t for t in range(-2, 4, 1)]
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    innerskf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    devresults, testresults, chosen, raw = [], [], [], []
    for train_idx, test_idx in skf.split(x, y):
        x_train, x_test, y_train, y_test = x[train_idx], x[test_idx], y[train_idx], y[test_idx]
        scores = []
        for reg in regs:
            regscores = []
            for inner_train_idx, inner_test_idx in innerskf.split(x_train, y_train):
                clf = LogisticRegression(C=reg, random_state=seed)
                clf.fit(x_train[inner_train_idx], y_train[inner_train_idx])
                regscores.append(clf.score(x_train[inner_test_idx], y_train[inner_test_idx]))
            scores.append(round(100 * np.mean(regscores), 2))
        optreg = regs[np.argmax(scores)]
        devresults.append(np.max(scores))
        clf = LogisticRegression(C=optreg, random_state=seed)
        clf.fit(x_train, y_train)
        chosen.append(optreg)
        raw.append(clf.score(x_test, y_test))
        testresults.append(round(100 * clf.score(x_test, y_test), 2))
    return {
        "dev": round(np.mean(devresults), 2),
        "test": round(np.mean(testresults), 2),
        "C": chosen,
        "dev_per_fold": devresults,
        "accuracy": float(np.mean(raw)),
    }


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    ("source", "n", "settings_toml", "k", "seed"),
    [
        ("sst2/dev.jsonl", 200, 'protocol = "senteval"\n', 10, 1111),  # SentEval's defaults: 10 folds, seed 1111
        ("emotion/test.jsonl", 200, 'protocol = "senteval"\nk_folds = 4\nseed = 7\n', 4, 7),  # six string labels, some rare
    ],
)
def test_equals_direct_sklearn_senteval(tmp_path: Path, static: Any, source: str, n: int, settings_toml: str, k: int, seed: int) -> None:
    data = rows(DATA / source, n)
    task = load_task_file(task_file(tmp_path, data, settings_toml))
    with threadpool_limits(limits=1, user_api="blas"):  # both sides: hundreds of tiny fits, where BLAS threads only spin
        outcome = adapter_for("classification").evaluate(static, task, "all")
        x = embed(static, [r["text"] for r in data])
        reference = senteval_inner_kfold(x, np.asarray([r["label"] for r in data]), k, seed)
    details = outcome.details["senteval"]
    assert details["C"] == [float(c) for c in reference["C"]]
    assert details["dev_accuracy"] == [float(d) for d in reference["dev_per_fold"]]
    assert (details["dev_accuracy_mean"], details["test_accuracy"]) == (reference["dev"], reference["test"])
    assert outcome.main_score == pytest.approx(reference["accuracy"], abs=1e-12)
    assert outcome.details["cross_validation_folds"] == k and len(outcome.units["correct"]) == k
    assert adapter_for("classification").score_units(outcome.units, np.arange(n)) == pytest.approx(outcome.main_score, abs=1e-12)
    assert len(set(details["C"])) > 1 or details["C"][0] != 1.0  # the grid search did something MTEB's fixed C=1 would not


def test_senteval_defaults_and_refusals(tmp_path: Path) -> None:
    data = rows(DATA / "sst2" / "dev.jsonl", 60)
    opts = load_task_file(task_file(tmp_path, data)).settings_as(ClassificationSettings)
    assert (opts.k_folds, opts.seed, opts.mode, opts.train_split) == (10, 1111, "full", None)
    opts = load_task_file(task_file(tmp_path, data, 'protocol = "senteval"\nseed = 3\nk_folds = 5\n')).settings_as(ClassificationSettings)
    assert (opts.k_folds, opts.seed) == (5, 3)
    assert load_task_file(task_file(tmp_path, data, 'protocol = "cross_validation"\n')).settings_as(ClassificationSettings).seed == 42
    for extra, field, message in [
        ("n_experiments = 3\n", "settings.n_experiments", "does not apply to protocol = 'senteval'"),
        ('mode = "undersample"\n', "settings.mode", "undersampling does not apply"),
        ('train_split = "all"\n', "settings.train_split", "does not apply to protocol = 'senteval'"),
    ]:
        with pytest.raises(DataError, match=rf"task\.toml:\d+: field '{field}': .*{message}"):
            load_task_file(task_file(tmp_path, data, 'protocol = "senteval"\n' + extra))
    with pytest.raises(DataError, match="applies only to protocol = 'cross_validation' or 'senteval'"):
        load_task_file(task_file(tmp_path, data, 'train_split = "all"\nk_folds = 10\n'))


def test_too_few_examples_is_exit_2_before_any_model_loads(tmp_path: Path) -> None:
    path = task_file(tmp_path, rows(DATA / "sst2" / "dev.jsonl", 12), 'protocol = "senteval"\n')  # 12 rows, 10 folds
    done = subprocess.run(
        [sys.executable, "-m", "evalkit", "run", "-e", "sbert:all-MiniLM-L6-v2", "-t", str(path), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "task.toml" in lines[0] and "settings.k_folds" in lines[0]


@settings(max_examples=30, deadline=None)
@given(labels=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=40), k=st.integers(2, 6))
def test_folds_are_stratified_partitions_or_one_clear_error(labels: list[str], k: int) -> None:
    """Any label sequence gives SentEval's folds (outer and inner partitions, both classes in every training part) or a DataError."""
    with tempfile.TemporaryDirectory() as folder:
        data = [{"text": f"text {i}", "label": label} for i, label in enumerate(labels)]
        task = load_task_file(task_file(Path(folder), data, f'protocol = "senteval"\nk_folds = {k}\n'))
        try:
            plan = ClassificationAdapter().plan(task, "all")
        except DataError as exc:
            assert exc.field in ("settings.k_folds", None) and exc.path is not None
            return
    assert plan.inner is not None and len(plan.runs) == k
    held_out = sorted(i for _, test in plan.runs for i in test or [])
    assert held_out == list(range(len(labels)))
    counts = Counter(labels)
    for (train, test), inner in zip(plan.runs, plan.inner, strict=True):
        assert sorted([*train, *(test or [])]) == list(range(len(labels)))
        for label, total in counts.items():  # stratified: each label spread as evenly as the folds allow
            assert total // k <= sum(labels[i] == label for i in test or []) <= -(-total // k)
        assert sorted(int(i) for _, part in inner for i in part) == list(range(len(train)))
        for part, _ in inner:
            assert len({labels[train[i]] for i in part}) >= 2
