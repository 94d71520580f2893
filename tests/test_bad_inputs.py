"""Malformed inputs across task files, data files (every task type), encoder specs, result files, rule files and flags.

Every case runs the real CLI in a subprocess and must give exit code 2, exactly one
``evalkit: error:`` line naming what is wrong and where (file, line or field), no
traceback, and, for ``run``, no result file: bad input is caught before any model loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOOD_STS = (
    "sentence1\tsentence2\tscore\nA cat sits.\tA cat is sitting.\t4.8\nA dog runs.\tThe stock fell.\t0.2\nRain falls.\tIt rains.\t4.0\n"
)
SPEC = "tfidf:lexical"

Case = Callable[[Path], tuple[list[str], list[str]]]  # folder -> (CLI arguments, fragments the error line must contain)
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def task_file(folder: Path, body: str, name: str = "task.toml") -> Path:
    return write(folder, name, body)


def sts(folder: Path, data: str | bytes = GOOD_STS, extra: str = "", data_name: str = "pairs.tsv") -> list[str]:
    write(folder, data_name, data)
    toml = task_file(folder, f'name = "Bad"\ntype = "sts"\nsplit = "test"\n{extra}\n[files]\ntest = "{data_name}"\n')
    return ["run", "-e", SPEC, "-t", str(toml)]


def jsonl(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def classification(folder: Path, train: str, test: str) -> list[str]:
    write(folder, "train.jsonl", train)
    write(folder, "test.jsonl", test)
    toml = task_file(
        folder, 'name = "BadCls"\ntype = "classification"\nsplit = "test"\n[files]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n'
    )
    return ["run", "-e", SPEC, "-t", str(toml)]


GOOD_CLS = jsonl(
    {"text": "good film", "label": 1}, {"text": "bad film", "label": 0}, {"text": "great", "label": 1}, {"text": "awful", "label": 0}
)


def pairs(folder: Path, test: str) -> list[str]:
    write(folder, "test.jsonl", test)
    toml = task_file(folder, 'name = "BadPairs"\ntype = "pair_classification"\nsplit = "test"\n[files]\ntest = "test.jsonl"\n')
    return ["run", "-e", SPEC, "-t", str(toml)]


def retrieval(folder: Path, corpus: str | None = None, queries: str | None = None, qrels: str | None = None) -> list[str]:
    write(folder, "corpus.jsonl", corpus or jsonl({"_id": "d1", "title": "", "text": "cats"}, {"_id": "d2", "title": "", "text": "dogs"}))
    write(folder, "queries.jsonl", queries or jsonl({"_id": "q1", "text": "cat"}, {"_id": "q2", "text": "dog"}))
    write(folder, "qrels.tsv", qrels or "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    toml = task_file(
        folder,
        'name = "BadRet"\ntype = "retrieval"\nsplit = "test"\n'
        '[files]\ncorpus = "corpus.jsonl"\nqueries = "queries.jsonl"\ntest = "qrels.tsv"\n',
    )
    return ["run", "-e", SPEC, "-t", str(toml)]


# ---- task files -------------------------------------------------------------------------------
@case("task: TOML syntax error")
def _(f: Path) -> tuple[list[str], list[str]]:
    t = task_file(f, 'name = "X"\ntype = "sts\n')
    return ["run", "-e", SPEC, "-t", str(t)], ["task.toml", "not valid TOML"]


@case("task: missing name")
def _(f: Path) -> tuple[list[str], list[str]]:
    t = task_file(f, 'type = "sts"\nsplit = "test"\n[files]\ntest = "x.tsv"\n')
    return ["run", "-e", SPEC, "-t", str(t)], ["task.toml", "field 'name'"]


@case("task: unknown top-level key")
def _(f: Path) -> tuple[list[str], list[str]]:
    t = task_file(f, 'name = "X"\ntype = "sts"\nsplit = "test"\nsplitt = "dev"\n[files]\ntest = "x.tsv"\n')
    return ["run", "-e", SPEC, "-t", str(t)], ["task.toml", "field 'splitt'", "unknown key"]


@case("task: no [files] table")
def _(f: Path) -> tuple[list[str], list[str]]:
    t = task_file(f, 'name = "X"\ntype = "sts"\nsplit = "test"\n')
    return ["run", "-e", SPEC, "-t", str(t)], ["task.toml", "field 'files'"]


@case("task: files entry is a number")
def _(f: Path) -> tuple[list[str], list[str]]:
    t = task_file(f, 'name = "X"\ntype = "sts"\nsplit = "test"\n[files]\ntest = 3\n')
    return ["run", "-e", SPEC, "-t", str(t)], ["task.toml", "field 'files.test'"]


@case("task: settings is not a table")
def _(f: Path) -> tuple[list[str], list[str]]:
    t = task_file(f, 'name = "X"\ntype = "sts"\nsplit = "test"\nsettings = 5\n[files]\ntest = "x.tsv"\n')
    return ["run", "-e", SPEC, "-t", str(t)], ["task.toml", "field 'settings'"]


@case("task: unknown task type")
def _(f: Path) -> tuple[list[str], list[str]]:
    write(f, "pairs.tsv", GOOD_STS)
    t = task_file(f, 'name = "X"\ntype = "stss"\nsplit = "test"\n[files]\ntest = "pairs.tsv"\n')
    return ["run", "-e", SPEC, "-t", str(t)], ["stss", "sts"]


@case("task: unknown setting (typo)")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, extra="[settings]\nmax_scor = 5"), ["task.toml", "field 'settings.max_scor'", "did you mean 'max_score'"]


@case("task: max_score below min_score")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, extra="[settings]\nmin_score = 5\nmax_score = 1"), ["task.toml", "field 'settings.max_score'"]


@case("task: --split names no file group")
def _(f: Path) -> tuple[list[str], list[str]]:
    return [*sts(f), "--split", "dev"], ["task.toml", "field 'files.dev'"]


@case("task: not UTF-8")
def _(f: Path) -> tuple[list[str], list[str]]:
    t = task_file(f, "")
    t.write_bytes(b'name = "\xff\xfe"\n')
    return ["run", "-e", SPEC, "-t", str(t)], ["task.toml", "not UTF-8"]


@case("task: unknown task name")
def _(f: Path) -> tuple[list[str], list[str]]:
    return ["run", "-e", SPEC, "-t", "STSBenchmarkk"], ["STSBenchmarkk", "STSBenchmark"]


@case("task: two task files declare one name")
def _(f: Path) -> tuple[list[str], list[str]]:
    for name in ("a.toml", "b.toml"):
        task_file(f, 'name = "Twin"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "x.tsv"\n', name)
    return ["run", "-e", SPEC, "-t", "Twin", "--tasks-dir", str(f)], ["b.toml", "field 'name'", "declared twice"]


# ---- data files: STS -----------------------------------------------------------------------------
@case("sts data: header lacks a column")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, "sentence1\tsentence2\tgold\na\tb\t1\n"), ["pairs.tsv:1", "field 'score'"]


@case("sts data: wrong number of fields")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, GOOD_STS + "only one\tfield\n"), ["pairs.tsv:5", "expected 3"]


@case("sts data: score is not a number")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, GOOD_STS.replace("0.2", "low")), ["pairs.tsv:3", "field 'score'", "'low'"]


@case("sts data: score outside the range")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, GOOD_STS.replace("4.0", "7.5")), ["pairs.tsv:4", "field 'score'", "outside"]


@case("sts data: empty file")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, ""), ["pairs.tsv", "empty"]


@case("sts data: header only")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, "sentence1\tsentence2\tscore\n"), ["pairs.tsv", "no records"]


@case("sts data: not UTF-8")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, GOOD_STS.encode() + b"caf\xe9\tcafe\t1\n"), ["pairs.tsv", "not UTF-8"]


@case("sts data: file missing")
def _(f: Path) -> tuple[list[str], list[str]]:
    args = sts(f)
    (f / "pairs.tsv").unlink()
    return args, ["pairs.tsv", "does not exist"]


@case("sts data: unknown file type")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, data_name="pairs.xlsx"), ["pairs.xlsx", "unknown data file type"]


@case("sts data: NaN score")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, GOOD_STS.replace("4.8", "nan")), ["pairs.tsv:2", "field 'score'", "NaN"]


# ---- data files: classification --------------------------------------------------------------------
@case("classification data: line is not JSON")
def _(f: Path) -> tuple[list[str], list[str]]:
    return classification(f, GOOD_CLS, GOOD_CLS + "{text: oops}\n"), ["test.jsonl:5", "not valid JSON"]


@case("classification data: record lacks its label")
def _(f: Path) -> tuple[list[str], list[str]]:
    return classification(f, GOOD_CLS, jsonl({"text": "fine", "label": 1}, {"text": "no label"})), ["test.jsonl:2", "field 'label'"]


@case("classification data: mixed label types")
def _(f: Path) -> tuple[list[str], list[str]]:
    test = jsonl({"text": "a", "label": 1}, {"text": "b", "label": "1"})
    return classification(f, GOOD_CLS, test), ["test.jsonl:2", "field 'label'"]


@case("classification data: train has a single label")
def _(f: Path) -> tuple[list[str], list[str]]:
    train = jsonl({"text": "a", "label": 1}, {"text": "b", "label": 1})
    return classification(f, train, GOOD_CLS), ["train.jsonl", "single label"]


@case("classification data: record is a JSON list")
def _(f: Path) -> tuple[list[str], list[str]]:
    return classification(f, GOOD_CLS, GOOD_CLS + '["text", 1]\n'), ["test.jsonl:5", "JSON object"]


# ---- data files: pair classification ---------------------------------------------------------------
@case("pair data: label is not 0/1")
def _(f: Path) -> tuple[list[str], list[str]]:
    test = jsonl({"sentence1": "a", "sentence2": "b", "label": 1}, {"sentence1": "c", "sentence2": "d", "label": 2})
    return pairs(f, test), ["test.jsonl:2", "field 'label'", "0 or 1"]


@case("pair data: a single class")
def _(f: Path) -> tuple[list[str], list[str]]:
    test = jsonl({"sentence1": "a", "sentence2": "b", "label": 1}, {"sentence1": "c", "sentence2": "d", "label": 1})
    return pairs(f, test), ["test.jsonl", "both classes"]


@case("pair data: sentence is not text")
def _(f: Path) -> tuple[list[str], list[str]]:
    test = jsonl({"sentence1": "a", "sentence2": "b", "label": 1}, {"sentence1": 5, "sentence2": "d", "label": 0})
    return pairs(f, test), ["test.jsonl:2", "field 'sentence1'"]


# ---- data files: retrieval ----------------------------------------------------------------------------
@case("retrieval data: duplicate document id")
def _(f: Path) -> tuple[list[str], list[str]]:
    corpus = jsonl({"_id": "d1", "text": "a"}, {"_id": "d2", "text": "b"}, {"_id": "d1", "text": "c"})
    return retrieval(f, corpus=corpus), ["corpus.jsonl:3", "'d1' is duplicated"]


@case("retrieval data: qrels name an unknown document")
def _(f: Path) -> tuple[list[str], list[str]]:
    return retrieval(f, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td9\t1\n"), ["qrels.tsv:3", "field 'corpus-id'", "'d9'"]


@case("retrieval data: corpus line is not JSON")
def _(f: Path) -> tuple[list[str], list[str]]:
    return retrieval(f, corpus=jsonl({"_id": "d1", "text": "a"}, '{"_id": "d2", "text": ')), ["corpus.jsonl:2", "not valid JSON"]


@case("retrieval data: duplicate query id")
def _(f: Path) -> tuple[list[str], list[str]]:
    return retrieval(f, queries=jsonl({"_id": "q1", "text": "a"}, {"_id": "q1", "text": "b"})), ["queries.jsonl:2", "'q1' is duplicated"]


@case("retrieval data: relevance is not an integer")
def _(f: Path) -> tuple[list[str], list[str]]:
    return retrieval(f, qrels="query-id\tcorpus-id\tscore\nq1\td1\t0.5\n"), ["qrels.tsv:2", "field 'score'"]


# ---- encoder specs ------------------------------------------------------------------------------------
def spec_case(name: str, spec: str, *fragments: str) -> None:
    def build(f: Path) -> tuple[list[str], list[str]]:
        return ["run", "-e", spec, "-t", str(task_file_for_specs(f))], list(fragments)

    CASES[name] = build


def task_file_for_specs(folder: Path) -> Path:
    write(folder, "pairs.tsv", GOOD_STS)
    return task_file(folder, 'name = "Ok"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "pairs.tsv"\n')


spec_case("spec: no backend", "all-MiniLM-L6-v2", "'all-MiniLM-L6-v2'", "no backend")
spec_case("spec: unknown backend", "sbertt:all-MiniLM-L6-v2", "sbertt", "did you mean 'sbert'")
spec_case("spec: no model", "static:", "names no model")
spec_case("spec: unknown option", "static:tokenlearn-static?normalise=true", "'normalise'", "did you mean 'normalize'")
spec_case("spec: malformed options", "tfidf:lexical?svd", "malformed options", "'svd'")
spec_case("spec: option set twice", "tfidf:lexical?svd=2&svd=3", "option 'svd' twice")


# ---- result files (report) ------------------------------------------------------------------------------
GOOD_RESULT = {
    "schema_version": 1,
    "encoder": "tfidf:lexical",
    "task": "STSBenchmark",
    "task_type": "sts",
    "split": "test",
    "main_metric": "cosine_spearman",
    "main_score": 0.7,
    "scores": {"cosine_spearman": 0.7},
    "config_hash": "abc",
    "created_at": "2026-01-01T00:00:00+00:00",
    "status": "ok",
}


def result_case(name: str, content: str | bytes, *fragments: str) -> None:
    def build(f: Path) -> tuple[list[str], list[str]]:
        write(f / "results" / "enc", "good.test.json", json.dumps({**GOOD_RESULT, "task": "Other"}))
        write(f / "results" / "enc", "bad.test.json", content)
        return ["report", str(f / "results"), "-o", str(f / "reports")], ["bad.test.json", *fragments]

    CASES[name] = build


def result(**changes: object) -> str:
    data = {**GOOD_RESULT, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...})


result_case("result: truncated JSON", result()[:80], "not valid JSON")
result_case("result: not UTF-8", b"\xff\xfe{}", "not UTF-8")
result_case("result: main_score is text", result(main_score="0.7"), "field 'main_score'")
result_case("result: required field missing", result(scores=...), "field 'scores'")
result_case("result: newer schema version", result(schema_version=99), "field 'schema_version'")
result_case("result: unknown status", result(status="done"), "field 'status'")
result_case("result: a score is text", result(scores={"cosine_spearman": 0.7, "dot": "high"}), "field 'scores.dot'")
result_case("result: main metric absent from scores", result(main_metric="accuracy"), "field 'main_metric'")
result_case("result: top level is a list", "[1, 2]", "JSON object")


@case("result: results folder does not exist")
def _(f: Path) -> tuple[list[str], list[str]]:
    return ["report", str(f / "nowhere")], ["nowhere", "does not exist"]


# ---- rule files (gate) ---------------------------------------------------------------------------------
def rules_case(name: str, body: str | None, *fragments: str) -> None:
    def build(f: Path) -> tuple[list[str], list[str]]:
        for side in ("base", "cand"):
            write(f / side / "enc", "STSBenchmark.test.json", json.dumps(GOOD_RESULT))
        if body is not None:
            write(f, "rules.toml", body)
        return ["gate", "--baseline", str(f / "base"), "--candidate", str(f / "cand"), "--rules", str(f / "rules.toml")], list(fragments)

    CASES[name] = build


rules_case("rules: not TOML", "defaults = [\n", "rules.toml", "not valid TOML")
rules_case("rules: max_drop is text", '[defaults]\nmax_drop = "a"\n', "rules.toml", "field 'defaults.max_drop'")
rules_case("rules: misspelt field", "[defaults]\nmax_dropp = 1\n", "rules.toml", "field 'defaults.max_dropp'", "did you mean 'max_drop'")
rules_case("rules: misspelt table", "[default]\nmax_drop = 1\n", "rules.toml", "field 'default'")
rules_case("rules: alpha out of range", "[defaults]\nalpha = 1.5\n", "rules.toml", "field 'defaults.alpha'")
rules_case("rules: negative bootstrap size", "[bootstrap]\nn_boot = -3\n", "rules.toml", "field 'bootstrap.n_boot'")
rules_case("rules: negative per-task drop", "[task.STSBenchmark]\nmax_drop = -1\n", "rules.toml", "field 'task.STSBenchmark.max_drop'")
rules_case("rules: file missing", None, "rules.toml", "does not exist")


# ---- files that are not what they seem (readers read only regular, bounded, UTF-8 files) ----------------
@case("sts data: a FIFO (used to hang forever)")
def _(f: Path) -> tuple[list[str], list[str]]:
    args = sts(f, data_name="pipe.tsv")
    (f / "pipe.tsv").unlink()
    os.mkfifo(f / "pipe.tsv")
    return args, ["pipe.tsv", "FIFO", "not a regular file"]


@case("sts data: a directory")
def _(f: Path) -> tuple[list[str], list[str]]:
    args = sts(f, data_name="folder.tsv")
    (f / "folder.tsv").unlink()
    (f / "folder.tsv").mkdir()
    return args, ["folder.tsv", "directory"]


@case("sts data: a symlink to /dev/zero")
def _(f: Path) -> tuple[list[str], list[str]]:
    args = sts(f, data_name="zero.tsv")
    (f / "zero.tsv").unlink()
    (f / "zero.tsv").symlink_to("/dev/zero")
    return args, ["zero", "character device"]  # the task may name the link or its target


@case("sts data: a 1 GiB line")
def _(f: Path) -> tuple[list[str], list[str]]:
    args = sts(f, GOOD_STS + "a\t")
    with (f / "pairs.tsv").open("r+b") as handle:
        handle.truncate(1 << 30)  # sparse: no disk, and read only up to the limit
    return args, ["pairs.tsv:5", "longer than"]


@case("sts data: CSV with a BOM lacks a column")
def _(f: Path) -> tuple[list[str], list[str]]:
    data = "\ufeffsentence1,sentence2,gold\na,b,1\n".encode()
    return sts(f, data, data_name="pairs.csv"), ["pairs.csv:1", "field 'score'", "found 'sentence1', 'sentence2', 'gold'"]


@case("sts data: header names a column twice")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, "sentence1\tsentence2\tscore\tscore\na\tb\t1\t2\n"), ["pairs.tsv:1", "field 'score'", "more than once"]


@case("sts data: score is infinite")
def _(f: Path) -> tuple[list[str], list[str]]:
    return sts(f, GOOD_STS.replace("4.8", "1e999")), ["pairs.tsv:2", "field 'score'", "finite"]


@case("classification data: Infinity label")
def _(f: Path) -> tuple[list[str], list[str]]:
    return classification(f, GOOD_CLS, GOOD_CLS + '{"text": "x", "label": Infinity}\n'), ["test.jsonl:5", "not a finite number"]


@case("classification data: lone surrogate in a text")
def _(f: Path) -> tuple[list[str], list[str]]:
    return classification(f, GOOD_CLS, GOOD_CLS + '{"text": "\\udc80", "label": 1}\n'), ["test.jsonl:5", "lone surrogate"]


@case("classification data: a line nested 100k deep")
def _(f: Path) -> tuple[list[str], list[str]]:
    return classification(f, GOOD_CLS, GOOD_CLS + '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"), ["test.jsonl:5", "nested"]


@case("task: a FIFO task file")
def _(f: Path) -> tuple[list[str], list[str]]:
    os.mkfifo(f / "pipe.toml")
    return ["run", "-e", SPEC, "-t", str(f / "pipe.toml")], ["pipe.toml", "not a regular file"]


@case("task: TOML nested 100k deep")
def _(f: Path) -> tuple[list[str], list[str]]:
    t = task_file(f, 'name = "X"\nx = ' + "[" * 100_000 + "]" * 100_000 + "\n")
    return ["run", "-e", SPEC, "-t", str(t)], ["task.toml", "too deeply"]


@case("results folder: the lock file is a FIFO")
def _(f: Path) -> tuple[list[str], list[str]]:
    (f / "out").mkdir()
    os.mkfifo(f / "out" / ".evalkit.lock")
    return ["run", "-e", SPEC, "-t", str(task_file_for_specs(f)), "-o", str(f / "out")], [".evalkit.lock", "not a regular file"]


@case("gate: --summary is a folder (exit 2, not a regression)")
def _(f: Path) -> tuple[list[str], list[str]]:
    base = REPO / "results" / "baseline"
    return ["gate", "--baseline", str(base), "--candidate", str(base), "--summary", str(f)], ["field '--summary'", "not a regular file"]


@case("mteb import: evaluation_time 1e999")
def _(f: Path) -> tuple[list[str], list[str]]:
    body = '{"task_name": "STSBenchmark", "evaluation_time": 1e999, "scores": {"test": [{"main_score": 0.8, "hf_subset": "default"}]}}'
    write(f / "mteb" / "m" / "rev", "STSBenchmark.json", body)
    return ["mteb", "import", str(f / "mteb"), "-o", str(f / "out")], ["STSBenchmark.json", "field 'evaluation_time'"]


@case("mteb import: a date past year 9999")
def _(f: Path) -> tuple[list[str], list[str]]:
    body = '{"task_name": "STSBenchmark", "date": 1e300, "scores": {"test": [{"main_score": 0.8, "hf_subset": "default"}]}}'
    write(f / "mteb" / "m" / "rev", "STSBenchmark.json", body)
    return ["mteb", "import", str(f / "mteb"), "-o", str(f / "out")], ["STSBenchmark.json", "field 'date'"]


# ---- flags --------------------------------------------------------------------------------------------
@case("flags: --address without --executor ray")
def _(f: Path) -> tuple[list[str], list[str]]:
    return ["run", "-e", SPEC, "-t", str(task_file_for_specs(f)), "--address", "auto"], ["--address", "--executor ray"]


@case("flags: results folder under a plain file")
def _(f: Path) -> tuple[list[str], list[str]]:
    write(f, "plain-file", "not a folder")
    args = ["run", "-e", SPEC, "-t", str(task_file_for_specs(f)), "-o", str(f / "plain-file" / "results")]
    return args, ["plain-file", "Not a directory"]


@case("flags: report --n-boot below 100")
def _(f: Path) -> tuple[list[str], list[str]]:
    return ["report", str(REPO / "results" / "baseline"), "-o", "-", "-f", "md", "--n-boot", "5"], ["field '--n-boot'", "100"]


@case("flags: run --shard-size negative")
def _(f: Path) -> tuple[list[str], list[str]]:
    return ["run", "-e", SPEC, "-t", str(task_file_for_specs(f)), "--shard-size", "-1"], ["field '--shard-size'"]


@case("flags: bench --repeats 0")
def _(f: Path) -> tuple[list[str], list[str]]:
    return ["bench", "-e", SPEC, "-o", str(f / "out"), "--repeats", "0"], ["field '--repeats'"]


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30
    kinds = {name.split(":")[0] for name in CASES}
    assert {"task", "sts data", "classification data", "pair data", "retrieval data", "spec", "result", "rules"} <= kinds


Outcome = tuple[subprocess.CompletedProcess[str], list[str], Path]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case's CLI run, four at a time: each is a separate Python process that spends most of its time starting."""
    from concurrent.futures import ThreadPoolExecutor

    # Folders are made here, not in the threads: tmp_path_factory is not thread-safe.
    folders = {name: tmp_path_factory.mktemp("bad") for name in CASES}

    def execute(name: str) -> Outcome:
        folder = folders[name]
        args, fragments = CASES[name](folder)
        out = folder / "out"
        if args[0] == "run":
            args = [*args, "--no-progress", "--no-cache"] + ([] if "-o" in args else ["-o", str(out)])
        proc = subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, cwd=REPO, timeout=300)
        return proc, fragments, out

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(CASES, pool.map(execute, CASES), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_exit_2_with_a_message_naming_it(name: str, outcomes: dict[str, Outcome]) -> None:
    proc, fragments, out = outcomes[name]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("evalkit: error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    assert not list(out.rglob("*.json")), "a bad input must stop the run before any result is written"
