"""Quick subsets (``--limit N``): seeded samples per task type, their own result files, marked reports, a gate that refuses.

Subset draws are checked as properties (sizes, strata, nesting, determinism); each task
type's sample is checked on what its adapter reads before any model loads; the CLI path
runs the cheap ``tfidf:lexical`` encoder on STSBenchmark.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from evalkit import subset
from evalkit.adapters import ADAPTERS, adapter_for
from evalkit.adapters.sts import STSAdapter
from evalkit.api import prepare
from evalkit.cli import main
from evalkit.errors import DataError, EvalkitError
from evalkit.results.schema import CellResult
from evalkit.taskspec import TaskIndex, TaskSpec

FEW = settings(max_examples=60, deadline=None)


def limited(name: str, limit: int) -> TaskSpec:
    return dataclasses.replace(TaskIndex().get(name), limit=limit)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert len(lines) == 1, err
    return lines[0]


# ---- the draws ---------------------------------------------------------------------------------------------------------
def test_keys_are_splitmix64() -> None:
    """The published first SplitMix64 output for seed 0: no library upgrade can change a subset."""
    assert int(subset.keys(1)[0]) == 0xE220A8397B1DCDAF
    assert subset.sample(10, 3) == [2, 4, 6]


@FEW
@given(n=st.integers(0, 400), limit=st.integers(1, 500), salt=st.integers(0, 3))
def test_a_sample_has_the_right_size_is_ordered_and_nested(n: int, limit: int, salt: int) -> None:
    chosen = subset.sample(n, limit, salt)
    assert chosen is not None and len(chosen) == min(n, limit)
    assert chosen == sorted(set(chosen)) and all(0 <= i < n for i in chosen)
    assert set(chosen) <= set(subset.sample(n, limit + 1, salt) or [])  # raising the limit only adds units
    assert subset.sample(n, limit, salt) == chosen and subset.sample(n, None) is None


@FEW
@given(counts=st.lists(st.integers(1, 60), min_size=1, max_size=12), limit=st.integers(1, 400))
@example(counts=[1, 1, 1, 1, 3], limit=4)  # found by hypothesis: a proportional share gave the big stratum two
def test_allocation_is_proportional_keeps_every_stratum_and_never_overdraws(counts: list[int], limit: int) -> None:
    shares = subset.allocate(counts, limit)
    total, k = sum(counts), len(counts)
    assert sum(shares) == min(limit, total)
    assert all(0 <= s <= c for s, c in zip(shares, counts, strict=True))
    if k <= limit < total:
        assert min(shares) >= 1  # both labels of a pair task, every class of a classification task
        rest, pool = limit - k, total - k
        for s, c in zip(shares, counts, strict=True):
            assert abs((s - 1) - rest * (c - 1) / pool) < 1  # largest remainder: within one of the exact quota
    elif limit < k:
        assert max(shares) <= 1


@FEW
@given(labels=st.lists(st.sampled_from("abcde"), min_size=1, max_size=200), limit=st.integers(1, 250))
def test_a_stratified_sample_draws_its_shares(labels: list[str], limit: int) -> None:
    chosen = subset.stratified(labels, limit)
    assert chosen is not None and chosen == sorted(set(chosen)) and len(chosen) == min(limit, len(labels))
    counts = Counter(labels)
    got = Counter(labels[i] for i in chosen)
    assert [got[k] for k in counts] == subset.allocate(list(counts.values()), limit)
    assert subset.stratified(labels, limit) == chosen


@pytest.mark.parametrize("bad", [0, -1, True, "5", 1.5, 10**10])
def test_a_bad_limit_is_one_error_naming_it(bad: Any) -> None:
    with pytest.raises(DataError) as info:
        prepare("tfidf:lexical", ["STSBenchmark"], limit=bad)
    assert info.value.field == "--limit"


@pytest.mark.parametrize("bad", ["0", "-5"])
def test_the_cli_refuses_a_bad_limit_in_one_line(bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-e", "tfidf:lexical", "-t", "STSBenchmark", "--limit", bad, "-o", str(tmp_path / "out")]) == 2
    assert "field '--limit'" in error_line(capsys)
    assert not (tmp_path / "out").exists()


# ---- what each task type keeps -------------------------------------------------------------------------------------------
def test_sts_keeps_n_pairs() -> None:
    full, part = (STSAdapter().load(t, "test") for t in (TaskIndex().get("STSBenchmark"), limited("STSBenchmark", 50)))
    keep = subset.sample(len(full.gold), 50)
    assert keep is not None and len(part.gold) == 50
    assert part.sentences1 == [full.sentences1[i] for i in keep] and part.gold.tolist() == full.gold[keep].tolist()


def test_classification_samples_the_evaluated_split_by_label_and_leaves_train_alone() -> None:
    """The classifiers are the full run's (same training draws); the test set is a stratified sample of 100."""
    adapter = adapter_for("classification")
    full = adapter.plan(TaskIndex().get("Banking77Classification"), "test")
    part = adapter.plan(limited("Banking77Classification", 100), "test")
    assert part.runs == full.runs and part.train is not None and full.train is not None and part.train.texts == full.train.texts
    assert len(part.test.labels) == 100 and len(set(part.test.labels)) == 77  # every intent kept, the rest proportional
    assert set(part.test.texts) <= set(full.test.texts)


def test_cross_validation_folds_the_sample(tmp_path: Path) -> None:
    rows = [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(300)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "t.toml").write_text(
        'name = "CV"\ntype = "classification"\nsplit = "test"\n[files]\ntest = "d.jsonl"\n[settings]\nprotocol = "cross_validation"\n',
        encoding="utf-8",
    )
    task = dataclasses.replace(TaskIndex().get(str(tmp_path / "t.toml")), limit=40)
    plan = adapter_for("classification").plan(task, "test")
    assert len(plan.test.texts) == 40 and Counter(plan.test.labels) == {"a": 20, "b": 20}
    assert sorted(i for _, members in plan.runs for i in members or []) == list(range(40))  # 5 folds over the sample


def test_pair_classification_keeps_both_labels() -> None:
    data = adapter_for("pair_classification").load(limited("MRPC", 20), "test")
    assert len(data.labels) == 20 and set(data.labels.tolist()) == {0, 1}


def test_retrieval_keeps_n_queries_their_judged_documents_and_a_sample_of_the_rest() -> None:
    adapter = adapter_for("retrieval")
    full = adapter.load(TaskIndex().get("SciFact"), "test")
    part = adapter.load(limited("SciFact", 5), "test")
    assert len(part.queries) == 5 and set(part.queries) <= set(full.queries) and part.documents is not None
    judged = {d for q in part.queries for d in full.qrels[q]}
    assert part.qrels == {q: full.qrels[q] for q in part.queries}
    assert judged <= part.documents and len(part.documents) == part.n_docs == len(judged) + subset.CORPUS_PER_QUERY * 5


def test_summarization_keeps_n_texts() -> None:
    data = adapter_for("summarization").load(limited("SummEval", 7), "test")
    assert len(data.human) == len(data.machine) == len(data.gold) == 7


def test_clustering_embeds_at_most_n_documents_stratified(tmp_path: Path) -> None:
    adapter = adapter_for("clustering")
    docs, plan = adapter.load(limited("EmotionClustering", 60), "test")
    labels = Counter(docs.labels[i] for i in plan.embedded)
    assert len(plan.embedded) == 60 and len(labels) == 6 and plan.n_clusters[0] == 6
    rows = [{"text": f"doc {i}", "label": i % 3, "set": i % 2} for i in range(200)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "t.toml").write_text(
        'name = "L"\ntype = "clustering"\nsplit = "test"\n[files]\ntest = "d.jsonl"\n[settings]\nmode = "legacy"\n', encoding="utf-8"
    )
    docs, plan = adapter.load(dataclasses.replace(TaskIndex().get(str(tmp_path / "t.toml")), limit=30), "test")
    assert len(docs.texts) == 30 and [len(g) for g in plan.groups] == [15, 15] and plan.n_clusters == [3, 3]


def test_a_task_type_without_a_limit_unit_refuses_a_subset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A third-party adapter that does not declare what a unit is cannot be subset: refused, not silently run in full."""

    class Unlimited(STSAdapter):
        limit_unit = None  # type: ignore[assignment]

    monkeypatch.setitem(ADAPTERS._entries, "sts-unlimited", Unlimited)
    task = dataclasses.replace(TaskIndex().get("STSBenchmark"), type="sts-unlimited")
    with pytest.raises(EvalkitError, match="cannot be run on a subset"):
        prepare("tfidf:lexical", [task], limit=10)


# ---- results, reports, gate ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``both``: one folder with a full and a --limit 50 run; ``full``, ``l50``, ``l60``: one kind each."""
    root = tmp_path_factory.mktemp("limit-runs")
    for name, extra in (("both", []), ("both", ["--limit", "50"]), ("full", []), ("l50", ["--limit", "50"]), ("l60", ["--limit", "60"])):
        args = ["run", "-e", "tfidf:lexical", "-t", "STSBenchmark", "-o", str(root / name), "--no-progress", "--no-report", *extra]
        assert main(args) == 0
    return {name: root / name for name in ("both", "full", "l50", "l60")}


def results_in(folder: Path) -> dict[str, CellResult]:
    return {p.name: CellResult.read(p) for p in folder.glob("*/*.json")}


def test_a_subset_has_its_own_marked_result_file(runs: dict[str, Path]) -> None:
    found = results_in(runs["both"])
    assert set(found) == {"STSBenchmark.test.json", "STSBenchmark.test@limit50.json"}
    full, part = found["STSBenchmark.test.json"], found["STSBenchmark.test@limit50.json"]
    assert full.subset is None and full.n_units == 1379
    assert part.subset is not None and part.subset.model_dump() == {"limit": 50, "seed": subset.SEED, "unit": "pairs"}
    assert part.n_units == 50 and part.ci and part.config_hash != full.config_hash and part.task_hash != full.task_hash
    assert part.main_score != full.main_score


def test_a_limited_run_resumes_and_the_full_one_never_overwrites_it(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = next(runs["both"].glob("*/STSBenchmark.test@limit50.json"))
    before = path.read_bytes()
    assert main(["run", "-e", "tfidf:lexical", "-t", "STSBenchmark", "--limit", "50", "-o", str(runs["both"]), "--no-progress"]) == 0
    assert path.read_bytes() == before  # resumed: the stored cell matched its configuration
    assert "(--limit 50)" in capsys.readouterr().out  # the printed table marks it too


def test_the_same_limit_draws_the_same_units_for_every_encoder(tmp_path: Path) -> None:
    import evalkit

    results = evalkit.evaluate(["tfidf:lexical", "tfidf:lexical?ngram_max=2"], ["STSBenchmark"], limit=40, progress=False)
    first, second = results.cells
    assert first.units["gold"] == second.units["gold"] and first.units["cosine"] != second.units["cosine"]
    assert results.to_pandas()["limit"].tolist() == [40, 40]


@pytest.mark.parametrize("fmt", ["md", "csv", "html", "json"])
def test_every_report_marks_the_subset_and_keeps_it_out_of_the_mean(fmt: str, runs: dict[str, Path], tmp_path: Path) -> None:
    assert main(["report", str(runs["both"]), "-f", fmt, "-o", str(tmp_path)]) == 0
    text = (tmp_path / f"leaderboard.{fmt}").read_text(encoding="utf-8")
    assert "(--limit 50)" in text or "(\\-\\-limit 50)" in text
    from evalkit.reading import load_results
    from evalkit.report.table import MEAN, build

    board = build(load_results(runs["both"]), ranks=False)
    full = results_in(runs["both"])["STSBenchmark.test.json"]
    assert board.score.at["tfidf:lexical", MEAN] == pytest.approx(100 * (full.main_score or 0))  # the subset is not averaged in
    assert board.subsets == {"STSBenchmark (--limit 50)": 50} and "left out of Mean" in board.subset_note


def test_a_board_of_subsets_says_so(runs: dict[str, Path]) -> None:
    from evalkit.reading import load_results
    from evalkit.report.formats import render_terminal
    from evalkit.report.table import build

    board = build(load_results(runs["l50"]), ranks=False)
    assert board.tasks == ["STSBenchmark (--limit 50)"]
    assert render_terminal(board).splitlines()[-1].startswith("Every score here is on a seeded subset (--limit)")


def test_the_gate_compares_a_subset_only_with_the_same_subset(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "--baseline", str(runs["full"]), "--candidate", str(runs["l50"])]) == 2
    assert "cannot compare the full task in the baseline with a subset (--limit 50) in the candidate" in error_line(capsys)
    assert main(["gate", "--baseline", str(runs["l60"]), "--candidate", str(runs["l50"])]) == 2
    assert "a subset (--limit 60) in the baseline with a subset (--limit 50)" in error_line(capsys)
    assert main(["gate", "--baseline", str(runs["l50"]), "--candidate", str(runs["full"])]) == 2
    assert "cannot compare a subset (--limit 50) in the baseline with the full task" in error_line(capsys)
    assert main(["gate", "--baseline", str(runs["both"]), "--candidate", str(runs["both"])]) == 0  # each kind against its own kind
    assert main(["gate", "--baseline", str(runs["l50"]), "--candidate", str(runs["both"])]) == 2
    assert "lacks STSBenchmark/test" in error_line(capsys)
