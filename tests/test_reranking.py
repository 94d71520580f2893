"""Reranking adapter: MTEB v2's retrieval evaluator over ``top_ranked``, checked against the installed mteb.

The reference side is mteb's own ``SciDocsRR`` task class given the same local files
(``scripts/compare_mteb.py: reranking_task``). Most tests share vectors (mteb encodes
through ``MtebBridge`` over the same static encoder) so they compare the protocol; the
golden test lets mteb encode with its own SentenceTransformer wrapper around MiniLM.
"""

from __future__ import annotations

import json
import re
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
from evalkit.adapters.reranking import RerankingAdapter, per_query_ap
from evalkit.encoders import load_encoder
from evalkit.errors import DataError
from evalkit.stats import cell_interval
from evalkit.taskspec import TaskIndex, TaskSpec, load_task_file

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO / "tasks" / "data" / "retrieval" / "scifact"
CANDIDATES = REPO / "tasks" / "data" / "reranking" / "scifact" / "candidates.jsonl"
TOLERANCE = 1e-4
METRICS = [f"{m}_at_{k}" for m in ("ndcg", "map", "recall", "precision", "mrr", "hit_rate") for k in (1, 3, 5, 10, 20, 100, 1000)]


@pytest.fixture(scope="module")
def static() -> Any:
    encoder = load_encoder("static:tokenlearn-static")
    yield encoder
    encoder.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def subset(folder: Path, n_queries: int = 20, settings_toml: str = "") -> Path:
    """A user's reranking folder: the first shipped candidate lists, their documents, queries and qrels."""
    lists = read_jsonl(CANDIDATES)[:n_queries]
    wanted = {d for item in lists for d in item["corpus-ids"]}
    query_ids = {item["query-id"] for item in lists}
    write_jsonl(folder / "corpus.jsonl", [d for d in read_jsonl(SCIFACT / "corpus.jsonl") if d["_id"] in wanted])
    write_jsonl(folder / "queries.jsonl", [q for q in read_jsonl(SCIFACT / "queries.jsonl") if q["_id"] in query_ids])
    write_jsonl(folder / "candidates.jsonl", lists)
    qrels = [
        line for line in (SCIFACT / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:] if line.split("\t")[0] in query_ids
    ]
    (folder / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n", encoding="utf-8")
    path = folder / "task.toml"
    path.write_text(
        'name = "MyRerank"\ntype = "reranking"\nsplit = "test"\n[files]\ncorpus = "corpus.jsonl"\nqueries = "queries.jsonl"\n'
        f'candidates = "candidates.jsonl"\ntest = "test.tsv"\n[settings]\n{settings_toml}',
        encoding="utf-8",
    )
    return path


def both_sides(encoder: Any, task: TaskSpec) -> tuple[Any, dict[str, Any]]:
    compare = compare_module()
    shared = compare.CachedEncoder(encoder)
    ours = adapter_for("reranking").evaluate(shared, task, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = compare.mteb_scores(task, "test", compare.MtebBridge(shared))
    return ours, theirs


def test_every_metric_equals_mteb(tmp_path: Path, static: Any) -> None:
    """MAP@1000 (main), MRR@10 and every other family at every cut-off equal mteb's reranking evaluation."""
    task = load_task_file(subset(tmp_path, 25))
    ours, theirs = both_sides(static, task)
    assert theirs["main_score"] == pytest.approx(theirs["map_at_1000"])  # SciDocsRR's main score, as every English reranking task
    for metric in METRICS:
        assert ours.scores[metric] == pytest.approx(theirs[metric], abs=TOLERANCE), metric
    assert ours.main_metric == "map_at_1000" and 0.2 < ours.main_score < 1
    assert ours.scores["mrr_at_10"] != ours.scores["map_at_1000"]  # queries with several gold abstracts tell them apart
    assert ours.n_units == 25 and ours.details["candidates_per_query"] == {"min": 20, "mean": 20.0, "max": 20}
    adapter = adapter_for("reranking")
    assert adapter.score_units(ours.units, np.arange(25)) == pytest.approx(ours.main_score, abs=1e-6)


def test_golden_minilm_native(tmp_path: Path) -> None:
    """The golden comparison: mteb encodes natively (its SentenceTransformer wrapper) around the packaged MiniLM."""
    compare = compare_module()
    encoder = load_encoder("sbert:all-MiniLM-L6-v2")
    try:
        task = load_task_file(subset(tmp_path, 4))
        ours = adapter_for("reranking").evaluate(encoder, task, "test")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = compare.mteb_scores(task, "test", compare.native_model(encoder))
    finally:
        encoder.close()
    assert abs(ours.scores["map_at_1000"] - theirs["map_at_1000"]) <= TOLERANCE
    assert abs(ours.scores["mrr_at_10"] - theirs["mrr_at_10"]) <= TOLERANCE
    assert 0.3 < ours.main_score <= 1


def test_queries_and_documents_get_their_roles(tmp_path: Path, tiny_bert: Path) -> None:
    task = load_task_file(subset(tmp_path, 5))
    prompted = load_encoder(f"hf:{tiny_bert}?query_prompt=query: &document_prompt=passage: ")
    plain = load_encoder(f"hf:{tiny_bert}")
    ours, theirs = both_sides(prompted, task)
    assert ours.scores["map_at_1000"] == pytest.approx(theirs["map_at_1000"], abs=TOLERANCE)
    assert ours.scores != adapter_for("reranking").evaluate(plain, task, "test").scores


def test_missing_candidates_and_outside_positives_warn_and_match_mteb(tmp_path: Path, static: Any) -> None:
    """A judged query with no list scores 0 and a gold abstract left out counts as not found, both as in mteb, both said."""
    path = subset(tmp_path, 12)
    lists = read_jsonl(tmp_path / "candidates.jsonl")
    gold = {line.split("\t")[0]: line.split("\t")[1] for line in (tmp_path / "test.tsv").read_text().splitlines()[1:]}
    lists[0]["corpus-ids"] = [d for d in lists[0]["corpus-ids"] if d != gold[lists[0]["query-id"]]]
    dropped = lists.pop(5)["query-id"]
    write_jsonl(tmp_path / "candidates.jsonl", lists)
    task = load_task_file(path)
    ours = adapter_for("reranking").evaluate(static, task, "test")
    assert any(re.search(rf"1 judged queries have no candidates and score 0, as in MTEB: {dropped}$", w) for w in ours.warnings)
    assert any("1 queries have relevant documents outside their candidate list" in w for w in ours.warnings)
    assert ours.n_units == 12 and ours.units["map_at_1000"][ours.units["query_ids"].index(dropped)] == 0
    (tmp_path / "intact").mkdir()
    intact = adapter_for("reranking").evaluate(static, load_task_file(subset(tmp_path / "intact", 12)), "test")
    assert ours.main_score < intact.main_score
    compare = compare_module()
    theirs = compare.mteb_scores(task, "test", compare.MtebBridge(compare.CachedEncoder(static)))
    assert ours.scores["map_at_1000"] == pytest.approx(theirs["map_at_1000"], abs=TOLERANCE)


def test_order_and_repeats_of_candidates_do_not_matter(tmp_path: Path, static: Any) -> None:
    path = subset(tmp_path, 10)
    before = adapter_for("reranking").evaluate(static, load_task_file(path), "test")
    lists = read_jsonl(tmp_path / "candidates.jsonl")
    for item in lists:
        item["corpus-ids"] = list(reversed(item["corpus-ids"]))
    lists[2]["corpus-ids"].append(lists[2]["corpus-ids"][0])
    lists[3]["query-id"] = int(lists[3]["query-id"])  # 5 and "5" are one id
    write_jsonl(tmp_path / "candidates.jsonl", lists)
    after = adapter_for("reranking").evaluate(static, load_task_file(path), "test")
    assert dict(after.scores) == dict(before.scores)
    assert any("1 candidate lists name a document twice; counted once" in w for w in after.warnings)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda rows: [rows[0], {**rows[1], "corpus-ids": [*rows[1]["corpus-ids"], "NOPE"]}, *rows[2:]],
            r"candidates\.jsonl:2: field 'corpus-ids': candidate 'NOPE' of query '\w+' is not in the corpus corpus\.jsonl",
        ),
        (
            lambda rows: [*rows, rows[0]],
            r"candidates\.jsonl:6: field 'query-id': query '\w+' has a second candidate list \(first at candidates\.jsonl:1\)",
        ),
        (lambda rows: [rows[0], {**rows[1], "corpus-ids": "31715818"}, *rows[2:]], r"candidates\.jsonl:2: field 'corpus-ids': .*list"),
        (
            lambda rows: [rows[0], {**rows[1], "corpus-ids": [1.5]}, *rows[2:]],
            r"candidates\.jsonl:2: field 'corpus-ids\.0': .*string or an integer",
        ),
        (
            lambda rows: [{"query": r["query-id"], "corpus-ids": r["corpus-ids"]} for r in rows],
            r"candidates\.jsonl:1: field 'query-id': missing",
        ),
        (lambda rows: [{**r, "query-id": f"x{r['query-id']}"} for r in rows], r"no judged query of split 'test' has a candidate list"),
    ],
)
def test_bad_candidates_name_file_line_and_field(tmp_path: Path, mutate: Any, message: str) -> None:
    path = subset(tmp_path, 5)
    write_jsonl(tmp_path / "candidates.jsonl", mutate(read_jsonl(tmp_path / "candidates.jsonl")))
    with pytest.raises(DataError, match=message):
        adapter_for("reranking").validate(load_task_file(path))


def test_candidates_group_is_not_a_split(tmp_path: Path) -> None:
    task = load_task_file(subset(tmp_path, 3))
    with pytest.raises(DataError, match="'candidates' is the candidates file, not a split of qrels"):
        adapter_for("reranking").validate(task, "candidates")


def test_cli_bad_candidates_is_one_line_exit_2(tmp_path: Path) -> None:
    path = subset(tmp_path, 3)
    (tmp_path / "candidates.jsonl").write_text('{"query-id": "1", "corpus-ids": ["31715818"]}\n{"query-id": \n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "evalkit", "run", "-e", "tfidf:lexical", "-t", str(path), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "candidates.jsonl:2" in lines[0] and "Traceback" not in done.stderr


def test_run_writes_a_result_with_an_interval(tmp_path: Path) -> None:
    from evalkit.cli import main as cli_main

    path = subset(tmp_path, 12)
    assert cli_main(["run", "-e", "static:tokenlearn-static", "-t", str(path), "-o", str(tmp_path / "out")]) == 0
    (result_file,) = (tmp_path / "out").rglob("MyRerank.test.json")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    assert result["main_metric"] == "map_at_1000" and result["n_units"] == 12 and len(result["units"]["map_at_1000"]) == 12
    assert result["ci"]["low"] <= result["main_score"] <= result["ci"]["high"]


def test_cutoffs_always_cover_the_main_score(tmp_path: Path, static: Any) -> None:
    task = load_task_file(subset(tmp_path, 4, "k_values = [1, 5]\n"))
    outcome = adapter_for("reranking").evaluate(static, task, "test")
    assert {"map_at_1000", "mrr_at_10", "ndcg_at_5", "recall_at_1"} <= set(outcome.scores) and "ndcg_at_3" not in outcome.scores
    ok = subset(tmp_path, 4, "").read_text(encoding="utf-8").replace('split = "test"', 'split = "test"\nmain_score = "mrr_at_10"')
    (tmp_path / "task.toml").write_text(ok, encoding="utf-8")
    assert load_task_file(tmp_path / "task.toml").main_score == "mrr_at_10"
    (tmp_path / "task.toml").write_text(ok.replace("mrr_at_10", "mrr_at_7"), encoding="utf-8")
    with pytest.raises(DataError, match="main_score"):
        load_task_file(tmp_path / "task.toml")


def test_interval_is_over_queries(tmp_path: Path, static: Any) -> None:
    adapter = adapter_for("reranking")
    task = load_task_file(subset(tmp_path, 15))
    outcome = adapter.evaluate(static, task, "test")
    ci = cell_interval(adapter, "map_at_1000", task.name, "test", outcome)
    assert ci["low"] < outcome.main_score < ci["high"] and ci["n_units"] == 15
    counts = np.random.default_rng(0).multinomial(15, [1 / 15] * 15, size=4)
    expected = [adapter.score_units(outcome.units, np.repeat(np.arange(15), c)) for c in counts]
    np.testing.assert_allclose(adapter.score_counts(outcome.units, counts), expected)  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=12),  # a tie-free ranking's scores by position: relevance grades
    st.integers(0, 3),  # relevant documents outside the list
)
def test_average_precision_is_the_textbook_one(grades: list[int], outside: int) -> None:
    """Per-query AP (the units) equals its definition: mean precision at each relevant rank over all relevant documents."""
    run = {"q": {f"d{i}": 1.0 - i / 100 for i in range(len(grades))}}
    qrels = {"q": {f"d{i}": g for i, g in enumerate(grades)} | {f"out{j}": 1 for j in range(outside)}}
    relevant = [i for i, g in enumerate(grades) if g > 0]
    total = len(relevant) + outside
    expected = sum((n + 1) / (i + 1) for n, i in enumerate(relevant)) / total if total else 0.0
    assert per_query_ap(run, qrels)["q"] == pytest.approx(expected, abs=1e-9)


def test_shipped_task_is_valid_and_reproducible() -> None:
    task = TaskIndex().get("SciFactReranking")
    data = RerankingAdapter().load(task, "test")
    assert (len(data.queries), len(data.documents), data.n_docs, data.warnings) == (300, 3170, 5183, ())
    assert {len(v) for v in data.candidates.values()} == {20}
    for query_id, judged in data.qrels.items():
        assert set(judged) <= set(data.candidates[query_id])  # every gold abstract is a candidate
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_reranking_task.py"), "--check"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
