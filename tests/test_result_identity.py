"""A result's identity is injective: one (encoder, task, split) → one file, inside the results folder, seen by readers.

Hostile names (``..``, ``/``, a leading dot, NUL, names equal once sanitised or equal
but for case) either map to distinct safe files or stop the run with exit 2 and one
line before any model loads; a file read back must sit where its own identity puts it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.cli import main
from evalkit.errors import DataError
from evalkit.reading import load_results
from evalkit.results import CellResult, ResultStore
from evalkit.results.store import file_name

REPO = Path(__file__).resolve().parent.parent
COMMITTED = [REPO / "results" / "baseline", REPO / "results" / "examples" / "pooling"]
PAIRS = "sentence1\tsentence2\tscore\nA cat sits.\tA cat is sitting.\t4.8\nA dog runs.\tThe stock fell.\t0.2\nRain falls.\tIt rains.\t4.0\n"
SPEC = "tfidf:lexical"
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def cell_result(encoder: str = SPEC, task: str = "T", split: str = "test", score: float = 0.5) -> CellResult:
    return CellResult(
        encoder=encoder,
        task=task,
        task_type="sts",
        split=split,
        scores={"cosine_spearman": score},
        main_metric="cosine_spearman",
        main_score=score,
        config_hash="x",
        created_at="2026-01-01T00:00:00+00:00",
    )


def task_file(folder: Path, stem: str, name: str) -> Path:
    (folder / "pairs.tsv").write_text(PAIRS, encoding="utf-8")
    path = folder / f"{stem}.toml"
    path.write_text(f'name = {json.dumps(name)}\ntype = "sts"\nsplit = "test"\n[files]\ntest = "pairs.tsv"\n', encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], out: Path, *tasks: Path, encoders: tuple[str, ...] = (SPEC,)) -> tuple[int, str]:
    args = ["run", *[a for e in encoders for a in ("-e", e)], *[a for t in tasks for a in ("-t", str(t))]]
    code = main([*args, "-o", str(out), "--no-progress", "--no-cache", "--no-report"])
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("evalkit: error:")
    return line


# ---- the mapping -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_committed_results_sit_where_the_store_puts_them(folder: Path) -> None:
    """Existing names (slugs, STSBenchmark, SICK-R, test) are unchanged, so the committed baselines still resolve."""
    files = ResultStore(folder).files()
    assert files
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert ResultStore(folder).path_for(data["encoder"], data["task"], data["split"]) == path


@pytest.mark.parametrize(
    ("task", "split", "name"),
    [
        ("STSBenchmark", "test", "STSBenchmark.test.json"),
        ("SICK-R", "dev", "SICK-R.dev.json"),
        ("STS22.v2", "test", "STS22.v2.test.json"),
        ("My Task", "test", "My%20Task.test.json"),
        ("My_Task", "test", "My_Task.test.json"),
        (".hidden", "test", "%2Ehidden.test.json"),
        ("..", "..", "%2E..%2E%2E.json"),
        ("a", "b.c", "a.b%2Ec.json"),  # not a.b.c.json, which is task 'a.b', split 'c'
        ("a.b", "c", "a.b.c.json"),
        ("x", "../../etc", "x.%2E%2E%2F%2E%2E%2Fetc.json"),
        ("x", "/abs", "x.%2Fabs.json"),
        ("nul\x00", "te\\st", "nul%00.te%5Cst.json"),
        ("100%", "~", "100%25.%7E.json"),
    ],
)
def test_names_map_to_safe_distinct_file_names(task: str, split: str, name: str) -> None:
    assert file_name(task, split) == name


def test_long_names_are_cut_with_a_digest() -> None:
    long_a, long_b = "é" * 300, "é" * 299 + "e"
    a, b = file_name(long_a, "test"), file_name(long_b, "test")
    assert a != b and len(a.encode()) < 255 and "~" in a
    assert file_name("x" * 100, "test") == "x" * 100 + ".test.json"  # at the limit: whole
    assert "~" in file_name("x" * 101, "test")


def test_empty_names_are_refused() -> None:
    with pytest.raises(DataError, match="non-empty split"):
        file_name("T", "")
    with pytest.raises(DataError, match="non-empty task"):
        file_name("", "test")


names = st.text(min_size=1, max_size=40).filter(str.strip)
specs = st.sampled_from([SPEC, "tfidf:lexical?svd=2", "static:tokenlearn-static", "hf:m?prompt=C++ code: ", "hf:m?prompt=C   code: "])


@PROPERTY
@given(cells=st.lists(st.tuples(specs, names, names), min_size=1, max_size=4, unique=True))
def test_written_cells_are_inside_the_root_distinct_and_seen_by_readers(tmp_path: Path, cells: list[tuple[str, str, str]]) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))  # one fresh folder per example
    store = ResultStore(root)
    paths = [store.write(cell_result(*cell, score=i / 10)) for i, cell in enumerate(cells)]
    assert len(set(paths)) == len(cells)  # distinct identities, distinct files
    for path in paths:
        assert path.parent.parent == root and not path.name.startswith(".") and not path.parent.name.startswith(".")
        assert len(path.name.encode()) <= 255 and len(path.parent.name.encode()) <= 255
    assert sorted(paths) == store.files()
    found = {(r.encoder, r.task, r.split) for r in load_results(root)}  # the report/gate reader
    assert found == {(str(cell_result(*c).encoder), c[1], c[2]) for c in cells}
    for i, cell in enumerate(cells):
        got = store.get(*cell)
        assert got is not None and got.main_score == i / 10
    shutil.rmtree(root)


# ---- reading back ----------------------------------------------------------------------------------------
def test_a_result_copied_into_another_cells_place_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ResultStore(tmp_path / "r")
    a = store.write(cell_result(task="A"))
    b = store.write(cell_result(task="B", score=0.9))
    shutil.copy(b, a)  # B's result now also sits in A's place
    with pytest.raises(DataError, match="holds the result of tfidf:lexical × B/test"):
        store.load_all()
    assert main(["report", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "A.test.json" in line and "B.test.json" in line
    assert store.get(SPEC, "A", "test") is None  # not attributed to A


def test_a_result_moved_to_another_encoders_folder_is_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r")
    path = store.write(cell_result())
    other = store.path_for("static:tokenlearn-static", "T", "test")
    other.parent.mkdir()
    path.rename(other)
    with pytest.raises(DataError, match="not static_tokenlearn-static"):
        load_results(tmp_path / "r")


def test_a_file_written_by_earlier_evalkit_versions_still_reads(tmp_path: Path) -> None:
    """Before this layout, 'My Task' went to My_Task.test.json and option values were %-quoted."""
    legacy_encoder = "hf:m?prompt=query%3A%20"
    folder = tmp_path / "r" / f"hf_m_prompt_query_3A_20-{hashlib.sha1(legacy_encoder.encode()).hexdigest()[:8]}"
    folder.mkdir(parents=True)
    (folder / "My_Task.test.json").write_text(cell_result(legacy_encoder, "My Task").to_json(), encoding="utf-8")
    (result,) = load_results(tmp_path / "r")
    assert result.task == "My Task"


def test_write_never_overwrites_another_cells_file(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r")
    a = store.write(cell_result(task="A"))
    target = store.path_for(SPEC, "B", "test")
    shutil.copy(a, target)  # A's result in B's place
    before = target.read_bytes()
    with pytest.raises(DataError, match="refusing to overwrite"):
        store.write(cell_result(task="B"))
    assert target.read_bytes() == before
    store.write(cell_result(task="A", score=0.7))  # the same cell again: overwritten as always
    assert CellResult.read(a).main_score == 0.7


# ---- a run: collisions stop it before any model loads ------------------------------------------------------
def test_two_task_files_with_one_name_are_exit_2_naming_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = task_file(tmp_path / "a", "one", "Dup"), task_file(tmp_path / "b", "two", "Dup")
    code, err = run(capsys, tmp_path / "out", first, second)
    assert code == 2
    line = one_error_line(err)
    assert str(first) in line and str(second) in line and "field 'name'" in line
    assert not (tmp_path / "out").exists()


def test_task_names_equal_but_for_case_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = task_file(tmp_path, "one", "My Task"), task_file(tmp_path, "two", "my task")
    code, err = run(capsys, tmp_path / "out", first, second)
    assert code == 2
    line = one_error_line(err)
    assert "one.toml" in line and "two.toml" in line and "case" in line
    assert not (tmp_path / "out").exists()


def test_names_equal_once_sanitised_are_distinct_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """'My Task' and 'My_Task' used to share My_Task.test.json; now both results exist and both are reported."""
    tasks = [task_file(tmp_path, "one", "My Task"), task_file(tmp_path, "two", "My_Task"), task_file(tmp_path, "dot", ".hidden/../x")]
    code, err = run(capsys, tmp_path / "out", *tasks, tasks[0])  # the same file twice is one cell
    assert code == 0, err
    results = load_results(tmp_path / "out")
    assert sorted(r.task for r in results) == [".hidden/../x", "My Task", "My_Task"]
    assert {p.relative_to(tmp_path / "out").parts[0] for p in (tmp_path / "out").rglob("*.json")} == {"tfidf_lexical-cedb506b"}


def test_a_foreign_file_in_a_cells_place_stops_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = task_file(tmp_path, "one", "T")
    store = ResultStore(tmp_path / "out")
    target = store.path_for(SPEC, "T", "test")
    target.parent.mkdir(parents=True)
    target.write_text(cell_result(task="Other").to_json(), encoding="utf-8")
    before = target.read_bytes()
    code, err = run(capsys, tmp_path / "out", task)
    assert code == 2
    line = one_error_line(err)
    assert "T.test.json" in line and "Other" in line and "overwrite" in line
    assert target.read_bytes() == before


def test_a_folder_in_a_cells_place_stops_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = task_file(tmp_path, "one", "T")
    ResultStore(tmp_path / "out").path_for(SPEC, "T", "test").mkdir(parents=True)
    code, err = run(capsys, tmp_path / "out", task)
    assert code == 2 and "is a folder" in one_error_line(err)


def test_resume_finds_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = task_file(tmp_path, "one", "Ünï €ode/..")
    assert run(capsys, tmp_path / "out", task)[0] == 0
    (path,) = ResultStore(tmp_path / "out").files()
    stamp = path.stat().st_mtime_ns
    assert run(capsys, tmp_path / "out", task)[0] == 0
    assert path.stat().st_mtime_ns == stamp  # skipped, not redone
