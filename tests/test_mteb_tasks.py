"""MTEB's catalogue through evalkit: ``-t mteb:NAME``, ``protocol = "mteb:NAME"``, and the shipped tasks' settings.

The MTEB task objects are real (``mteb.get_task``); offline, their ``load_data`` is given
local data from ``tasks/data`` instead of the hub, as MTEB's own tests do, so MTEB's
class, metadata and data layout travel the whole path while nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import evalkit
from evalkit import mteb_tasks
from evalkit.adapters import adapter_for
from evalkit.adapters.base import settings_model
from evalkit.cli import main
from evalkit.data import read_rows
from evalkit.errors import DataError
from evalkit.taskspec import TaskIndex, load_task_file

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tasks" / "data"

KNOWN_DIFFERENCES = {
    ("SICK-R", "min_score"): "SICK is rated 1-5; MTEB keeps AbsTaskSTS's default 0..5. Min-max scaling changes no correlation.",
}
"""Where a shipped task's setting differs from its MTEB counterpart's metadata, and why the score does not."""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test writes MTEB's data into its own evalkit cache."""
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def rows(path: Path) -> list[dict[str, Any]]:
    return [dict(r.values) for r in read_rows(path)]


def datasets(splits: dict[str, list[dict[str, Any]]]) -> Any:
    from datasets import Dataset, DatasetDict

    return DatasetDict({split: Dataset.from_list(items) for split, items in splits.items()})


def sts() -> Any:
    return datasets({"test": [{**r, "score": float(r["score"])} for r in rows(DATA / "sts" / "stsbenchmark" / "test.tsv")]})


def emotion() -> Any:
    folder = DATA / "classification" / "emotion"
    return datasets({split: rows(folder / f"{split}.jsonl") for split in ("train", "test")})


def mrpc() -> Any:
    pairs = rows(DATA / "pair_classification" / "mrpc" / "test.jsonl")
    return datasets({"test": [{"sentence1": r["sentence1"], "sentence2": r["sentence2"], "labels": r["label"]} for r in pairs]})


def scifact() -> Any:
    from datasets import Dataset

    folder = DATA / "retrieval" / "scifact"
    qrels: dict[str, dict[str, int]] = {}
    for r in rows(folder / "qrels" / "test.tsv"):
        qrels.setdefault(str(r["query-id"]), {})[str(r["corpus-id"])] = int(r["score"])
    corpus = Dataset.from_list([{"id": str(d["_id"]), "title": d["title"], "text": d["text"]} for d in rows(folder / "corpus.jsonl")])
    queries = Dataset.from_list([{"id": str(q["_id"]), "text": q["text"]} for q in rows(folder / "queries.jsonl")])
    return {"default": {"test": {"corpus": corpus, "queries": queries, "relevant_docs": qrels, "top_ranked": None}}}


def scifact_candidates() -> Any:
    """SciFact with the shipped reranking task's candidate lists as MTEB's ``top_ranked``."""
    data = scifact()
    lists = rows(DATA / "reranking" / "scifact" / "candidates.jsonl")
    data["default"]["test"]["top_ranked"] = {str(r["query-id"]): [str(d) for d in r["corpus-ids"]] for r in lists}
    return data


def summeval() -> Any:
    keys = ("text", "human_summaries", "machine_summaries", "relevance")
    return datasets({"test": [{k: r[k] for k in keys} for r in rows(DATA / "summarization" / "summeval" / "test.jsonl")]})


EMOTION_CLUSTERS = DATA / "clustering" / "emotion" / "test.jsonl"


def clusters_v2() -> Any:
    return datasets({"test": [{"sentences": r["text"], "labels": r["label"]} for r in rows(EMOTION_CLUSTERS)]})


def legacy_sets() -> list[list[dict[str, Any]]]:
    """Three clustering sets of 200 Banking77 utterances each (MTEB's legacy layout: one row per set)."""
    docs = rows(DATA / "clustering" / "banking77" / "test.jsonl")
    return [docs[i * 200 : (i + 1) * 200] for i in range(3)]


def clusters_legacy() -> Any:
    return datasets({"test": [{"sentences": [d["text"] for d in s], "labels": [d["label"] for d in s]} for s in legacy_sets()]})


def given_local_data(monkeypatch: pytest.MonkeyPatch, name: str, make: Callable[[], Any]) -> None:
    """MTEB's task class ``name`` loads ``make()`` instead of its hub dataset (how MTEB's own tests run offline)."""
    import mteb

    def load_data(self: Any, *args: Any, **kwargs: Any) -> None:
        self.dataset = make()
        self.data_loaded = True

    monkeypatch.setattr(type(mteb.get_task(name)), "load_data", load_data)


def user_task(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(body, encoding="utf-8")
    return path


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert len(lines) == 1, err
    return lines[0]


# ---- -t mteb:NAME --------------------------------------------------------------------------------------------------------
def units(task: Any) -> Any:
    """What the task's adapter scores, read before any model loads (file paths and lines left out)."""
    adapter = adapter_for(task.type)
    if task.type == "classification":
        plan = adapter.plan(task, task.split)
        return plan.settings, plan.test.texts, plan.test.labels, plan.train.texts, plan.train.labels, plan.runs
    data = adapter.load(task, task.split)
    if task.type == "sts":
        return data.sentences1, data.sentences2, data.gold.tolist()
    if task.type == "pair_classification":
        return data.sentences1, data.sentences2, data.labels.tolist()
    if task.type == "retrieval":
        return data.queries, data.qrels, data.n_docs
    if task.type == "reranking":
        return data.queries, data.qrels, data.candidates, data.documents, data.n_docs
    if task.type == "summarization":
        return data.human, data.machine, [g.tolist() for g in data.gold]
    docs, plan = data
    return docs.texts, docs.labels, docs.sets, plan


def test_mteb_tasks_read_exactly_what_evalkit_reads_from_the_same_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each type: an MTEB task object with local data, as ``mteb:NAME``, gives its adapter the same units and protocol.

    The twin is the shipped task where its settings are MTEB's (checked below), else a
    user task file on the same data that inherits MTEB's protocol with ``protocol = ...``.
    """
    for name, make in [
        ("STSBenchmark", sts),
        ("EmotionClassification", emotion),
        ("TwitterSemEval2015", mrpc),
        ("SciFact", scifact),
        ("SciDocsRR", scifact_candidates),
        ("SummEvalSummarization.v2", summeval),
        ("TwentyNewsgroupsClustering.v2", clusters_v2),
        ("ArxivClusteringS2S", clusters_legacy),
    ]:
        given_local_data(monkeypatch, name, make)
    (tmp_path / "sets.jsonl").write_text(
        "".join(json.dumps({**d, "set": i}) + "\n" for i, s in enumerate(legacy_sets()) for d in s), encoding="utf-8"
    )
    news = 'name = "NewsLike"\ntype = "clustering"\nprotocol = "mteb:TwentyNewsgroupsClustering.v2"\nsplit = "test"\n'
    arxiv = 'name = "ArxivLike"\ntype = "clustering"\nprotocol = "mteb:ArxivClusteringS2S"\nsplit = "test"\n'
    twins = {
        "STSBenchmark": TaskIndex().get("STSBenchmark"),
        "EmotionClassification": TaskIndex().get("EmotionClassification"),
        "TwitterSemEval2015": TaskIndex().get("MRPC"),  # pair classification has no settings: only MRPC's data is shared
        "SciFact": TaskIndex().get("SciFact"),
        "SciDocsRR": TaskIndex().get("SciFactReranking"),  # MTEB's reranking layout, the shipped task's candidates
        "SummEvalSummarization.v2": TaskIndex().get("SummEval"),
        "TwentyNewsgroupsClustering.v2": load_task_file(user_task(tmp_path, "news", news + f'[files]\ntest = "{EMOTION_CLUSTERS}"\n')),
        "ArxivClusteringS2S": load_task_file(user_task(tmp_path, "arxiv", arxiv + '[files]\ntest = "sets.jsonl"\n')),
    }
    for name, twin in twins.items():
        task = TaskIndex().get(f"mteb:{name}")
        assert task.name == f"mteb:{name}" and task.type == twin.type and task.split == twin.split == "test"
        default = adapter_for(task.type).main_metric
        assert (task.main_score or default) == (twin.main_score or default), name
        assert units(task) == units(twin), name


def test_an_mteb_task_runs_end_to_end_beside_its_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Intervals, throughput, its own result file, and the score of the same data in evalkit's shipped task."""
    given_local_data(monkeypatch, "STSBenchmark", sts)
    results = evalkit.evaluate("tfidf:lexical", ["mteb:STSBenchmark", "STSBenchmark"], output=tmp_path / "out", progress=False)
    ours, theirs = (next(r for r in results if r.task == name) for name in ("mteb:STSBenchmark", "STSBenchmark"))
    assert ours.ok and ours.main_score == pytest.approx(theirs.main_score, abs=1e-12) and ours.n_units == theirs.n_units == 1379
    assert ours.ci["low"] < ours.main_score < ours.ci["high"] and ours.throughput["sentences"] > 0
    assert ours.task_hash == theirs.task_hash and ours.data_hash != theirs.data_hash  # same protocol, MTEB's copy of the data
    assert len(list((tmp_path / "out").glob("*/mteb%3ASTSBenchmark.test.json"))) == 1


def test_an_mteb_task_is_written_once_and_read_back_without_mteb_loading_it(monkeypatch: pytest.MonkeyPatch, own_cache: Path) -> None:
    """The task file evalkit writes carries MTEB's metadata; the second lookup reads it and never calls the loader."""
    calls = []

    def make() -> Any:
        calls.append(1)
        return emotion()

    given_local_data(monkeypatch, "EmotionClassification", make)
    first = TaskIndex().get("mteb:EmotionClassification")
    again = TaskIndex().get("mteb:emotionclassification")
    assert calls == [1] and again.name == first.name == "mteb:EmotionClassification"
    assert dict(first.settings) == {
        "mode": "undersample",
        "n_experiments": 10,
        "samples_per_label": 16,
        "seed": 42,
        "max_iter": 100,
        "train_split": "train",
    }
    assert first.main_score is None and first.split == "test" and set(first.files) == {"train", "test"}  # None: the adapter's, accuracy
    assert first.source is not None and first.source.is_relative_to(own_cache / "mteb")
    assert "revision 4f58c6b202a23cf9a4da393831edf4f9183cad37" in first.text


def test_offline_without_the_dataset_is_one_line_naming_it_and_how_to_get_it(tmp_path: Path) -> None:
    """The real loader, really offline, with an empty Hugging Face cache: exit 2, one line, nothing written."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "EVALKIT_CACHE_DIR": str(tmp_path / "cache")}
    args = ["run", "-e", "tfidf:lexical", "-t", "mteb:STSBenchmark", "-o", str(tmp_path / "out"), "--no-progress"]
    result = subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalkit: error:"), result.stderr
    assert "mteb/stsbenchmark-sts" in lines[0] and "HF_HUB_OFFLINE" in lines[0]
    assert "hf download --repo-type dataset mteb/stsbenchmark-sts --revision b0fddb56ed78048fa8b90373c8a3cfc37b684831" in lines[0]
    assert not (tmp_path / "out").exists() and not list((tmp_path / "cache").rglob("*.jsonl"))


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ("mteb:STSBenchmarkk", "did you mean 'STSBenchmark'"),
        ("mteb:", "names no MTEB task"),
        ("mteb:AmazonCounterfactualClassification:xx", "has no subset 'xx'"),
        ("mteb:BUCC", "which evalkit has no adapter for"),
    ],
)
def test_bad_mteb_names_are_one_line(task: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-e", "tfidf:lexical", "-t", task, "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    line = error_line(capsys)
    assert fragment in line and "field '--task'" in line
    assert not (tmp_path / "out").exists()


def test_a_multilingual_task_takes_its_english_subset_or_asks() -> None:
    amazon = mteb_tasks.protocol_of("mteb:AmazonCounterfactualClassification")
    assert amazon.eval_splits == ("validation", "test") and amazon.split == "test"
    assert mteb_tasks.choose_subset(amazon, None) == "en"
    assert mteb_tasks.choose_subset(amazon, "de") == "de"
    sts22 = mteb_tasks.protocol_of("mteb:STS22.v2")
    assert mteb_tasks.choose_subset(sts22, None) == "en"
    many = mteb_tasks.Protocol(
        "X", "sts", {}, "cosine_spearman", ("test",), ("fr", "de"), languages={"fr": ("fra-Latn",), "de": ("deu-Latn",)}
    )
    with pytest.raises(DataError, match="has 2 subsets; name one"):
        mteb_tasks.choose_subset(many, None)


# ---- MTEB's metadata in evalkit's settings ---------------------------------------------------------------------------
def shipped(name: str) -> Any:
    path = REPO / "tasks" / "variants" / "summeval_mteb_v1.toml"
    return load_task_file(path) if name == "SummEval-MTEBv1" else TaskIndex().get(name)


@pytest.mark.parametrize("name", sorted(mteb_tasks.SHIPPED))
def test_shipped_tasks_carry_the_settings_of_mtebs_metadata(name: str) -> None:
    """Every setting MTEB's metadata fixes equals the shipped task's (validated, so defaults count), as do main score and split."""
    task = shipped(name)
    proto = mteb_tasks.protocol_of(f"mteb:{mteb_tasks.SHIPPED[name]}")
    assert proto.type == task.type
    model = settings_model(adapter_for(task.type))
    ours, theirs = task.settings_as(model).model_dump(), model.model_validate(dict(proto.settings)).model_dump()
    for key in proto.settings:
        if (name, key) in KNOWN_DIFFERENCES:
            assert ours[key] != theirs[key], f"{name}.{key} now agrees with MTEB: drop it from KNOWN_DIFFERENCES"
            continue
        assert ours[key] == theirs[key], f"{name}: settings.{key} = {ours[key]!r}, MTEB's metadata says {theirs[key]!r}"
    assert (task.main_score or adapter_for(task.type).main_metric) == proto.main_score
    assert task.split in proto.eval_splits


# ---- protocol = "mteb:NAME" in a user's task file ------------------------------------------------------------------------
def tweets(folder: Path, top: str = 'protocol = "mteb:TweetSentimentExtractionClassification"\n', settings: str = "") -> Path:
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in emotion_rows("train", 300)), encoding="utf-8")
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in emotion_rows("test", 100)), encoding="utf-8")
    body = f'name = "MyTweets"\ntype = "classification"\n{top}split = "test"\n[files]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n'
    return user_task(folder, "tweets", body + (f"[settings]\n{settings}" if settings else ""))


def emotion_rows(split: str, n: int) -> list[dict[str, Any]]:
    return rows(DATA / "classification" / "emotion" / f"{split}.jsonl")[:n]


def test_protocol_key_inherits_mtebs_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """32 samples per label (MTEB's TweetSentimentExtraction), not evalkit's default 8; nothing said when nothing differs."""
    task = load_task_file(tweets(tmp_path))
    assert task.protocol == "mteb:TweetSentimentExtractionClassification"
    assert task.settings["samples_per_label"] == 32 and task.settings["n_experiments"] == 10 and task.settings["seed"] == 42
    assert task.main_score == "accuracy"
    assert "warning" not in capsys.readouterr().err


def test_explicit_settings_win_and_each_difference_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tweets(tmp_path, settings="samples_per_label = 8\nn_experiments = 10\n")
    task = load_task_file(path)
    assert task.settings["samples_per_label"] == 8 and task.settings["seed"] == 42
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "overrides MTEB's" in line]
    assert len(notes) == 1, err  # n_experiments = 10 agrees with MTEB: not a conflict
    assert f"{path.resolve()}:9: settings.samples_per_label = 8 overrides MTEB's 32" in notes[0]


def test_inherited_settings_are_part_of_the_cell_identity(tmp_path: Path) -> None:
    """A changed MTEB protocol (another mteb version) must not resume the old result: the inherited settings are in the hash."""
    import dataclasses

    from evalkit.execution.cells import Cell, identity
    from evalkit.spec import EncoderSpec

    task = load_task_file(tweets(tmp_path))
    other = dataclasses.replace(task, settings={**task.settings, "samples_per_label": 16})
    spec = EncoderSpec.parse("tfidf:lexical")
    assert Cell(spec, task, "test").config_hash() != Cell(spec, other, "test").config_hash()
    assert identity(Cell(spec, task, "test"))["task_hash"] != identity(Cell(spec, other, "test"))["task_hash"]


@pytest.mark.parametrize(
    ("top", "settings", "fragment"),
    [
        ('protocol = "mteb:STSBenchmark"\n', "", "MTEB's STSBenchmark is a sts task, but this file is type = 'classification'"),
        ('protocol = "mteb:TweetSentimentExtractionClasification"\n', "", "did you mean 'TweetSentimentExtractionClassification'"),
        ('protocol = "senteval"\n', "", "write 'mteb:TASKNAME'"),
        ("", 'protocol = "mteb:TweetSentimentExtractionClassification"\n', "an MTEB protocol is a top-level key"),
    ],
)
def test_bad_protocol_keys_are_one_line_naming_the_file(
    top: str, settings: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tweets(tmp_path, top=top, settings=settings)
    assert main(["run", "-e", "tfidf:lexical", "-t", str(path), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    line = error_line(capsys)
    assert fragment in line and str(path.resolve()) in line and "protocol" in line
