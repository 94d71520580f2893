"""Classification adapter: MTEB's protocol, checked against the installed mteb on user-written data."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from evalkit.adapters import adapter_for
from evalkit.adapters.classification import ClassificationAdapter, undersample
from evalkit.encoders import load_encoder
from evalkit.errors import DataError
from evalkit.taskspec import TaskIndex, load_task_file

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tasks" / "data" / "classification"


def compare_module() -> ModuleType:
    """scripts/compare_mteb.py holds the MTEB reference side (task objects loaded with local data, the encoder bridge)."""
    if "compare_mteb" not in sys.modules:
        spec = importlib.util.spec_from_file_location("compare_mteb", REPO / "scripts" / "compare_mteb.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["compare_mteb"] = module
        spec.loader.exec_module(module)
    return sys.modules["compare_mteb"]


@pytest.fixture(scope="module")
def static() -> Any:
    return load_encoder("static:tokenlearn-static")


def jsonl(path: Path, limit: int) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(limit), handle, strict=False)]


def write_task(folder: Path, body: str) -> Path:
    path = folder / "task.toml"
    path.write_text(body, encoding="utf-8")
    return path


def emotion_tsv_task(folder: Path, extra: str = "", n_train: int = 400, n_test: int = 150) -> Path:
    """A user's task: TSV files with their own column names, string labels."""
    for split, limit in (("train", n_train), ("test", n_test)):
        lines = ["sentence\tcategory"] + [f"{r['text']}\t{r['label']}" for r in jsonl(DATA / "emotion" / f"{split}.jsonl", limit)]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return write_task(
        folder,
        f"""name = "MyEmotions"
type = "classification"
split = "test"
[files]
train = "train.tsv"
test = "test.tsv"
[settings]
samples_per_label = 6
n_experiments = 4
columns = {{text = "sentence", label = "category"}}
{extra}""",
    )


def test_undersampling_draws_mteb_indices() -> None:
    import mteb
    from datasets import Dataset

    labels = [int(x) for x in np.random.default_rng(3).integers(0, 5, size=120)]
    ref = mteb.get_task("Banking77Classification")
    ref.samples_per_label = 4
    dataset = Dataset.from_dict({"text": [str(i) for i in range(120)], "label": labels})
    theirs, ours, their_order, our_order = [], [], None, None
    for i in range(4):
        _, their_order, picked = ref._undersample_data(dataset, i, their_order)
        theirs.append(picked)
        mine, our_order = undersample(labels, 4, 42, our_order)
        ours.append(mine)
    assert ours == theirs
    assert len({tuple(p) for p in ours}) == 4  # each experiment draws a different sample


def test_user_tsv_task_matches_mteb_evaluator(tmp_path: Path, static: Any) -> None:
    compare = compare_module()
    task = load_task_file(emotion_tsv_task(tmp_path))
    outcome = adapter_for("classification").evaluate(static, task, "test")
    theirs = compare.mteb_scores(task, "test", compare.MtebBridge(static))
    for metric in ("accuracy", "f1", "f1_weighted", "precision", "recall"):
        assert outcome.scores[metric] == pytest.approx(theirs[metric], abs=1e-12), metric
    ours_runs = [s["accuracy"] for s in outcome.details["scores_per_experiment"]]
    assert ours_runs == pytest.approx([s["accuracy"] for s in theirs["scores_per_experiment"]], abs=1e-12)
    assert len(set(ours_runs)) > 1 and outcome.scores["ap"] is None  # distinct experiments; 6 labels: no AP
    assert adapter_for("classification").score_units(outcome.units, np.arange(outcome.n_units)) == pytest.approx(outcome.scores["accuracy"])


def test_single_split_cross_validation_matches_mteb(tmp_path: Path, static: Any) -> None:
    compare = compare_module()
    rows = jsonl(DATA / "amazon_counterfactual_en" / "train.jsonl", 300)
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    task = load_task_file(
        write_task(
            tmp_path,
            'name = "OneSplit"\ntype = "classification"\nsplit = "all"\n[files]\nall = "all.jsonl"\n'
            '[settings]\nprotocol = "cross_validation"\nsamples_per_label = 16\nk_folds = 4\n',
        )
    )
    outcome = adapter_for("classification").evaluate(static, task, "all")
    theirs = compare.mteb_scores(task, "all", compare.MtebBridge(static))
    assert outcome.details["cross_validation_folds"] == 4 and len(outcome.units["correct"]) == 4
    for metric in ("accuracy", "f1", "ap"):
        assert outcome.scores[metric] == pytest.approx(theirs[metric], abs=1e-12), metric
    # every example is scored in exactly one fold
    marks = np.array([list(run) for run in outcome.units["correct"]])
    assert ((marks != "-").sum(axis=0) == 1).all()
    assert adapter_for("classification").score_units(outcome.units, np.arange(300)) == pytest.approx(outcome.scores["accuracy"])


def test_full_mode_is_one_fit_on_all_of_train(tmp_path: Path, static: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    path = emotion_tsv_task(tmp_path, 'mode = "full"')
    path.write_text(path.read_text(encoding="utf-8").replace("samples_per_label = 6\nn_experiments = 4\n", ""), encoding="utf-8")
    task = load_task_file(path)
    outcome = adapter_for("classification").evaluate(static, task, "test")
    train = [line.split("\t") for line in (tmp_path / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    test = [line.split("\t") for line in (tmp_path / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    model = LogisticRegression(max_iter=100, random_state=42).fit(static.encode([t for t, _ in train]), [y for _, y in train])
    expected = float(np.mean(model.predict(static.encode([t for t, _ in test])) == np.array([y for _, y in test])))
    assert len(outcome.units["correct"]) == 1 and outcome.details["n_train_embedded"] == 400
    assert outcome.scores["accuracy"] == pytest.approx(expected)


def test_shipped_tasks_declare_mteb_settings() -> None:
    import mteb

    index = TaskIndex()
    for name in ("Banking77Classification", "EmotionClassification", "AmazonCounterfactualClassification"):
        task = index.get(name)
        adapter_for(task.type).validate(task)
        reference = mteb.get_task(name)
        assert task.setting("samples_per_label", 8) == reference.samples_per_label, name
        assert task.setting("n_experiments", 10) == reference.n_experiments, name
    assert index.get("SST2").setting("mode") == "full"


def test_label_missing_from_train_warns_with_file_and_line(tmp_path: Path, static: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The warning is one ``evalkit: warning: FILE:LINE:`` line on stderr (before any model loads) and is kept in the outcome."""
    path = emotion_tsv_task(tmp_path)
    with (tmp_path / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write("a brand new feeling\tnostalgia\n")
    task = load_task_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Python UserWarning any more
        adapter_for("classification").validate(task)
        outcome = adapter_for("classification").evaluate(static, task, "test")
    pattern = r"test\.tsv:152: 1 test examples have labels absent from train \('nostalgia'\)"
    printed = [line for line in capsys.readouterr().err.splitlines() if "absent from train" in line]
    assert len(printed) == 1 and printed[0].startswith("evalkit: warning: ") and re.search(pattern, printed[0])
    assert [w for w in outcome.warnings if re.search(pattern, w)]
    assert outcome.units["correct"][0][-1] == "0"  # kept and always wrong, as in MTEB


@pytest.mark.parametrize(
    ("train_text", "message"),
    [
        ('{"text": "fine", "label": 1}\n{"text": "bad", "label": "0"}\n', r"train\.jsonl:2: field 'label': label '0' is a str"),
        ('{"text": "fine", "label": 1}\n{"text": "bad", "label": 0\n', r"train\.jsonl:2: line is not valid JSON"),
        (
            '{"text": "fine", "label": 1}\n{"text": "bad", "label": 1.5}\n',
            r"train\.jsonl:2: field 'label': label must be an integer or a string",
        ),
        ('{"text": "fine", "label": 1}\n{"text": "good", "label": 1}\n', r"train\.jsonl: the training data has a single label"),
    ],
)
def test_malformed_data_names_file_and_line(tmp_path: Path, train_text: str, message: str) -> None:
    (tmp_path / "train.jsonl").write_text(train_text, encoding="utf-8")
    (tmp_path / "test.jsonl").write_text('{"text": "ok", "label": 1}\n', encoding="utf-8")
    task = load_task_file(
        write_task(tmp_path, 'name = "Bad"\ntype = "classification"\nsplit = "test"\n[files]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n')
    )
    with pytest.raises(DataError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapter_for("classification").validate(task)


def test_settings_are_checked(tmp_path: Path) -> None:
    """Settings are checked when the task file loads, each error naming the TOML line and the field."""
    (tmp_path / "t.jsonl").write_text('{"text": "a", "label": 1}\n', encoding="utf-8")
    base = 'name = "S"\ntype = "classification"\nsplit = "test"\n[files]\ntest = "t.jsonl"\n[settings]\nprotocol = "cross_validation"\n'
    with pytest.raises(DataError, match=r"task\.toml:8: field 'settings\.sample_per_label'.*did you mean 'samples_per_label'"):
        load_task_file(write_task(tmp_path, base + "sample_per_label = 8\n"))
    with pytest.raises(DataError, match=r"task\.toml:8: field 'settings\.mode'"):
        load_task_file(write_task(tmp_path, base + 'mode = "all"\n'))


# ---- protocol: never switched silently ----------------------------------------------------------
def sst_rows(n: int, start: int = 0) -> str:
    return "".join(json.dumps(r) + "\n" for r in jsonl(DATA / "sst2" / "train.jsonl", start + n)[start:])


def protocol_task(folder: Path, settings: str, groups: str = 'train = "train.jsonl"\ntest = "test.jsonl"\n') -> Path:
    (folder / "train.jsonl").write_text(sst_rows(120), encoding="utf-8")
    (folder / "test.jsonl").write_text(sst_rows(60, start=200), encoding="utf-8")
    return write_task(folder, f'name = "Proto"\ntype = "classification"\nsplit = "test"\n[files]\n{groups}[settings]\n{settings}')


def test_a_misspelt_train_split_is_an_error_not_cross_validation(tmp_path: Path) -> None:
    """The issue's case: ``train_split = "trian"`` used to cross-validate on test (90.0 instead of 83.0)."""
    with pytest.raises(DataError, match=r"task\.toml:8: field 'settings\.train_split': .*names no file group.*got 'trian'"):
        load_task_file(protocol_task(tmp_path, 'train_split = "trian"\nn_experiments = 2\n'))


def test_a_task_without_train_files_must_ask_for_cross_validation(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"field 'settings\.train_split'.*protocol = 'cross_validation'"):
        load_task_file(protocol_task(tmp_path, "n_experiments = 2\n", groups='test = "test.jsonl"\n'))
    task = load_task_file(protocol_task(tmp_path, 'protocol = "cross_validation"\n', groups='test = "test.jsonl"\n'))
    plan = ClassificationAdapter().plan(task, "test")
    assert plan.train is None and len(plan.runs) == 5  # k_folds defaults to 5, only under this protocol


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ("k_folds = 3\n", "settings.k_folds", "applies only to protocol = 'cross_validation'"),
        ('protocol = "cross_validation"\ntrain_split = "train"\n', "settings.train_split", "does not apply"),
        ('mode = "full"\nn_experiments = 3\n', "settings.n_experiments", "applies only to mode = 'undersample'"),
        ('protocol = "cross_validation"\nk_folds = 1\n', "settings.k_folds", "greater than or equal to 2"),
        ("seed = 4294967296\n", "settings.seed", "less than or equal to 4294967295"),
        ("n_experiments = true\n", "settings.n_experiments", "valid integer"),
        ('columns = {text = "a", label = "a"}\n', "settings.columns", "two roles name the same column"),
    ],
)
def test_settings_that_would_be_ignored_or_are_out_of_range_are_errors(tmp_path: Path, settings: str, field: str, message: str) -> None:
    with pytest.raises(DataError, match=rf"field '{re.escape(field)}'.*{re.escape(message)}"):
        load_task_file(protocol_task(tmp_path, settings))


def test_scoring_the_training_split_needs_cross_validation(tmp_path: Path) -> None:
    task = load_task_file(protocol_task(tmp_path, "n_experiments = 2\n"))
    with pytest.raises(DataError, match=r"field 'split': split 'train' is the classifier's training split"):
        ClassificationAdapter().validate(task, "train")
    cross = load_task_file(protocol_task(tmp_path, 'protocol = "cross_validation"\nk_folds = 3\n'))
    ClassificationAdapter().validate(cross, "train")  # explicit: allowed, and cross-validates train alone
    assert ClassificationAdapter().plan(cross, "train").train is None


def test_k_folds_larger_than_the_data_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    task = load_task_file(protocol_task(tmp_path, 'protocol = "cross_validation"\nk_folds = 61\n', groups='test = "test.jsonl"\n'))
    with pytest.raises(DataError, match=r"task\.toml:8: field 'settings\.k_folds': split 'test' has 60 examples, too few for 61 folds"):
        ClassificationAdapter().validate(task)


def test_protocols_score_what_they_say(tmp_path: Path, static: Any) -> None:
    """Train/test and cross-validation give different numbers on the same files; each is recorded in the details."""
    adapter = ClassificationAdapter()
    train_test = adapter.evaluate(static, load_task_file(protocol_task(tmp_path, "n_experiments = 2\n")), "test")
    folds = adapter.evaluate(static, load_task_file(protocol_task(tmp_path, 'protocol = "cross_validation"\nk_folds = 3\n')), "test")
    assert train_test.details["protocol"] == "train_test" and "cross_validation_folds" not in train_test.details
    assert folds.details["protocol"] == "cross_validation" and folds.details["cross_validation_folds"] == 3
    assert train_test.main_score != folds.main_score


def test_ap_as_main_score_needs_two_classes(tmp_path: Path) -> None:
    path = emotion_tsv_task(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace('split = "test"', 'split = "test"\nmain_score = "ap"'), encoding="utf-8")
    with pytest.raises(DataError, match=r"task\.toml:4: field 'main_score': 'ap' is defined only for two classes; this split has 6"):
        ClassificationAdapter().validate(load_task_file(path))


def test_data_quality_warnings_are_lines_not_python_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {"text": "good", "label": "pos"},
        {"text": "bad", "label": "neg"},
        {"text": "good", "label": "pos"},  # duplicate row
        {"text": "bad", "label": "pos"},  # conflicting label
        {"text": "   ", "label": "neg"},  # blank text
        {"text": "fine", "label": " "},  # empty label
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "test.jsonl").write_text(jsonl_text([{"text": "ok", "label": "pos"}, {"text": "no", "label": "neg"}]), encoding="utf-8")
    task = load_task_file(
        write_task(tmp_path, 'name = "Q"\ntype = "classification"\nsplit = "test"\n[files]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n')
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClassificationAdapter().validate(task)
    lines = [line for line in capsys.readouterr().err.splitlines() if "train.jsonl" in line]
    assert all(line.startswith(f"evalkit: warning: {tmp_path / 'train.jsonl'}:") for line in lines)
    assert any(":3: duplicate row" in line for line in lines)
    assert any(":4: text repeated with a different label" in line and "(as line 2)" in line for line in lines)
    assert any(":5: empty or whitespace-only text in column 'text'" in line for line in lines)
    assert any(":6: empty label" in line for line in lines)
    assert len(lines) == 4  # one line per kind


def test_all_texts_blank_is_refused(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(jsonl_text([{"text": " ", "label": 1}, {"text": "", "label": 0}]), encoding="utf-8")
    (tmp_path / "test.jsonl").write_text(jsonl_text([{"text": "a", "label": 1}, {"text": "b", "label": 0}]), encoding="utf-8")
    task = load_task_file(
        write_task(tmp_path, 'name = "Q"\ntype = "classification"\nsplit = "test"\n[files]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n')
    )
    with pytest.raises(DataError, match=r"train\.jsonl: field 'text': every text in column 'text' is empty"):
        ClassificationAdapter().validate(task)


def jsonl_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)
