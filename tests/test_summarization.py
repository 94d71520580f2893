"""Summarization adapter: mteb's SummEval protocol, checked against the installed mteb on the shipped SummEval data.

The golden comparisons share one set of vectors between the two sides (mteb encodes
through ``MtebBridge`` over the same cached encoder), so they test the protocol:
best-cosine per summary, the skip rule, per-text correlations and their average. With
independently computed vectors, near-identical machine summaries (two systems a word
apart) swap ranks on float noise and move a text's Spearman by hundredths, so a
native-encoding comparison could not hold 1e-4 on a subset; the full-size MiniLM
comparison is ``scripts/compare_mteb.py``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_classification import compare_module

from evalkit.adapters import adapter_for
from evalkit.adapters.summarization import SummarizationAdapter, best_scores
from evalkit.cli import main as cli_main
from evalkit.encoders import load_encoder
from evalkit.errors import DataError
from evalkit.stats import cell_interval
from evalkit.taskspec import TaskIndex, TaskSpec, load_task_file

REPO = Path(__file__).resolve().parent.parent
SUMMEVAL = REPO / "tasks" / "data" / "summarization" / "summeval" / "test.jsonl"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def static() -> Any:
    encoder = load_encoder("static:tokenlearn-static")
    yield encoder
    encoder.close()


def summeval_rows(limit: int) -> list[dict[str, Any]]:
    with SUMMEVAL.open(encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(limit), handle, strict=False)]


def write_task(folder: Path, rows: list[dict[str, Any]], settings_toml: str = "min_score = 0\nmax_score = 5\n") -> TaskSpec:
    (folder / "test.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    path = folder / "task.toml"
    path.write_text(
        f'name = "MySummaries"\ntype = "summarization"\nsplit = "test"\n[files]\ntest = "test.jsonl"\n[settings]\n{settings_toml}',
        encoding="utf-8",
    )
    return load_task_file(path)


def subset_with_a_constant_text(n: int = 40) -> list[dict[str, Any]]:
    """The first ``n`` SummEval texts; text 3's ratings are made equal, so both sides must skip it."""
    rows = summeval_rows(n)
    rows[3]["relevance"] = [4.0] * len(rows[3]["relevance"])
    return rows


def both_sides(encoder: Any, task: TaskSpec) -> tuple[Any, dict[str, Any]]:
    compare = compare_module()
    shared = compare.CachedEncoder(encoder)
    ours = adapter_for("summarization").evaluate(shared, task, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mteb warns that SummEval (v1) is superseded: that is the point here
        theirs = compare.mteb_scores(task, "test", compare.MtebBridge(shared))
    return ours, theirs


@pytest.mark.parametrize("average_pvalues", [False, True], ids=["v2", "v1-average-pvalues"])
def test_equals_mteb_on_summeval(tmp_path: Path, static: Any, average_pvalues: bool) -> None:
    """Every metric equals mteb's SummEvalSummarization.v2 (default) or SummEval v1 evaluator (average_pvalues)."""
    extra = "average_pvalues = true\n" if average_pvalues else ""
    task = write_task(tmp_path, subset_with_a_constant_text(), "min_score = 0\nmax_score = 5\n" + extra)
    ours, theirs = both_sides(static, task)
    assert ours.details["n_texts_skipped"] == 1 and ours.units["cosine_spearman"][3] is None
    assert ours.n_units == 40
    for metric in ("cosine_spearman", "cosine_pearson", "dot_spearman", "dot_pearson", "spearman", "pearson"):
        assert abs(ours.scores[metric] - theirs[metric]) <= TOLERANCE, (metric, ours.scores[metric], theirs[metric])
    assert 0.05 < ours.main_score < 0.9
    if average_pvalues:  # p-values are averaged in: a different number from the correlation itself
        plain = adapter_for("summarization").evaluate(static, write_task(tmp_path, subset_with_a_constant_text()), "test")
        assert abs(ours.main_score - plain.main_score) > 1e-3


def test_relevance_normalisation_does_not_change_the_correlations(tmp_path: Path, static: Any) -> None:
    """mteb's SummEval declares 0..5 although ratings are 1..5; any range holding the ratings gives the same numbers."""
    rows = summeval_rows(12)
    a = adapter_for("summarization").evaluate(static, write_task(tmp_path, rows), "test")
    b = adapter_for("summarization").evaluate(static, write_task(tmp_path, rows, "min_score = 1\nmax_score = 5\n"), "test")
    for metric in ("cosine_spearman", "cosine_pearson", "dot_spearman", "dot_pearson"):
        assert a.scores[metric] == pytest.approx(b.scores[metric], abs=1e-12)


def test_builtin_summeval_task_and_its_interval(static: Any) -> None:
    """The shipped task: 100 texts, per-text outcomes; the bootstrap interval is over texts and holds the estimate."""
    task = TaskIndex().get("SummEval")
    adapter = adapter_for(task.type)
    adapter.validate(task)
    outcome = adapter.evaluate(static, task, task.split)
    assert outcome.n_units == 100 and len(outcome.units["cosine_spearman"]) == 100
    assert adapter.score_units(outcome.units, np.arange(100)) == pytest.approx(outcome.main_score, abs=1e-12)
    ci = cell_interval(adapter, "cosine_spearman", task.name, task.split, outcome)
    assert ci["low"] < outcome.main_score < ci["high"] and ci["high"] - ci["low"] < 0.2


unit_values = st.lists(st.one_of(st.none(), st.floats(-1, 1)), min_size=2, max_size=30).filter(lambda v: any(x is not None for x in v))


@settings(max_examples=60, deadline=None)
@given(values=unit_values, data=st.data())
def test_vectorised_resamples_equal_the_loop(values: list[float | None], data: Any) -> None:
    """``score_counts`` (all resamples at once) equals ``score_units`` on each resample, skipped texts included."""
    adapter = SummarizationAdapter()
    n = len(values)
    index = np.asarray(data.draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n)))
    counts = np.bincount(index, minlength=n).astype(np.float64)[None, :]
    loop = adapter.score_units({"cosine_spearman": values}, index)
    batch = adapter.score_counts({"cosine_spearman": values}, counts)[0]
    assert (math.isnan(loop) and math.isnan(batch)) or loop == pytest.approx(batch, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_machine=st.integers(1, 8), n_human=st.integers(1, 6), dim=st.integers(2, 24))
def test_best_scores_are_the_max_cosine_and_dot(seed: int, n_machine: int, n_human: int, dim: int) -> None:
    """The float32 torch computations are the max cosine / dot of each machine summary (float64 reference)."""
    rng = np.random.default_rng(seed)
    machine, human = rng.normal(size=(n_machine, dim)).astype(np.float32), rng.normal(size=(n_human, dim)).astype(np.float32)
    cosine, dot, pairwise = best_scores(machine, human)
    m64, h64 = machine.astype(np.float64), human.astype(np.float64)
    unit_m, unit_h = m64 / np.linalg.norm(m64, axis=1, keepdims=True), h64 / np.linalg.norm(h64, axis=1, keepdims=True)
    np.testing.assert_allclose(cosine, (unit_m @ unit_h.T).max(axis=1), atol=1e-5)
    np.testing.assert_allclose(dot, (m64 @ h64.T).max(axis=1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(pairwise, cosine, atol=1e-6)


def good_row(**changes: Any) -> dict[str, Any]:
    row = {"text": "t", "human_summaries": ["a b", "c d"], "machine_summaries": ["a", "b", "c"], "relevance": [1, 2.5, 5]}
    row.update(changes)
    return row


BAD_ROWS = {
    "relevance count": (good_row(relevance=[1, 2]), "relevance", "2 relevance scores for 3 machine summaries"),
    "relevance range": (good_row(relevance=[1, 2, 6]), "relevance.2", "outside the task's range 0..5"),
    "relevance text": (good_row(relevance=[1, "high", 2]), "relevance.1", "valid number"),
    "summaries not a list": (good_row(machine_summaries="a b c"), "machine_summaries", "valid list"),
    "one machine summary": (good_row(machine_summaries=["a"], relevance=[1]), "machine_summaries", "at least 2"),
    "no human summary": (good_row(human_summaries=[]), "human_summaries", "at least 1"),
    "blank human summary": (good_row(human_summaries=["a", "  "]), "human_summaries.1", "must not be empty"),
    "missing column": ({k: v for k, v in good_row().items() if k != "relevance"}, "relevance", "missing"),
}


@pytest.mark.parametrize("name", list(BAD_ROWS))
def test_bad_rows_are_one_data_error_naming_line_and_field(tmp_path: Path, name: str) -> None:
    row, field, message = BAD_ROWS[name]
    task = write_task(tmp_path, [good_row(), row])
    with pytest.raises(DataError) as caught:
        adapter_for("summarization").validate(task)
    error = caught.value
    assert error.line == 2 and error.field == field and message in error.message, error.render()
    assert error.path is not None and error.path.endswith("test.jsonl")


def test_renamed_columns_are_named_in_errors(tmp_path: Path) -> None:
    rows = [{"gold": [1, 2, 3], "refs": ["a"], "outputs": ["a", "b", "c"]}, {"gold": [1, 2], "refs": ["a"], "outputs": ["a", "b", "c"]}]
    settings_toml = 'columns = {relevance = "gold", human_summaries = "refs", machine_summaries = "outputs"}\n'
    task = write_task(tmp_path, rows, settings_toml)
    with pytest.raises(DataError) as caught:
        adapter_for("summarization").validate(task)
    assert caught.value.field == "gold" and caught.value.line == 2
    write_task(tmp_path, rows[:1], settings_toml)  # the renamed columns themselves are read
    adapter_for("summarization").validate(load_task_file(tmp_path / "task.toml"))


@pytest.mark.parametrize(
    ("settings_toml", "field", "message"),
    [
        ("min_score = 5\nmax_score = 1\n", "settings.max_score", "must be above min_score"),
        ("averge_pvalues = true\n", "settings.averge_pvalues", "did you mean 'average_pvalues'"),
        ('average_pvalues = "yes"\n', "settings.average_pvalues", "valid boolean"),
    ],
)
def test_bad_settings_stop_the_run_with_one_line(tmp_path: Path, capsys: Any, settings_toml: str, field: str, message: str) -> None:
    """`evalkit run` refuses the task file: exit 2, one stderr line naming file and field, no traceback, no result."""
    (tmp_path / "test.jsonl").write_text(json.dumps(good_row()) + "\n", encoding="utf-8")
    (tmp_path / "task.toml").write_text(
        f'name = "S"\ntype = "summarization"\nsplit = "test"\n[files]\ntest = "test.jsonl"\n[settings]\n{settings_toml}', encoding="utf-8"
    )
    code = cli_main(["run", "-e", "static:tokenlearn-static", "-t", str(tmp_path / "task.toml"), "-o", str(tmp_path / "out"), "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "task.toml" in err[0] and field in err[0] and message in err[0] and "Traceback" not in err[0]
    assert not list((tmp_path / "out").rglob("*.json")) if (tmp_path / "out").exists() else True


def test_bad_data_stops_the_run_before_any_model_loads(tmp_path: Path, capsys: Any) -> None:
    task = write_task(tmp_path, [good_row(), good_row(relevance=[1, 2])])
    code = cli_main(["run", "-e", "sbert:all-MiniLM-L6-v2", "-t", str(task.source), "-o", str(tmp_path / "out"), "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "test.jsonl:2" in err[0] and "'relevance'" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.json"))
