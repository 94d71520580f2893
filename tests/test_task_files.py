"""Task files: one typed model, checked before any model loads; no silent protocol switch; data-quality warnings.

Hypothesis generates task files (valid ones, and ones with random keys, types, values
and Unicode) and asserts that loading gives a TaskSpec with the identity that was
written, or exactly one DataError naming a field (or the TOML line, for text that is
not TOML) — never another exception. The named cases of the issue are regression tests
through the real CLI, in-process: exit 2, one ``evalkit: error:`` line naming file,
line and field, no traceback, no result file.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.adapters import adapter_for
from evalkit.cli import main
from evalkit.errors import DataError
from evalkit.taskspec import TaskSpec, load_task_file, task_from_data

REPO = Path(__file__).resolve().parent.parent
STS = "sentence1\tsentence2\tscore\nA cat sits.\tA cat is sitting.\t4.8\nA dog runs.\tThe stock fell.\t0.2\nRain falls.\tIt rains.\t4.0\n"
CLS = "".join(
    json.dumps(r) + "\n"
    for r in [
        {"text": "good film", "label": 1},
        {"text": "bad film", "label": 0},
        {"text": "great", "label": 1},
        {"text": "awful", "label": 0},
    ]
)
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---- a small TOML writer (the standard library only reads TOML) ----------------------------------
def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and controls escaped; a lone surrogate becomes \\udXXX, which TOML refuses."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_text(data: dict[str, Any]) -> str:
    """Top-level scalars first, then one [table] per dict value (as people write task files)."""
    lines = [f"{toml_string(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_string(key)}]")
            lines += [f"{toml_string(str(k))} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_the_toml_writer_round_trips() -> None:
    import tomllib

    data = {
        "name": 'X "q" \\ \x7f \x00 \U0001f600',
        "n": 3,
        "f": 1.5,
        "ok": True,
        "l": [1, "a"],
        "settings": {"columns": {"text": "t"}, "k": [1, 2]},
    }
    assert tomllib.loads(toml_text(data)) == data


# ---- generated task files ------------------------------------------------------------------------
KEYS = ["name", "type", "split", "description", "reference", "license", "main_score", "files", "settings"]
SETTING_KEYS = [
    "min_score", "max_score", "columns", "mode", "protocol", "n_experiments", "samples_per_label", "train_split", "k_folds",
    "seed", "max_iter", "k_values", "chunk_size", "similarity", "missing_documents", "ignore_identical_ids",
]  # fmt: skip
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["test", "train", "sts", "classification", "retrieval", "cross_validation", "full", "../x", ".hidden", "a/b", ""]),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6
)
py_values = st.recursive(
    scalars | st.none() | st.just("\ud800") | st.just(b"bytes"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20) | st.text(max_size=20)
TYPES = ["sts", "classification", "pair_classification", "retrieval"]


@st.composite
def task_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid task of one of the four types, then zero or more mutations (a key added, dropped or given a random value)."""
    kind = draw(st.sampled_from(TYPES))
    files: dict[str, Any] = {"test": "test.tsv", "train": ["train.tsv"]}
    if kind == "retrieval":
        files |= {"corpus": "corpus.jsonl", "queries": "queries.jsonl"}
    task: dict[str, Any] = {"name": draw(NAMES), "type": kind, "split": "test", "files": files, "settings": {}}
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        where = draw(st.sampled_from(["top", "settings", "files"]))
        table = task if where == "top" else task.setdefault(where, {}) if isinstance(task.get(where), dict) else task
        key = draw(
            st.sampled_from(KEYS if where == "top" else SETTING_KEYS if where == "settings" else ["test", "dev", "../up"])
            | st.text(max_size=8)
        )
        action = draw(st.sampled_from(["set", "drop"]))
        if action == "drop":
            table.pop(key, None)
        else:
            table[key] = draw(values)
    return task


def check_loads_or_one_error(folder: Path, text: str | bytes) -> TaskSpec | DataError:
    path = folder / "task.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        return load_task_file(path)
    except DataError as exc:
        assert "\n" not in exc.render(), exc.render()
        syntax = any(s in exc.message for s in ("not valid TOML", "not UTF-8", "nests arrays"))
        assert syntax or exc.field, f"an error that names no field: {exc.render()}"
        assert syntax or exc.path == str(path)
        return exc


@HYPOTHESIS
@given(task=task_dicts())
def test_generated_task_files_load_or_raise_one_data_error(tmp_path: Path, task: dict[str, Any]) -> None:
    outcome = check_loads_or_one_error(tmp_path, toml_text(task))
    if isinstance(outcome, TaskSpec):  # what was written is what was loaded
        assert outcome.name == task["name"].strip() and outcome.type == task["type"].lower() and outcome.split == task["split"]
        assert set(outcome.files) == set(task["files"])
        for group, paths in task["files"].items():
            written = [paths] if isinstance(paths, str) else paths
            assert outcome.files[group] == tuple((tmp_path / p).resolve() for p in written)
        assert outcome.split in outcome.files and all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", g) for g in outcome.files)


@HYPOTHESIS
@given(raw=st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), py_values, max_size=8))
def test_arbitrary_python_data_never_escapes_as_another_exception(tmp_path: Path, raw: dict[str, Any]) -> None:
    """Straight into the model (no TOML in between): lone surrogates, None, any nesting."""
    try:
        task_from_data(raw, path=tmp_path / "task.toml")
    except DataError as exc:
        assert exc.field, exc.render()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=120) | st.binary(max_size=120))
def test_arbitrary_text_is_a_task_or_one_error(tmp_path: Path, text: str | bytes) -> None:
    check_loads_or_one_error(tmp_path, text)


# ---- named cases, through the CLI in-process --------------------------------------------------------
def run_cli(folder: Path, body: str, *extra: str, data: dict[str, str] | None = None) -> tuple[int, str]:
    for name, content in (data or {"pairs.tsv": STS}).items():
        (folder / name).write_text(content, encoding="utf-8")
    (folder / "task.toml").write_text(body, encoding="utf-8")
    out = folder / "out"
    code = main(["run", "-e", "tfidf:lexical", "-t", str(folder / "task.toml"), "-o", str(out), "--no-progress", "--no-cache", *extra])
    assert not list(out.rglob("*.json")), "bad input must stop the run before any result file is written"
    return code, str(out)


STS_HEAD = 'name = "Bad"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "pairs.tsv"\n'
CLS_HEAD = 'name = "BadCls"\ntype = "classification"\nsplit = "test"\n[files]\ntest = "test.jsonl"\n'
CLS_TRAIN = CLS_HEAD + 'train = "train.jsonl"\n'
CLS_DATA = {"test.jsonl": CLS, "train.jsonl": CLS}
RET_HEAD = 'name = "R"\ntype = "retrieval"\nsplit = "test"\n[files]\ntest = "q.tsv"\ncorpus = "c.jsonl"\nqueries = "q.jsonl"\n'
PAIR_HEAD = 'name = "P"\ntype = "pair_classification"\nsplit = "test"\n[files]\ntest = "p.jsonl"\n'
THREE_CLASSES = {"test.jsonl": CLS.replace('"label": 0}', '"label": 2}', 1), "train.jsonl": CLS}
CONSTANT_GOLD = {"pairs.tsv": STS.replace("4.8", "3").replace("0.2", "3").replace("4.0", "3")}


def with_top(head: str, line: str) -> str:
    return head.replace('split = "test"', f'split = "test"\n{line}')


CASES: list[tuple[str, str, dict[str, str] | None, list[str]]] = [
    # (id, task file, data files, fragments of the one error line)
    ("unknown top-level key", with_top(STS_HEAD, 'splitt = "dev"'), None, [":4:", "field 'splitt'", "did you mean 'split'"]),
    ("unknown setting", STS_HEAD + "[settings]\nmax_scor = 5\n", None, [":7:", "field 'settings.max_scor'", "did you mean 'max_score'"]),
    (
        "unknown column role",
        STS_HEAD + "[settings]\ncolumns = {sentense1 = 'a'}\n",
        None,
        ["field 'settings.columns.sentense1'", "did you mean 'sentence1'"],
    ),
    ("columns is text", STS_HEAD + '[settings]\ncolumns = "text"\n', None, [":7:", "field 'settings.columns'"]),
    ("column is a number", STS_HEAD + "[settings]\ncolumns = {score = 3}\n", None, [":7:", "field 'settings.columns.score'", "string"]),
    ("min_score -inf", STS_HEAD + "[settings]\nmin_score = -inf\n", None, [":7:", "field 'settings.min_score'", "finite"]),
    ("max_score inf", STS_HEAD + "[settings]\nmax_score = inf\n", None, [":7:", "field 'settings.max_score'", "finite"]),
    ("max_score nan", STS_HEAD + "[settings]\nmax_score = nan\n", None, [":7:", "field 'settings.max_score'", "finite"]),
    ("max below min", STS_HEAD + "[settings]\nmin_score = 5\nmax_score = 1\n", None, [":8:", "field 'settings.max_score'", "above"]),
    ("range too wide", STS_HEAD + "[settings]\nmin_score = -1e308\nmax_score = 1e308\n", None, ["field 'settings.max_score'", "too wide"]),
    (
        "unknown main_score",
        with_top(STS_HEAD, 'main_score = "cosine_spearmen"'),
        None,
        [":4:", "field 'main_score'", "did you mean 'cosine_spearman'"],
    ),
    ("unknown task type", STS_HEAD.replace('"sts"', '"stss"'), None, [":2:", "field 'type'", "did you mean 'sts'"]),
    ("split names no group", STS_HEAD.replace('split = "test"', 'split = "tset"'), None, [":3:", "field 'split'", "names no file group"]),
    ("group name with a slash", STS_HEAD + '"a/b" = "pairs.tsv"\n', None, ["field 'files'", "'a/b' is not a valid file group name"]),
    ("group name with a leading dot", STS_HEAD + '".hidden" = "pairs.tsv"\n', None, ["field 'files'", "'.hidden'"]),
    ("group name ..", STS_HEAD + '".." = "pairs.tsv"\n', None, ["field 'files'", "'..'"]),
    ("files entry is a number", STS_HEAD.replace('test = "pairs.tsv"', "test = 3"), None, [":5:", "field 'files.test'"]),
    ("empty list of files", STS_HEAD.replace('test = "pairs.tsv"', "test = []"), None, [":5:", "field 'files.test'"]),
    ("name with an ANSI escape", STS_HEAD.replace('"Bad"', '"Bad\\u001b[2J"'), None, [":1:", "field 'name'", "control character"]),
    ("name is blank", STS_HEAD.replace('"Bad"', '"  "'), None, [":1:", "field 'name'", "must not be empty"]),
    ("name is a lone surrogate", STS_HEAD.replace('"Bad"', '"\\ud800"'), None, [":1", "not valid TOML"]),
    ("settings is not a table", STS_HEAD.replace("[files]", "settings = 5\n[files]"), None, [":4:", "field 'settings'"]),
    ("seed out of range", CLS_TRAIN + "[settings]\nseed = 4294967296\n", CLS_DATA, [":8:", "field 'settings.seed'"]),
    ("negative seed", CLS_TRAIN + "[settings]\nseed = -1\n", CLS_DATA, [":8:", "field 'settings.seed'"]),
    (
        "n_experiments is text",
        CLS_TRAIN + '[settings]\nn_experiments = "10"\n',
        CLS_DATA,
        [":8:", "field 'settings.n_experiments'", "integer"],
    ),
    ("max_iter is true", CLS_TRAIN + "[settings]\nmax_iter = true\n", CLS_DATA, [":8:", "field 'settings.max_iter'"]),
    (
        "misspelt train_split",
        CLS_TRAIN + '[settings]\ntrain_split = "trian"\n',
        CLS_DATA,
        [":8:", "field 'settings.train_split'", "names no file group", "'trian'"],
    ),
    ("no train files, no protocol", CLS_HEAD, CLS_DATA, ["field 'settings.train_split'", "protocol = 'cross_validation'"]),
    (
        "k_folds without cross-validation",
        CLS_TRAIN + "[settings]\nk_folds = 3\n",
        CLS_DATA,
        [":8:", "field 'settings.k_folds'", "only to protocol = 'cross_validation'"],
    ),
    (
        "k_folds larger than the data",
        CLS_HEAD + '[settings]\nprotocol = "cross_validation"\nk_folds = 5\n',
        CLS_DATA,
        [":8:", "field 'settings.k_folds'", "4 examples, too few for 5 folds"],
    ),
    ("ap main score on 3 classes", with_top(CLS_TRAIN, 'main_score = "ap_weighted"'), THREE_CLASSES, ["field 'main_score'", "has 3"]),
    (
        "train and test are one file",
        CLS_HEAD + 'train = "test.jsonl"\n',
        CLS_DATA,
        [":5:", "field 'files.test'", "the classifier would be scored on its own training data"],
    ),
    ("retrieval k_values empty", RET_HEAD + "[settings]\nk_values = []\n", None, [":9:", "field 'settings.k_values'"]),
    ("retrieval similarity unknown", RET_HEAD + '[settings]\nsimilarity = "l2"\n', None, [":9:", "field 'settings.similarity'"]),
    ("pair settings unknown", PAIR_HEAD + "[settings]\nthreshold = 0.5\n", None, [":7:", "field 'settings.threshold'", "allowed: columns"]),
    ("STS gold scores all equal", STS_HEAD, CONSTANT_GOLD, ["pairs.tsv", "every pair has the gold score 3", "undefined"]),
    (
        "STS sentences all blank",
        STS_HEAD,
        {"pairs.tsv": "sentence1\tsentence2\tscore\n \ta\t1\n\tb\t2\n"},
        ["pairs.tsv", "field 'sentence1'", "every text in column 'sentence1' is empty"],
    ),
]


@pytest.mark.parametrize(("body", "data", "fragments"), [pytest.param(b, d, f, id=i) for i, b, d, f in CASES])
def test_bad_task_file_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, data: dict[str, str] | None, fragments: list[str]
) -> None:
    code, _ = run_cli(tmp_path, body, data=data)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert str(tmp_path) in errors[0]
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"


def test_split_on_the_command_line_that_is_the_training_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(tmp_path, CLS_HEAD + 'train = "train.jsonl"\n', "--split", "train", data=CLS_DATA)
    err = capsys.readouterr().err
    assert code == 2 and "field 'split': split 'train' is the classifier's training split" in err and "cross_validation" in err


def test_cross_validation_is_only_what_the_task_file_asks_for(tmp_path: Path) -> None:
    """The issue's case: a typo in train_split used to switch to cross-validation on test (90.0 instead of 83.0)."""
    rows = "".join(json.dumps({"text": f"text {i}", "label": i % 2}) + "\n" for i in range(20))
    for name in CLS_DATA:
        (tmp_path / name).write_text(rows, encoding="utf-8")
    base = CLS_HEAD + 'train = "train.jsonl"\n'
    for settings_text, protocol in (("", "train_test"), ('[settings]\nprotocol = "cross_validation"\nk_folds = 2\n', "cross_validation")):
        (tmp_path / "task.toml").write_text(base + settings_text, encoding="utf-8")
        task = load_task_file(tmp_path / "task.toml")
        plan = adapter_for("classification").plan(task, "test")  # type: ignore[attr-defined]
        assert plan.settings.protocol == protocol and (plan.train is None) == (protocol == "cross_validation")


# ---- data-quality warnings ----------------------------------------------------------------------------
def test_sts_warnings_are_lines_on_stderr_and_in_the_outcome(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.encoders import load_encoder

    data = STS + "A cat sits.\tA cat is sitting.\t1.0\nRain falls.\tIt rains.\t4.0\n \tBlank.\t2.0\n"
    (tmp_path / "pairs.tsv").write_text(data, encoding="utf-8")
    (tmp_path / "task.toml").write_text(STS_HEAD, encoding="utf-8")
    task = load_task_file(tmp_path / "task.toml")
    adapter = adapter_for("sts")
    adapter.validate(task)
    printed = [line for line in capsys.readouterr().err.splitlines() if line]
    pairs = tmp_path / "pairs.tsv"
    expected = [
        f"evalkit: warning: {pairs}:7: empty or whitespace-only text in column 'sentence1': 1 row: line 7",
        f"evalkit: warning: {pairs}:5: pair repeated with a different score: 1 row: line 5 (as line 2)",
        f"evalkit: warning: {pairs}:6: duplicate row (same pair and score as an earlier row): 1 row: line 6 (as line 4)",
    ]
    assert sorted(printed) == sorted(expected)
    adapter.validate(task)  # printed once per process, not once per call
    assert capsys.readouterr().err == ""
    outcome = adapter.evaluate(load_encoder("tfidf:lexical"), task, "test")
    assert sorted(outcome.warnings) == sorted(line.removeprefix("evalkit: warning: ") for line in expected)


def test_pair_classification_conflicting_labels_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("a", "b", 1), ("c", "d", 0), ("a", "b", 0), ("e", "f", 1)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "label": y}) + "\n" for a, b, y in rows))
    (tmp_path / "task.toml").write_text('name = "P"\ntype = "pair_classification"\nsplit = "test"\n[files]\ntest = "p.jsonl"\n')
    adapter_for("pair_classification").validate(load_task_file(tmp_path / "task.toml"))
    assert f"evalkit: warning: {tmp_path / 'p.jsonl'}:3: pair repeated with a different label: 1 row: line 3 (as line 1)" in (
        capsys.readouterr().err.splitlines()
    )


# ---- reading the file itself ----------------------------------------------------------------------------
def test_a_bom_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "task.toml").write_bytes(b"\xef\xbb\xbf" + STS_HEAD.encode())
    assert load_task_file(tmp_path / "task.toml").name == "Bad"


@pytest.mark.timeout(20)
def test_a_fifo_or_a_folder_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.toml")
    with pytest.raises(DataError, match="not a regular file"):
        load_task_file(tmp_path / "fifo.toml")
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(DataError, match="not a regular file"):
        load_task_file(tmp_path / "folder.toml")


def test_deep_nesting_and_huge_files_are_one_error(tmp_path: Path) -> None:
    (tmp_path / "deep.toml").write_text(STS_HEAD + "[settings]\nx = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"too deeply|not valid TOML"):
        load_task_file(tmp_path / "deep.toml")
    (tmp_path / "big.toml").write_text(STS_HEAD + "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(DataError, match="larger than 1 MiB"):
        load_task_file(tmp_path / "big.toml")


def test_every_shipped_task_file_loads_and_names_its_protocol() -> None:
    """Shipped classification tasks all have train files, so the default protocol (train/test) is what they mean."""
    from evalkit.taskspec import TaskIndex

    index = TaskIndex()
    for name in index.names():
        task = index.get(name)
        if task.type == "classification":
            settings_ = task.settings_as(adapter_for("classification").Settings)  # type: ignore[attr-defined]
            assert settings_.protocol == "train_test" and settings_.train_split in task.files, name


def test_the_cli_subprocess_prints_one_line(tmp_path: Path) -> None:
    """Once through the real executable: one line, exit 2, no traceback."""
    (tmp_path / "task.toml").write_text(STS_HEAD + "[settings]\nmin_score = -inf\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", "run", "-e", "tfidf:lexical", "-t", str(tmp_path / "task.toml"), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"evalkit: error: {tmp_path / 'task.toml'}:7: field 'settings.min_score': Input should be a finite number, got -inf"
    ]


def test_the_data_readme_lists_exactly_the_shipped_files_with_their_rows_and_bytes() -> None:
    """tasks/data/README.md's table is generated from the files (scripts/data-inventory): a new or changed file must update it."""
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(repo / "scripts" / "data-inventory"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_data_file_edited_in_place_is_read_again_not_served_from_memory(tmp_path: Path) -> None:
    """``read_rows`` keeps parsed files per process; an edit (same size even) must be seen."""
    from evalkit.data import read_rows

    path = tmp_path / "pairs.tsv"
    path.write_text("sentence1\tsentence2\tscore\na\tb\t1\n", encoding="utf-8")
    assert read_rows(path)[0].values["score"] == "1"
    path.write_text("sentence1\tsentence2\tscore\na\tb\t2\n", encoding="utf-8")  # same size, new content
    assert read_rows(path)[0].values["score"] == "2"
    first = read_rows(path)
    first.clear()  # callers get their own list
    assert len(read_rows(path)) == 1


@pytest.mark.slow
def test_a_data_note_is_said_once_then_kept_in_results_and_describe(tmp_path: Path) -> None:
    """The new user's 7 STS-B/SICK-R warnings on every run: said on the first run only, stored in each result, listed by describe."""
    env = {**os.environ, "EVALKIT_CACHE_DIR": str(tmp_path / "cache")}
    run = [sys.executable, "-m", "evalkit", "run", "-e", "tfidf:lexical", "-t", "STSBenchmark", "--no-progress", "--no-report"]
    first = subprocess.run([*run, "-o", str(tmp_path / "a")], capture_output=True, text=True, env=env)
    second = subprocess.run([*run, "-o", str(tmp_path / "b")], capture_output=True, text=True, env=env)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    said = [line for line in first.stderr.splitlines() if line.startswith("evalkit: warning: ") and "duplicate row" in line]
    assert said, first.stderr
    assert "evalkit: warning:" not in second.stderr, second.stderr
    for folder in ("a", "b"):
        (result,) = (tmp_path / folder).glob("*/STSBenchmark.test.json")
        stored = json.loads(result.read_text(encoding="utf-8"))["warnings"]
        assert [line.removeprefix("evalkit: warning: ") for line in said] == [w for w in stored if "duplicate row" in w]
    described = subprocess.run([sys.executable, "-m", "evalkit", "describe", "STSBenchmark"], capture_output=True, text=True, env=env)
    assert described.returncode == 0 and "data notes (test):" in described.stdout
    assert all(line.removeprefix("evalkit: warning: ") in described.stdout for line in said)
