"""The command line as a user meets it: bad input is one line, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def evalkit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, cwd=cwd or REPO, timeout=300)


def sts_task(folder: Path, data: str, name: str = "MySTS", extra: str = "") -> Path:
    (folder / "pairs.tsv").write_text(data, encoding="utf-8")
    task = folder / "my_sts.toml"
    task.write_text(f'name = "{name}"\ntype = "sts"\nsplit = "test"\n{extra}\n[files]\ntest = "pairs.tsv"\n', encoding="utf-8")
    return task


GOOD = "sentence1\tsentence2\tscore\nA cat sits.\tA cat is sitting.\t4.8\nA dog runs.\tThe stock fell.\t0.2\nRain falls.\tIt rains.\t4.0\n"


def assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("evalkit: error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


def test_list_shows_backends_models_and_tasks() -> None:
    result = evalkit("list")
    assert result.returncode == 0
    for name in ("hf-logits", "tfidf", "all-MiniLM-L6-v2", "STSBenchmark", "SICK-R-test", "STS16"):
        assert name in result.stdout


def test_user_task_file_runs_without_code(tmp_path: Path) -> None:
    task = sts_task(tmp_path, GOOD)
    result = evalkit("run", "-e", "tfidf:lexical", "-t", str(task), "-o", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "MySTS" in result.stdout
    assert list((tmp_path / "out").rglob("MySTS.test.json"))


def test_unknown_encoder(tmp_path: Path) -> None:
    assert_usage_error(evalkit("run", "-e", "sbrt:all-MiniLM-L6-v2", "-t", "STSBenchmark", "-o", str(tmp_path)), "did you mean 'sbert'")


def test_unknown_task_is_suggested(tmp_path: Path) -> None:
    assert_usage_error(evalkit("run", "-e", "tfidf:x", "-t", "STSBenchmrk", "-o", str(tmp_path)), "did you mean 'STSBenchmark'")


def test_missing_task_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert_usage_error(evalkit("run", "-e", "tfidf:x", "-t", str(missing), "-o", str(tmp_path)), str(missing), "does not exist")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ('name = "X"\ntype = "sts"\nsplit = \n', ["not valid TOML", ":3"]),
        ('name = "X"\nsplit = "test"\n[files]\ntest = "a.tsv"\n', ["field 'type'"]),
        ('name = "X"\ntype = "sts"\nsplit = "test"\n', ["field 'files'"]),
        ('name = "X"\ntype = "stss"\nsplit = "test"\n[files]\ntest = "a.tsv"\n', ["did you mean 'sts'"]),
        ('name = "X"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "a.tsv"\n[settings]\nmax_scor = 5\n', ["settings.max_scor"]),
    ],
)
def test_malformed_task_file(tmp_path: Path, content: str, fragments: list[str]) -> None:
    task = tmp_path / "bad.toml"
    task.write_text(content, encoding="utf-8")
    assert_usage_error(evalkit("run", "-e", "tfidf:x", "-t", str(task), "-o", str(tmp_path / "out")), *fragments)


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ("sentence1\tsentence2\tsimilarity\na\tb\t1\n", ["pairs.tsv:1", "score"]),
        ("sentence1\tsentence2\tscore\na\tb\t1\nc\td\thigh\n", ["pairs.tsv:3", "field 'score'", "'high'"]),
        ("", ["pairs.tsv", "empty"]),
        ("sentence1\tsentence2\tscore\n", ["pairs.tsv", "no records"]),
        ("sentence1\tsentence2\tscore\na\tb\t1\nc\td\n", ["pairs.tsv:3", "expected 3"]),
        ("sentence1\tsentence2\tscore\na\tb\t7\n", ["pairs.tsv:2", "outside the task's range"]),
    ],
)
def test_malformed_data_file_fails_before_any_model_loads(tmp_path: Path, data: str, fragments: list[str]) -> None:
    task = sts_task(tmp_path, data)
    out = tmp_path / "out"
    assert_usage_error(evalkit("run", "-e", "tfidf:x", "-t", str(task), "-o", str(out)), *fragments)
    assert not list(out.rglob("*.json")) if out.exists() else True
