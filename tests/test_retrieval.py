"""Retrieval adapter: chunked exact search and pytrec_eval metrics, checked against the installed mteb."""

from __future__ import annotations

import dataclasses
import json
import re
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_classification import compare_module

from evalkit.adapters import adapter_for
from evalkit.adapters.retrieval import search
from evalkit.encoders import load_encoder
from evalkit.errors import DataError
from evalkit.taskspec import TaskSpec, load_task_file

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO / "tasks" / "data" / "retrieval" / "scifact"
METRICS = [f"{m}_at_{k}" for m in ("ndcg", "map", "recall", "precision", "mrr") for k in (1, 3, 5, 10, 20, 100, 1000)]


@pytest.fixture(scope="module")
def static() -> Any:
    return load_encoder("static:tokenlearn-static")


def scifact_subset(folder: Path, n_queries: int = 25, n_other_docs: int = 40, extra: str = "") -> Path:
    """A user's BEIR folder: the first test queries, their relevant abstracts plus distractors, and two queries without qrels."""
    qrels = [line.split("\t") for line in (SCIFACT / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    query_ids = list(dict.fromkeys(q for q, _, _ in qrels))[:n_queries]
    kept = [(q, d, s) for q, d, s in qrels if q in query_ids]
    wanted = {d for _, d, _ in kept}
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = [d for d in corpus if d["_id"] in wanted] + [d for d in corpus if d["_id"] not in wanted][:n_other_docs]
    queries = [json.loads(line) for line in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    by_id = {q["_id"]: q for q in queries}
    unjudged = [q for q in queries if q["_id"] not in {x for x, _, _ in qrels}][:2]
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in [by_id[i] for i in query_ids] + unjudged), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in kept), encoding="utf-8"
    )
    task = folder / "task.toml"
    task.write_text(
        'name = "MyClaims"\ntype = "retrieval"\nsplit = "test"\n[files]\ncorpus = "corpus.jsonl"\nqueries = "queries.jsonl"\n'
        f'test = "qrels/test.tsv"\n[settings]\n{extra}',
        encoding="utf-8",
    )
    return task


def with_settings(task: TaskSpec, **settings: Any) -> TaskSpec:
    return dataclasses.replace(task, settings=types.MappingProxyType({**task.settings, **settings}))


@pytest.mark.parametrize(("n_docs", "chunk", "k"), [(50, 7, 10), (50, 50, 10), (30, 4, 100), (64, 9, 1)])
def test_chunked_search_equals_brute_force(n_docs: int, chunk: int, k: int) -> None:
    rng = np.random.default_rng(n_docs + chunk + k)
    queries, docs = rng.normal(size=(13, 8)).astype(np.float32), rng.normal(size=(n_docs, 8)).astype(np.float32)
    scores, index = search(queries, (docs[i : i + chunk] for i in range(0, n_docs, chunk)), k)
    full = queries @ docs.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :k]
    assert scores.shape == (13, min(k, n_docs))
    assert (index == expected).all()
    assert np.allclose(scores, np.take_along_axis(full, expected, 1))


def test_user_beir_folder_matches_mteb_evaluator(tmp_path: Path, static: Any) -> None:
    compare = compare_module()
    task = load_task_file(scifact_subset(tmp_path))
    adapter = adapter_for("retrieval")
    adapter.validate(task)
    outcome = adapter.evaluate(static, with_settings(task, chunk_size=7), "test")
    unchunked = adapter.evaluate(static, task, "test")
    theirs = compare.mteb_scores(task, "test", compare.MtebBridge(static))
    assert outcome.n_units == 25 and outcome.details["n_queries"] == 25  # the two unjudged queries are dropped
    assert dict(outcome.scores) == dict(unchunked.scores)
    for metric in METRICS:
        assert outcome.scores[metric] == pytest.approx(theirs[metric], abs=6e-6), metric  # MTEB rounds to 5 decimals
    assert 0 < outcome.scores["ndcg_at_10"] < 1
    assert adapter.score_units(outcome.units, np.arange(25)) == pytest.approx(outcome.scores["ndcg_at_10"], abs=1e-6)


def test_ignore_identical_ids_as_mteb(tmp_path: Path, static: Any) -> None:
    """Duplicate-question style data: every query is also a document under the same id."""
    compare = compare_module()
    texts = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()[:30]]
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8"
    )
    (tmp_path / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts[:10])), encoding="utf-8"
    )
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"d{i}\td{i + 10}\t1\n" for i in range(10)), encoding="utf-8"
    )
    (tmp_path / "task.toml").write_text(
        'name = "Dup"\ntype = "retrieval"\nsplit = "test"\n[files]\ncorpus = "corpus.jsonl"\n'
        'queries = "queries.jsonl"\ntest = "qrels/test.tsv"\n'
        "[settings]\nignore_identical_ids = true\n",
        encoding="utf-8",
    )
    task = load_task_file(tmp_path / "task.toml")
    ignoring = adapter_for("retrieval").evaluate(static, task, "test")
    keeping = adapter_for("retrieval").evaluate(static, with_settings(task, ignore_identical_ids=False), "test")
    theirs = compare.mteb_scores(task, "test", compare.MtebBridge(static))
    assert ignoring.scores["mrr_at_1000"] == pytest.approx(theirs["mrr_at_1000"], abs=6e-6)
    assert ignoring.scores["ndcg_at_10"] == pytest.approx(theirs["ndcg_at_10"], abs=6e-6)
    assert ignoring.scores["ndcg_at_10"] > keeping.scores["ndcg_at_10"]  # the query itself no longer takes rank 1


def test_queries_and_documents_get_their_roles(tmp_path: Path, tiny_bert: Path) -> None:
    compare = compare_module()
    task = load_task_file(scifact_subset(tmp_path, n_queries=8, n_other_docs=5))
    prompted = load_encoder(f"hf:{tiny_bert}?query_prompt=query&document_prompt=passage")
    plain = load_encoder(f"hf:{tiny_bert}")
    ours = adapter_for("retrieval").evaluate(prompted, task, "test")
    theirs = compare.mteb_scores(task, "test", compare.MtebBridge(prompted))
    assert ours.scores["ndcg_at_10"] == pytest.approx(theirs["ndcg_at_10"], abs=6e-6)
    assert ours.scores != adapter_for("retrieval").evaluate(plain, task, "test").scores


def test_missing_document_in_qrels(tmp_path: Path, static: Any) -> None:
    path = scifact_subset(tmp_path, n_queries=10, n_other_docs=10)
    with (tmp_path / "qrels" / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write(f"{(tmp_path / 'qrels' / 'test.tsv').read_text().splitlines()[1].split(chr(9))[0]}\tNOPE\t1\n")
    n_lines = len((tmp_path / "qrels" / "test.tsv").read_text().splitlines())
    task = load_task_file(path)
    with pytest.raises(DataError, match=rf"test\.tsv:{n_lines}: field 'corpus-id': qrels name document 'NOPE'"):
        adapter_for("retrieval").validate(task)
    keep = with_settings(task, missing_documents="keep")
    outcome = adapter_for("retrieval").evaluate(static, keep, "test")
    assert any("1 qrels name documents absent from the corpus" in w for w in outcome.warnings)
    compare = compare_module()
    theirs = compare.mteb_scores(keep, "test", compare.MtebBridge(static))
    assert outcome.scores["recall_at_1000"] == pytest.approx(theirs["recall_at_1000"], abs=6e-6)
    assert outcome.scores["recall_at_1000"] < 1  # the unfindable document counts, as in MTEB


def test_unknown_query_in_qrels_is_dropped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scifact_subset(tmp_path, n_queries=5, n_other_docs=5)
    corpus_id = json.loads((tmp_path / "corpus.jsonl").read_text().splitlines()[0])["_id"]
    with (tmp_path / "qrels" / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write(f"ghost\t{corpus_id}\t1\n")
    adapter_for("retrieval").validate(load_task_file(path))
    assert re.search(
        r"evalkit: warning: .*test\.tsv: dropped 1 qrels whose query is not in queries\.jsonl: ghost \(line", capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("target", "mutate", "message"),
    [
        ("corpus.jsonl", lambda lines: [*lines, lines[0]], r"corpus\.jsonl:\d+: document id '\w+' is duplicated \(first at line 1\)"),
        ("corpus.jsonl", lambda lines: [lines[0], lines[1][:-3], *lines[2:]], r"corpus\.jsonl:2: line is not valid JSON"),
        ("queries.jsonl", lambda lines: [*lines, lines[1]], r"queries\.jsonl:\d+: query id '\w+' is duplicated \(first at line 2\)"),
        ("qrels/test.tsv", lambda lines: [*lines, lines[1]], r"test\.tsv:\d+: pair \(\w+, \w+\) is judged twice"),
        (
            "qrels/test.tsv",
            lambda lines: [*lines, lines[1].rsplit("\t", 1)[0] + "\thigh"],
            r"test\.tsv:\d+: field 'score': expected a number",
        ),
    ],
)
def test_malformed_inputs_name_file_and_line(tmp_path: Path, target: str, mutate: Any, message: str) -> None:
    path = scifact_subset(tmp_path, n_queries=5, n_other_docs=5)
    file = tmp_path / target
    file.write_text("\n".join(mutate(file.read_text(encoding="utf-8").splitlines())) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message):
        adapter_for("retrieval").validate(load_task_file(path))


def test_shipped_scifact_task_is_valid() -> None:
    from evalkit.taskspec import TaskIndex

    task = TaskIndex().get("SciFact")
    adapter_for("retrieval").validate(task)
    judged = adapter_for("retrieval").load(task, "test")  # type: ignore[attr-defined]
    assert (len(judged.queries), sum(len(v) for v in judged.qrels.values()), judged.n_docs) == (300, 339, 5183)
