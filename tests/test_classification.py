"""Classification adapter: MTEB's protocol, checked against the installed mteb on user-written data."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from evalkit.adapters import adapter_for
from evalkit.adapters.classification import undersample
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
            "[settings]\nsamples_per_label = 16\nk_folds = 4\n",
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

    task = load_task_file(emotion_tsv_task(tmp_path, 'mode = "full"'))
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


def test_label_missing_from_train_warns_with_file_and_line(tmp_path: Path, static: Any) -> None:
    path = emotion_tsv_task(tmp_path)
    with (tmp_path / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write("a brand new feeling\tnostalgia\n")
    with pytest.warns(UserWarning, match=r"test\.tsv: 1 test examples \(first at line 152\).*nostalgia"):
        outcome = adapter_for("classification").evaluate(static, load_task_file(path), "test")
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
    (tmp_path / "t.jsonl").write_text('{"text": "a", "label": 1}\n', encoding="utf-8")
    base = 'name = "S"\ntype = "classification"\nsplit = "test"\n[files]\ntest = "t.jsonl"\n[settings]\n'
    with pytest.raises(DataError, match="did you mean 'samples_per_label'"):
        adapter_for("classification").validate(load_task_file(write_task(tmp_path, base + "sample_per_label = 8\n")))
    with pytest.raises(DataError, match=r"settings\.mode"):
        adapter_for("classification").validate(load_task_file(write_task(tmp_path, base + 'mode = "all"\n')))
