"""Clustering adapter: mteb's v2 and legacy protocols, checked against the installed mteb on Banking77 / Emotion texts.

Both sides share one set of vectors (mteb encodes through ``MtebBridge`` over the same
cached static encoder), so the comparison is about the protocol: the seeded document
draws, k-means, V-measure and AMI. The full-size MiniLM comparison on the shipped
tasks is ``scripts/compare_mteb.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_classification import compare_module

from evalkit.adapters import adapter_for
from evalkit.adapters.clustering import ClusteringAdapter
from evalkit.cli import main as cli_main
from evalkit.encoders import load_encoder
from evalkit.errors import DataError
from evalkit.stats import cell_interval
from evalkit.taskspec import TaskIndex, TaskSpec, load_task_file

REPO = Path(__file__).resolve().parent.parent
BANKING = REPO / "tasks" / "data" / "clustering" / "banking77" / "test.jsonl"
EMOTION = REPO / "tasks" / "data" / "clustering" / "emotion" / "test.jsonl"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def static() -> Any:
    encoder = load_encoder("static:tokenlearn-static")
    yield encoder
    encoder.close()


def read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def banking_subset(n_labels: int = 20) -> list[dict[str, Any]]:
    """Banking77 test utterances of the first ``n_labels`` intents (in file order): about 40 per intent."""
    rows = read(BANKING)
    keep = list(dict.fromkeys(r["label"] for r in rows))[:n_labels]
    return [r for r in rows if r["label"] in keep]


def write_task(folder: Path, rows: list[dict[str, Any]], settings_toml: str = "") -> TaskSpec:
    (folder / "test.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    path = folder / "task.toml"
    path.write_text(
        f'name = "MyClusters"\ntype = "clustering"\nsplit = "test"\n[files]\ntest = "test.jsonl"\n[settings]\n{settings_toml}',
        encoding="utf-8",
    )
    return load_task_file(path)


def both_sides(encoder: Any, task: TaskSpec) -> tuple[Any, dict[str, Any]]:
    compare = compare_module()
    shared = compare.CachedEncoder(encoder)
    ours = adapter_for("clustering").evaluate(shared, task, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mteb warns that the legacy task is superseded
        theirs = compare.mteb_scores(task, "test", compare.MtebBridge(shared))
    return ours, theirs


V2_SETTINGS = {
    "fraction": "n_experiments = 3\nmax_documents_per_cluster = 1000\nmax_fraction_of_documents_to_embed = 0.5\n",
    "count": "n_experiments = 2\nmax_documents_per_cluster = 600\nmax_document_to_embed = 300\nkmeans_batch_size = 256\n",
    "all-documents": "n_experiments = 2\nmax_documents_per_cluster = 900\nsubsample = false\nseed = 7\n",
}


@pytest.mark.parametrize("name", list(V2_SETTINGS))
def test_v2_equals_mteb(tmp_path: Path, static: Any, name: str) -> None:
    """V-measure, AMI and every experiment's V-measure equal mteb's AbsTaskClustering (the .v2 tasks)."""
    task = write_task(tmp_path, banking_subset(), 'mode = "v2"\n' + V2_SETTINGS[name])
    ours, theirs = both_sides(static, task)
    assert abs(ours.scores["v_measure"] - theirs["v_measure"]) <= TOLERANCE
    assert abs(ours.scores["ami"] - theirs["ami"]) <= TOLERANCE
    np.testing.assert_allclose(ours.units["v_measures"], theirs["v_measures"]["Level 0"], atol=TOLERANCE)
    assert ours.n_units == len(theirs["v_measures"]["Level 0"]) and ours.details["n_clusters"] == 20
    assert 0.2 < ours.main_score < 1


def test_legacy_equals_mteb(tmp_path: Path, static: Any) -> None:
    """Three clustering sets of Emotion tweets: per-set V-measure and their mean equal mteb's AbsTaskClusteringLegacy."""
    rows = [{"text": r["text"], "label": r["label"], "set": f"s{i % 3}"} for i, r in enumerate(read(EMOTION)[:600])]
    task = write_task(tmp_path, rows, 'mode = "legacy"\n')
    ours, theirs = both_sides(static, task)
    assert abs(ours.scores["v_measure"] - theirs["v_measure"]) <= TOLERANCE
    np.testing.assert_allclose(ours.units["v_measures"], theirs["v_measures"], atol=TOLERANCE)
    assert ours.n_units == 3 and ours.details["unit"] == "clustering set"
    assert "ami" not in ours.scores  # mteb's legacy text protocol reports V-measure only


def test_interval_is_over_experiments(tmp_path: Path, static: Any) -> None:
    adapter = adapter_for("clustering")
    task = write_task(tmp_path, banking_subset(10), "n_experiments = 6\nmax_documents_per_cluster = 400\nsubsample = false\n")
    outcome = adapter.evaluate(static, task, "test")
    assert outcome.n_units == 6 and outcome.details["unit"] == "experiment"
    assert adapter.score_units(outcome.units, np.arange(6)) == pytest.approx(outcome.main_score, abs=1e-12)
    ci = cell_interval(adapter, "v_measure", task.name, "test", outcome)
    assert ci["low"] <= outcome.main_score <= ci["high"] and ci["n_units"] == 6
    assert len(set(outcome.units["v_measures"])) > 1  # the experiments draw different documents


def test_single_legacy_set_has_no_interval(tmp_path: Path, static: Any) -> None:
    """One clustering set is one unit: no interval rather than a fake one."""
    adapter = adapter_for("clustering")
    task = write_task(tmp_path, banking_subset(5), 'mode = "legacy"\n')
    outcome = adapter.evaluate(static, task, "test")
    assert outcome.n_units == 1 and cell_interval(adapter, "v_measure", task.name, "test", outcome) == {}


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(0, 1), min_size=1, max_size=20), data=st.data())
def test_vectorised_resamples_equal_the_loop(values: list[float], data: Any) -> None:
    adapter = ClusteringAdapter()
    n = len(values)
    index = np.asarray(data.draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n)))
    counts = np.bincount(index, minlength=n).astype(np.float64)[None, :]
    loop = adapter.score_units({"v_measures": values}, index)
    assert adapter.score_counts({"v_measures": values}, counts)[0] == pytest.approx(loop, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(20, 200), fraction=st.floats(0.02, 1.0), seed=st.integers(0, 2**32 - 1), per=st.integers(1, 300))
def test_v2_plan_is_mtebs_seeded_draws(tmp_path_factory: pytest.TempPathFactory, n: int, fraction: float, seed: int, per: int) -> None:
    """The plan is mteb's random.Random(seed) sample, then choices per experiment, fixed before any model; or a refusal that is right."""
    import random

    rows = [{"text": f"doc {i}", "label": i % 4} for i in range(n)]
    limits = f"max_documents_per_cluster = {per}\nmax_fraction_of_documents_to_embed = {fraction!r}\nseed = {seed}\n"
    task = write_task(tmp_path_factory.mktemp("plan"), rows, "n_experiments = 3\n" + limits)
    rng = random.Random(seed)
    count = min(n, int(fraction * n))
    embedded = rng.sample(range(n), k=count) if count else []
    k = len({i % 4 for i in embedded})
    if count == 0 or k < 2 or per < k:  # nothing to embed, one label, or fewer draws than clusters
        with pytest.raises(DataError):
            ClusteringAdapter().load(task, "test")
        return
    _, plan = ClusteringAdapter().load(task, "test")
    assert plan.embedded == embedded and plan.n_clusters == [k] * 3
    assert [g.tolist() for g in plan.groups] == [rng.choices(range(len(embedded)), k=per) for _ in range(3)]  # int64 arrays
    again = ClusteringAdapter().load(task, "test")[1]
    assert again.embedded == plan.embedded and [g.tolist() for g in again.groups] == [g.tolist() for g in plan.groups]


def test_builtin_tasks_validate_and_are_reproducible() -> None:
    """The shipped tasks load (every document embedded, one cluster per gold label) and their data rebuilds byte for byte."""
    index = TaskIndex()
    for name, n_docs, k in (("Banking77Clustering", 3079, 77), ("EmotionClustering", 2000, 6)):
        task = index.get(name)
        _, plan = ClusteringAdapter().load(task, task.split)
        assert len(plan.embedded) == n_docs and plan.n_clusters == [k] * 10 and len(plan.groups[0]) == 16384
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "build_clustering_tasks.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def rows_with(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}, *extra]


BAD_DATA = {
    "mixed label types": (rows_with({"text": "c", "label": 3}), "", 3, "label", "earlier labels are strs"),
    "float label": (rows_with({"text": "c", "label": 1.5}), "", 3, "label", "integer or a string, got float"),
    "bool label": ([{"text": "a", "label": True}, {"text": "b", "label": False}], "", 1, "label", "got bool"),
    "text not text": (rows_with({"text": ["c"], "label": "x"}), "", 3, "text", "valid string"),
    "missing label": (rows_with({"text": "c"}), "", 3, "label", "missing"),
    "label -1 in v2": ([{"text": "a", "label": 0}, {"text": "b", "label": -1}], "subsample = false\n", 2, "label", "-1"),
    "set on some rows only": (rows_with({"text": "c", "label": "x", "set": 1}), 'mode = "legacy"\n', 3, "set", "others do not"),
    "set with one label": (
        [{"text": "a", "label": "x", "set": 1}, {"text": "b", "label": "y", "set": 1}, {"text": "c", "label": "x", "set": 2}],
        'mode = "legacy"\n',
        3,
        "set",
        "clustering set 2 has a single label",
    ),
    "file with one label": ([{"text": "a", "label": "x"}, {"text": "b", "label": "x"}], 'mode = "legacy"\n', 1, "label", "single label"),
}


@pytest.mark.parametrize("name", list(BAD_DATA))
def test_bad_data_is_one_data_error_naming_line_and_field(tmp_path: Path, name: str) -> None:
    rows, settings_toml, line, field, message = BAD_DATA[name]
    task = write_task(tmp_path, rows, settings_toml)
    with pytest.raises(DataError) as caught:
        adapter_for("clustering").validate(task)
    error = caught.value
    assert error.line == line and error.field == field and message in error.message, error.render()
    assert error.path is not None and error.path.endswith("test.jsonl")


def test_renamed_columns_are_read_and_named_in_errors(tmp_path: Path) -> None:
    settings_toml = 'mode = "legacy"\ncolumns = {text = "utterance", label = "intent", set = "group"}\n'
    rows = [{"utterance": "a", "intent": 1, "group": "g"}, {"utterance": "b", "intent": 2, "group": "g"}]
    adapter_for("clustering").validate(write_task(tmp_path, rows, settings_toml))
    with pytest.raises(DataError) as caught:
        adapter_for("clustering").validate(write_task(tmp_path, [*rows, {"utterance": "c", "intent": "3", "group": "g"}], settings_toml))
    assert caught.value.field == "intent" and caught.value.line == 3


def test_whole_data_with_one_label_in_v2(tmp_path: Path) -> None:
    task = write_task(tmp_path, [{"text": str(i), "label": 1} for i in range(30)], "subsample = false\n")
    with pytest.raises(DataError, match="single label"):
        adapter_for("clustering").validate(task)


BAD_SETTINGS = {
    "legacy key in v2": ("clustering_batch_size = 100\n", "settings.clustering_batch_size", "applies only to mode = 'legacy'"),
    "v2 key in legacy": ('mode = "legacy"\nn_experiments = 3\n', "settings.n_experiments", "applies only to mode = 'v2'"),
    "both limits": ("max_fraction_of_documents_to_embed = 0.5\nmax_document_to_embed = 10\n", "settings", "both set"),
    "subsample off with a limit": ("subsample = false\nmax_document_to_embed = 10\n", "settings", "subsample = false"),
    "fraction out of range": (
        "max_fraction_of_documents_to_embed = 1.5\n",
        "settings.max_fraction_of_documents_to_embed",
        "less than or equal to 1",
    ),
    "unknown mode": ('mode = "fast"\n', "settings.mode", "'v2' or 'legacy'"),
    "typo": ("n_experiment = 3\n", "settings.n_experiment", "did you mean 'n_experiments'"),
    "too few documents per experiment": (
        "max_documents_per_cluster = 1\nsubsample = false\n",
        "settings.max_documents_per_cluster",
        "cannot form 2",
    ),
    "fraction embeds none": ("max_fraction_of_documents_to_embed = 0.01\n", "settings.max_fraction_of_documents_to_embed", "embeds none"),
}


@pytest.mark.parametrize("name", list(BAD_SETTINGS))
def test_bad_settings_stop_the_run_with_one_line(tmp_path: Path, capsys: Any, name: str) -> None:
    """`evalkit run` refuses the task: exit 2, one stderr line naming the task file and the setting, no traceback, no result."""
    settings_toml, field, message = BAD_SETTINGS[name]
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(20)]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "task.toml").write_text(
        f'name = "C"\ntype = "clustering"\nsplit = "test"\n[files]\ntest = "test.jsonl"\n[settings]\n{settings_toml}', encoding="utf-8"
    )
    out = tmp_path / "out"
    code = cli_main(["run", "-e", "static:tokenlearn-static", "-t", str(tmp_path / "task.toml"), "-o", str(out), "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "task.toml" in err[0] and f"'{field}'" in err[0] and message in err[0] and "Traceback" not in err[0], err[0]
    assert not out.exists() or not list(out.rglob("*.json"))
