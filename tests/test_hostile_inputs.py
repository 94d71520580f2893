"""Hostile inputs: every reader, the lock, the gate summary, MTEB import, numeric flags and every text output.

The property under test is the same everywhere: a hostile input ends in exit 0 with
the right answer, or exit 2 with one ``evalkit: error:`` line — never a traceback,
never a hang (each case runs under a timeout), never a stale lock, and never a name
that can restyle a terminal or run a formula in a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.cli import main as evalkit
from evalkit.data import (
    BOM,
    MAX_RECORD_BYTES,
    Row,
    iter_jsonl,
    load_json,
    load_toml,
    open_regular,
    read_json_file,
    read_rows,
    read_text_file,
)
from evalkit.errors import DataError

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "results" / "baseline"
STS_TSV = (
    "sentence1\tsentence2\tscore\nA cat sits.\tA cat is sitting.\t4.8\nA dog runs.\tThe stock fell.\t0.2\nRain falls.\tIt rains.\t4.0\n"
)
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
pytestmark = pytest.mark.timeout(120)


def one_error(err: str) -> str:
    """The single ``evalkit: error:`` line of ``err`` (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert len(lines) == 1, err
    return lines[0]


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = evalkit(args)
    out, err = capsys.readouterr()
    return code, out, err


def sts_task(folder: Path, data_name: str = "pairs.tsv", name: str = "Hostile") -> Path:
    toml = folder / "task.toml"
    toml.write_text(f'name = "{name}"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "{data_name}"\n', encoding="utf-8")
    return toml


# ---- data files that are not regular files ---------------------------------------------------------------


@contextmanager
def special(kind: str, folder: Path) -> Iterator[Path]:
    """A data path that is a directory, FIFO, socket, device or symlink to /dev/zero."""
    path = folder / "pairs.tsv"
    sock = None
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    elif kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "symlink to a directory":
        path.symlink_to(folder)
    try:
        yield path
    finally:
        if sock is not None:
            sock.close()


SPECIAL = ["directory", "fifo", "socket", "symlink to /dev/zero", "symlink to a directory"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", SPECIAL)
def test_readers_refuse_what_is_not_a_regular_file(kind: str, tmp_path: Path) -> None:
    with special(kind, tmp_path) as path:
        for read in (read_rows, lambda p: list(iter_jsonl(p)), lambda p: read_text_file(p, "task"), lambda p: load_toml(p, "task")):
            with pytest.raises(DataError, match="not a regular file") as info:
                read(path)
            assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.timeout(60)
def test_a_fifo_as_task_data_is_exit_2_not_a_hang(tmp_path: Path) -> None:
    """Today's hang: ``evalkit run`` on a task whose data file is a FIFO blocked forever in open()."""
    with special("fifo", tmp_path):
        args = ["run", "-e", "tfidf:lexical", "-t", str(sts_task(tmp_path)), "-o", str(tmp_path / "out"), "--no-progress", "--no-cache"]
        proc = subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, cwd=REPO, timeout=50)
    assert proc.returncode == 2, proc.stderr
    assert "FIFO" in one_error(proc.stderr) and "pairs.tsv" in one_error(proc.stderr)
    assert not (tmp_path / "out").exists()


def test_open_regular_reads_a_regular_file_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real.tsv").write_text(STS_TSV, encoding="utf-8")
    (tmp_path / "link.tsv").symlink_to(tmp_path / "real.tsv")
    with open_regular(tmp_path / "link.tsv") as handle:
        assert handle.read() == STS_TSV.encode()
    assert [r.values for r in read_rows(tmp_path / "link.tsv")] == [r.values for r in read_rows(tmp_path / "real.tsv")]


# ---- byte-order marks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pairs.tsv", STS_TSV),
        ("pairs.csv", STS_TSV.replace("\t", ",")),
        ("pairs.jsonl", "".join(json.dumps({"sentence1": "a", "sentence2": "b", "score": s}) + "\n" for s in (1, 2))),
    ],
)
def test_a_bom_is_dropped_by_every_data_reader(name: str, text: str, tmp_path: Path) -> None:
    """Today a CSV with a BOM said 'lacks column sentence1; found sentence1'."""
    plain_file, bom_file = tmp_path / name, tmp_path / ("bom-" + name)
    plain_file.write_text(text, encoding="utf-8")
    bom_file.write_bytes(BOM + text.encode())
    expected = [(r.line, r.values) for r in read_rows(plain_file, ["sentence1", "sentence2", "score"])]
    assert [(r.line, r.values) for r in read_rows(bom_file, ["sentence1", "sentence2", "score"])] == expected


def test_a_bom_is_dropped_from_toml_and_json(tmp_path: Path) -> None:
    toml, data = tmp_path / "t.toml", tmp_path / "r.json"
    toml.write_bytes(BOM + b'name = "X"\n')
    data.write_bytes(BOM + b'{"a": [1, 2.5]}')
    assert load_toml(toml, "task") == ({"name": "X"}, 'name = "X"\n')
    assert read_json_file(data, "result") == {"a": [1, 2.5]}


def test_a_bom_csv_task_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pairs.csv").write_bytes(BOM + STS_TSV.replace("\t", ",").encode())
    args = ["run", "-e", "tfidf:lexical", "-t", str(sts_task(tmp_path, "pairs.csv")), "-o", str(tmp_path / "out")]
    code, _, err = cli([*args, "--no-progress", "--no-cache", "--no-report"], capsys)
    assert code == 0, err
    assert len(list((tmp_path / "out").glob("*/*.json"))) == 1


# ---- size limits -----------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_a_field_over_1_gib_is_an_error_not_a_memory_error(suffix: str, tmp_path: Path) -> None:
    """A sparse 1.1 GiB line: refused after reading MAX_RECORD_BYTES of it, in well under a second."""
    path = tmp_path / f"huge{suffix}"
    with path.open("wb") as handle:
        handle.write(b"sentence1\tsentence2\tscore\na\t" if suffix != ".jsonl" else b'{"text": "')
        handle.truncate((1 << 30) + (100 << 20))
    with pytest.raises(DataError, match=r"longer than 64\.0 MiB") as info:
        read_rows(path)
    assert info.value.line == (2 if suffix != ".jsonl" else 1)


@pytest.mark.timeout(60)
def test_a_quoted_csv_field_over_the_limit_is_an_error_and_the_csv_limit_is_restored(tmp_path: Path) -> None:
    """One quoted field over many short lines: the csv module's own field limit catches it, set for this read only."""
    before = csv.field_size_limit()
    path = tmp_path / "long.csv"
    chunk = b"x" * (1 << 20) + b"\n"
    with path.open("wb") as handle:
        handle.write(b'text,label\n"')
        for _ in range(MAX_RECORD_BYTES // len(chunk) + 2):
            handle.write(chunk)
        handle.write(b'",1\n')
    with pytest.raises(DataError, match="malformed comma-separated line") as info:
        read_rows(path)
    assert info.value.line is not None
    assert csv.field_size_limit() == before  # no process-wide side effect


def test_text_and_toml_files_over_their_limit_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    with path.open("wb") as handle:
        handle.truncate(5 << 20)
    with pytest.raises(DataError, match=r"over the limit of 4\.0 MiB"):
        load_toml(path, "task")
    with pytest.raises(DataError, match="over the limit"):
        read_text_file(path, "result", max_bytes=1000)


# ---- malformed content -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": NaN, "label": 1}', "not a finite number"),
        ('{"text": "a", "label": Infinity}', "not a finite number"),
        ('{"text": "a", "label": 1e999}', "not finite"),
        ('{"text": "a", "label": ' + "1" * 5000 + "}", "does not read"),
        ('{"text": "\\ud800", "label": 1}', "lone surrogate"),
        ('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
        ('{"text": ' + "[" * 100 + "]" * 100 + "}", "nested more than 64"),
        ('["text", 1]', "expected a JSON object"),
    ],
)
def test_jsonl_lines_that_are_not_plain_json_name_their_line(line: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "fine", "label": 0}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        read_rows(path)
    assert info.value.line == 2


def test_invalid_utf8_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    for name in ("data.tsv", "data.jsonl", "data.toml"):
        path = tmp_path / name
        body = b'name = "x"\nother = "caf\xe9"\n' if name.endswith(".toml") else STS_TSV.encode() + b"caf\xe9\tcafe\t1\n"
        if name.endswith(".jsonl"):
            body = b'{"a": 1}\n{"a": "caf\xe9"}\n'
        path.write_bytes(body)
        with pytest.raises(DataError, match="not UTF-8") as info:
            load_toml(path, "task") if name.endswith(".toml") else read_rows(path)
        assert info.value.line == (2 if not name.endswith(".tsv") else 5), name


def test_a_header_that_names_a_column_twice_is_refused(tmp_path: Path) -> None:
    """Today the second column silently won: ``dict(zip(header, values))``."""
    path = tmp_path / "twice.tsv"
    path.write_text("sentence1\tsentence2\tsentence1\tscore\na\tb\tc\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match="more than once") as info:
        read_rows(path, ["sentence1"])
    assert info.value.field == "sentence1" and info.value.line == 1


@pytest.mark.parametrize("value", ["inf", "-inf", "1e999", "nan", True])
def test_a_non_finite_or_boolean_number_is_refused(value: object) -> None:
    with pytest.raises(DataError, match="score"):
        Row(Path("x.tsv"), 3, {"score": value}).number("score")


def test_old_mac_line_ends_still_read(tmp_path: Path) -> None:
    path = tmp_path / "cr.tsv"
    path.write_bytes(STS_TSV.replace("\n", "\r").encode())
    assert [r.values for r in read_rows(path)] == [r.values for r in read_rows_text(tmp_path, STS_TSV)]


def read_rows_text(folder: Path, text: str) -> list[Row]:
    path = folder / "reference.tsv"
    path.write_text(text, encoding="utf-8")
    return read_rows(path)


# ---- fuzzing the readers ---------------------------------------------------------------------------------


@contextmanager
def scratch(content: bytes, suffix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(content)
        yield path


def rows_or_data_error(path: Path) -> list[Row] | DataError:
    try:
        return read_rows(path, ["a"])
    except DataError as exc:
        assert "\n" not in exc.render()
        return exc


@pytest.mark.timeout(300)
@FUZZ
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".tsv", ".csv", ".jsonl"]))
def test_fuzz_random_bytes_are_rows_or_one_data_error(content: bytes, suffix: str) -> None:
    with scratch(content, suffix) as path:
        rows_or_data_error(path)


LINE_PIECES = st.sampled_from(["a", "b", "\t", ",", '"', "'", "\r", "\n", "\r\n", " ", "\ufeff", "é", "\x00", "{", "}", ":", "[", "1"])


@pytest.mark.timeout(300)
@FUZZ
@given(body=st.lists(LINE_PIECES, max_size=60).map("".join), bom=st.booleans(), suffix=st.sampled_from([".tsv", ".csv", ".jsonl"]))
def test_fuzz_delimited_looking_text_is_rows_or_one_data_error(body: str, bom: bool, suffix: str) -> None:
    content = (BOM if bom else b"") + ("a\tb\n" if suffix == ".tsv" else "a,b\n" if suffix == ".csv" else "").encode() + body.encode()
    with scratch(content, suffix) as path:
        result = rows_or_data_error(path)
    if isinstance(result, list):
        assert all(isinstance(r.values, dict) and "a" in r.values and r.line >= 1 for r in result)


CELL = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)


@pytest.mark.timeout(300)
@FUZZ
@given(
    rows=st.lists(st.tuples(CELL, CELL), min_size=1, max_size=6).filter(
        lambda rows: all(not (len(r) == 1 or (not r[0].strip() and not r[1])) for r in rows)
    ),
    bom=st.booleans(),
)
def test_fuzz_csv_written_by_the_csv_module_reads_back_exactly(rows: list[tuple[str, str]], bom: bool) -> None:
    """Identity, not just "no crash": whatever csv.writer quotes, read_rows returns the same values."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["a", "b"])
    writer.writerows(rows)
    with scratch((BOM if bom else b"") + buffer.getvalue().encode(), ".csv") as path:
        result = read_rows(path, ["a", "b"])
    assert [(r.values["a"], r.values["b"]) for r in result] == rows


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=12,
)


@pytest.mark.timeout(300)
@FUZZ
@given(records=st.lists(st.dictionaries(st.sampled_from(["a", "b", "\u2028"]), JSON_VALUES, max_size=3), max_size=4))
def test_fuzz_jsonl_records_read_back_exactly(records: list[dict[str, object]]) -> None:
    content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    with scratch(content, ".jsonl") as path:
        result = rows_or_data_error(path)
    with_a = [r for r in records if "a" in r]
    if len(with_a) == len(records) and records:
        assert isinstance(result, list) and [r.values for r in result] == records
    else:
        assert isinstance(result, DataError)


@FUZZ
@given(text=st.text(max_size=80))
def test_fuzz_load_json_is_a_value_or_one_data_error(text: str) -> None:
    try:
        load_json(text, kind="x")
    except DataError as exc:
        assert "\n" not in exc.render()


# ---- the results-folder lock ---------------------------------------------------------------------------------


def run_args(tmp_path: Path, out: Path) -> list[str]:
    (tmp_path / "pairs.tsv").write_text(STS_TSV, encoding="utf-8")
    task = sts_task(tmp_path)
    return [sys.executable, "-m", "evalkit", "run", "-e", "tfidf:lexical", "-t", str(task), "-o", str(out), "--no-progress", "--no-cache"]


@contextmanager
def small_disk(folder: Path, options: str) -> Iterator[bool]:
    """A real tmpfs at ``folder`` (True), or nothing where mounting is not allowed (False)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.timeout(120)
def test_a_full_disk_when_writing_the_lock_is_one_line_and_leaves_no_lock(tmp_path: Path) -> None:
    """A real full disk (a 64 KiB tmpfs filled up) or, without mount rights, a real 0-byte file size limit (EFBIG)."""
    disk = tmp_path / "disk"
    with small_disk(disk, "size=64k") as mounted:
        out = disk / "out"
        args = run_args(tmp_path, out)
        if mounted:
            fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass  # the disk is full
            finally:
                os.close(fd)
            proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=100)
        else:
            proc = subprocess.run(
                ["bash", "-c", 'ulimit -f 0 && exec "$@"', "bash", *args], capture_output=True, text=True, cwd=REPO, timeout=100
            )
        assert proc.returncode == 2, proc.stderr
        line = one_error(proc.stderr)
        assert "results folder" in line and ("No space left" in line or "File too large" in line), line
        assert not out.exists(), "the folder this run created is removed again: no stale lock, nothing half-made"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["read-only mount", "fault point EROFS"])
def test_an_unwritable_results_folder_is_one_line_and_leaves_no_lock(how: str, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    env = {**os.environ}
    env.pop("EVALKIT_FAULT", None)
    with small_disk(disk, "ro,size=64k" if how == "read-only mount" else "size=1m") as mounted:
        if how == "read-only mount" and not mounted:
            pytest.skip("mounting a tmpfs needs root")
        out = disk / "out" if how == "read-only mount" else tmp_path / "out"
        if how == "fault point EROFS":
            env["EVALKIT_FAULT"] = "lock.write:1:EROFS"
        proc = subprocess.run(run_args(tmp_path, out), capture_output=True, text=True, cwd=REPO, timeout=100, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Read-only file system" in one_error(proc.stderr)
    assert not (out / ".evalkit.lock").exists() and not out.exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "symlink to /dev/zero", "directory"])
def test_a_lock_file_that_is_not_a_regular_file_is_refused(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".evalkit.lock"
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "directory":
        lock.mkdir()
    else:
        lock.symlink_to("/dev/zero")
    proc = subprocess.run(run_args(tmp_path, out), capture_output=True, text=True, cwd=REPO, timeout=50)
    assert proc.returncode == 2, proc.stderr
    assert ".evalkit.lock" in one_error(proc.stderr)
    assert not list(out.rglob("*.json"))
    assert lock.is_symlink() or stat.S_ISFIFO(lock.lstat().st_mode) or lock.is_dir()  # the user's file is left alone


def test_the_lock_is_released_and_reusable(tmp_path: Path) -> None:
    from evalkit.execution.lock import ResultsBusyError, ResultsLock

    with ResultsLock(tmp_path / "new" / "out") as first:
        assert json.loads(first.path.read_text())["pid"] == os.getpid()
        with pytest.raises(ResultsBusyError, match=f"pid {os.getpid()}"):
            ResultsLock(tmp_path / "new" / "out").acquire()
    with ResultsLock(tmp_path / "new" / "out"):
        pass


# ---- gate --summary ------------------------------------------------------------------------------------------


def gate_args(summary: Path) -> list[str]:
    return ["gate", "--baseline", str(BASELINE), "--candidate", str(BASELINE), "--summary", str(summary)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["directory", "fifo", "under a plain file", "in /proc", "a result file"])
def test_gate_summary_that_cannot_be_written_is_exit_2_before_any_work(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2, never 1: an unwritable summary must not read as a regression; nothing is compared first."""
    target = {
        "directory": tmp_path,
        "fifo": tmp_path / "fifo.md",
        "under a plain file": tmp_path / "plain" / "summary.md",
        "in /proc": Path("/proc/evalkit-summary.md"),
        "a result file": next(BASELINE.glob("*/*.json")),
    }[kind]
    if kind == "fifo":
        os.mkfifo(target)
    if kind == "under a plain file":
        (tmp_path / "plain").write_text("x")
    before = target.read_bytes() if kind == "a result file" else None
    code, out, err = cli(gate_args(target), capsys)
    assert code == 2, err
    assert "--summary" in one_error(err)
    assert out == "", "checked before any comparison was made"
    if before is not None:
        assert target.read_bytes() == before


@pytest.mark.timeout(60)
def test_gate_summary_to_a_new_file_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = tmp_path / "new" / "summary.md"
    code, out, err = cli(gate_args(summary), capsys)
    assert code == 0, err
    assert summary.read_text(encoding="utf-8") == out


# ---- numeric flags ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["report", str(BASELINE), "--n-boot", "5"], "--n-boot"),
        (["report", str(BASELINE), "--n-boot", "100001"], "--n-boot"),
        (["report", str(BASELINE), "--n-boot", "10000000000000000000000"], "--n-boot"),
        (["report", str(BASELINE), "--n-boot", "abc"], "--n-boot"),
        (["report", str(BASELINE), "--seed", "-1"], "--seed"),
        (["report", str(BASELINE), "--seed", str(2**32)], "--seed"),
        (["report", str(BASELINE), "--level", "1"], "--level"),
        (["report", str(BASELINE), "--level", "nan"], "--level"),
        (["report", str(BASELINE), "--alpha", "0"], "--alpha"),
        (["report", str(BASELINE), "--alpha", "inf"], "--alpha"),
        (["bench", "-e", "tfidf:lexical", "-o", "unused", "--repeats", "0"], "--repeats"),
        (["bench", "-e", "tfidf:lexical", "-o", "unused", "--texts", "0"], "--texts"),
        (["bench", "-e", "tfidf:lexical", "-o", "unused", "--warmup", "100000"], "--warmup"),
        (["bench", "-e", "tfidf:lexical", "-o", "unused", "--batch-size", "8,1000000"], "--batch-size"),
    ],
)
def test_numeric_flags_out_of_range_are_one_line(args: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(args, capsys)
    assert code == 2, err
    assert f"field '{flag}" in one_error(err) and out == ""
    assert not Path("unused").exists()


def test_run_shard_size_is_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pairs.tsv").write_text(STS_TSV, encoding="utf-8")
    args = ["run", "-e", "tfidf:lexical", "-t", str(sts_task(tmp_path)), "-o", str(tmp_path / "out"), "--shard-size", "-1"]
    code, _, err = cli(args, capsys)
    assert code == 2 and "field '--shard-size'" in one_error(err)
    assert not (tmp_path / "out").exists()


# ---- output neutralisation -------------------------------------------------------------------------------------

NASTY = [
    "\x1b[31mRED\x1b[0m",
    '=HYPERLINK("http://x","y")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\tTab",
    "a|b\nc",
    "rtl\u202eevil",
    "\x9b31mC1",
    "bell\x07",
]


def board_of(names: list[str], scores: list[float]):  # type: ignore[no-untyped-def]
    from evalkit.report.table import build
    from evalkit.results.schema import CellResult

    results = [
        CellResult(
            encoder=f"enc:{name}",
            task=name,
            task_type="sts",
            split="test",
            main_metric="cosine_spearman",
            main_score=score,
            scores={"cosine_spearman": score},
            config_hash="x",
            created_at="2026-01-01T00:00:00+00:00",
            origin=name,
            throughput={"device": name},
        )
        for name, score in zip(names, scores, strict=True)
    ]
    return build(results, ranks=False)


def assert_inert(text: str) -> None:
    import unicodedata

    bad = [c for c in text if c not in "\n" and unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"}]
    assert not bad, bad


def test_terminal_markdown_and_json_outputs_carry_no_control_or_bidi_characters() -> None:
    from evalkit.report.formats import render_json, render_markdown, render_terminal

    board = board_of(NASTY, [0.5] * len(NASTY))
    for render in (render_terminal, render_markdown, render_json):
        text = render(board)
        assert_inert(text)
    assert "\\x1b[31mRED" in render_terminal(board)
    data = json.loads(render_json(board))
    assert {e["encoder"] for e in data["encoders"]} == {f"enc:{n}" for n in NASTY}  # JSON keeps the exact data
    md_rows = [line for line in render_markdown(board).splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == md_rows[0].count(" | ") for line in md_rows)  # a '|' or newline cannot add a column


def test_csv_neutralises_formulas_in_text_cells_and_keeps_numbers_numbers() -> None:
    from evalkit.report.formats import csv_text, render_csv

    board = board_of(NASTY, [-0.25 + i / 100 for i in range(len(NASTY))])
    text = render_csv(board)
    assert_inert(text.replace("\r", ""))
    table = list(csv.reader(io.StringIO(text)))
    header, body = table[0], table[1:]
    text_cells = header + [row[0] for row in body] + [row[header.index(c)] for row in body for c in ("origin", "device")]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in text_cells), text_cells
    assert '\'=HYPERLINK("http://x","y")' in header and "'-2+3" in header
    for i, name in enumerate(NASTY):  # every score is still a plain number, negative ones included
        row = next(r for r in body if r[0] == csv_text(f"enc:{name}"))
        assert float(row[header.index(csv_text(name))]) == pytest.approx(100 * (-0.25 + i / 100))
    assert row[header.index(csv_text(NASTY[-1]))] == f"{100 * (-0.25 + 9 / 100):.4f}"


@FUZZ
@given(
    names=st.lists(
        st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=10).filter(str.strip), min_size=1, max_size=4, unique=True
    )
)
def test_fuzz_names_never_reach_an_output_as_control_characters(names: list[str]) -> None:
    from evalkit.report.formats import render_csv, render_json, render_markdown, render_terminal

    board = board_of(names, [0.5] * len(names))
    for render in (render_terminal, render_markdown, render_json):
        assert_inert(render(board))
    table = list(csv.reader(io.StringIO(render_csv(board))))
    assert_inert("".join(map("".join, table)))
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in table[0] + [row[0] for row in table[1:]])
    assert len(table) == len(names) + 1  # one row per encoder, however its name is written


def test_a_nul_byte_in_a_data_path_is_a_data_error() -> None:
    """A TOML string may hold ``\\u0000``; os.stat then raises ValueError, not OSError."""
    with pytest.raises(DataError, match="embedded null byte"):
        read_rows(Path("a\x00b.tsv"))
