"""Result files are read as hostile input: one model, one DataError, never a traceback, a hang or a wrong number.

A result file is what the gate trusts, so reading one must refuse anything that is not
exactly what evalkit writes: non-finite numbers, a main score that disagrees with the
file's own per-unit outcomes (tampered or corrupt), ``ok`` without a number, nesting
deep enough to exhaust the stack, a directory, a FIFO or ``/dev/zero`` where a file
should be. The committed results must still read and pass every check.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.cli import main as evalkit
from evalkit.errors import DataError, EvalkitError
from evalkit.reading import read_result
from evalkit.reading import verify_units as check_units
from evalkit.results import CellResult, ResultStore
from evalkit.results.schema import SCORE_TOLERANCE
from evalkit.stats import spearman

REPO = Path(__file__).resolve().parent.parent
COMMITTED = sorted((REPO / "results").rglob("*.json"))
GOOD_STS = (
    "sentence1\tsentence2\tscore\nA cat sits.\tA cat is sitting.\t4.8\nA dog runs.\tThe stock fell.\t0.2\nRain falls.\tIt rains.\t4.0\n"
)


def sts_result(n: int = 30, seed: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid STS result as JSON data: units whose Spearman is the main score, as the STS adapter stores them."""
    rng = np.random.default_rng(seed)
    gold = rng.uniform(0, 1, n).round(6)
    cosine = np.clip(gold + rng.normal(0, 0.3, n), -1, 1).astype(np.float32)  # a cosine: outside [-1, 1] is refused
    main = spearman(gold, cosine)
    data = {
        "schema_version": 1,
        "encoder": "tfidf:lexical",
        "task": "Tiny",
        "task_type": "sts",
        "split": "test",
        "status": "ok",
        "main_metric": "cosine_spearman",
        "main_score": main,
        "scores": {"cosine_spearman": main, "cosine_pearson": 0.5},
        "config_hash": "abc",
        "created_at": "2026-01-01T00:00:00+00:00",
        "n_units": n,
        "units": {"gold": gold.tolist(), "cosine": cosine.tolist()},
    }
    data.update(changes)
    return data


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- the committed results ------------------------------------------------------------------------


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO / "results")))
def test_committed_results_read_and_their_main_score_matches_their_units(path: Path) -> None:
    result = read_result(path)
    assert result.ok and result.main_score is not None and result.units, path
    assert result.main_score == result.scores[result.main_metric]
    check_units(result)  # read() did it already; say so explicitly


def test_there_are_committed_results_of_two_task_types() -> None:
    assert len(COMMITTED) >= 8
    assert {read_result(p).task_type for p in COMMITTED} >= {"sts", "classification"}


# --- the main score must be what the file's own per-unit outcomes give -----------------------------


def test_a_main_score_raised_by_hand_is_refused(tmp_path: Path) -> None:
    data = sts_result()
    forged = data["main_score"] + 0.05
    path = write_json(tmp_path / "r.json", {**data, "main_score": forged, "scores": {**data["scores"], "cosine_spearman": forged}})
    with pytest.raises(DataError, match="disagrees with the") as info:
        read_result(path)
    assert info.value.field == "main_score" and info.value.path == str(path)


def test_a_main_score_within_rounding_of_the_units_is_accepted(tmp_path: Path) -> None:
    data = sts_result()
    nudged = data["main_score"] + SCORE_TOLERANCE / 2
    path = write_json(tmp_path / "r.json", {**data, "main_score": nudged, "scores": {**data["scores"], "cosine_spearman": nudged}})
    assert read_result(path).main_score == nudged


def test_main_score_must_equal_its_entry_in_scores(tmp_path: Path) -> None:
    data = sts_result()
    path = write_json(tmp_path / "r.json", {**data, "scores": {**data["scores"], "cosine_spearman": 0.1}})
    with pytest.raises(DataError, match=r"is not scores\.cosine_spearman") as info:
        read_result(path)
    assert info.value.field == "main_score"


def test_units_that_do_not_fit_n_units_are_refused(tmp_path: Path) -> None:
    data = sts_result(n=30)
    path = write_json(tmp_path / "r.json", {**data, "n_units": 40})
    with pytest.raises(DataError, match="more than the per-unit outcomes hold") as info:
        read_result(path)
    assert info.value.field == "n_units"
    path = write_json(tmp_path / "r.json", {**data, "n_units": 2**62})  # refused before anything of that size is made
    with pytest.raises(DataError, match="more than the per-unit outcomes hold"):
        read_result(path)
    path = write_json(tmp_path / "r.json", {**data, "units": {**data["units"], "gold": ["high"] * 30}})
    with pytest.raises(DataError, match="per-unit outcomes do not fit") as info:
        read_result(path)
    assert info.value.field == "units"
    # fewer units claimed than stored: the score of the first 20 is another number
    path = write_json(tmp_path / "r.json", {**data, "n_units": 20})
    with pytest.raises(DataError, match="disagrees"):
        read_result(path)


def test_results_without_units_are_not_checked_against_them(tmp_path: Path) -> None:
    """MTEB imports and bench rows carry no per-unit outcomes: nothing to recompute, nothing refused."""
    data = sts_result(units={}, n_units=0)
    assert read_result(write_json(tmp_path / "r.json", data)).units == {}


# --- a result belongs to its task type: metric names and per-unit outcomes are the type's own (issue 19) -----


def _clustering_result(n: int = 10) -> dict[str, Any]:
    """A clustering result as the adapter stores it: one v-measure per experiment, their mean the main score."""
    v = [round(0.2 + 0.05 * i, 6) for i in range(n)]
    main = float(np.mean(v))
    scores = {"v_measure": main, "v_measure_std": float(np.std(v)), "ami": 0.3, "ami_std": 0.01}
    return sts_result(task_type="clustering", main_metric="v_measure", main_score=main, scores=scores, n_units=n, units={"v_measures": v})


@pytest.mark.parametrize(
    ("make", "task_type", "field"),
    [
        (_clustering_result, "retrieval", "main_metric"),  # the outside tester's case: listed under "mean retrieval"
        (_clustering_result, "classification", "main_metric"),
        (sts_result, "retrieval", "main_metric"),
        (sts_result, "pair_classification", "main_metric"),
    ],
)
def test_a_result_whose_task_type_was_edited_is_refused(tmp_path: Path, make: Any, task_type: str, field: str) -> None:
    data = make()
    assert read_result(write_json(tmp_path / "clean.json", data)).task_type == data["task_type"]
    path = write_json(tmp_path / "r.json", {**data, "task_type": task_type})
    with pytest.raises(DataError) as info:
        read_result(path)
    assert info.value.field == field and info.value.path == str(path), info.value.render()
    assert f"'{task_type}' task type" in info.value.render() and "\n" not in info.value.render()
    # passing it off as an MTEB import does not help
    with pytest.raises(DataError):
        read_result(write_json(tmp_path / "i.json", {**data, "task_type": task_type, "origin": "mteb-import"}))


def test_a_score_the_task_type_does_not_report_is_refused(tmp_path: Path) -> None:
    data = sts_result()
    path = write_json(tmp_path / "r.json", {**data, "scores": {**data["scores"], "v_measure": 0.9}})
    with pytest.raises(DataError, match="score 'v_measure' is not one the 'sts' task type reports") as info:
        read_result(path)
    assert info.value.field == "scores.v_measure"


def test_results_of_the_task_type_still_read_with_any_cutoff_another_main_metric_or_imported(tmp_path: Path) -> None:
    """Settings are not stored: retrieval cut-offs are any k, a task may declare another main metric, imports use MTEB's names."""
    cutoffs = sts_result(task_type="retrieval", main_metric="ndcg_at_7", main_score=0.5, scores={"ndcg_at_7": 0.5, "recall_at_250": 0.9})
    assert read_result(write_json(tmp_path / "k.json", {**cutoffs, "units": {}, "n_units": 0})).main_metric == "ndcg_at_7"
    data = sts_result()
    pearson = {**data, "main_metric": "cosine_pearson", "main_score": 0.5}
    assert read_result(write_json(tmp_path / "p.json", pearson)).main_metric == "cosine_pearson"
    with pytest.raises(DataError, match="per-unit outcomes are not the 'summarization' task type's") as info:
        read_result(write_json(tmp_path / "s.json", {**pearson, "task_type": "summarization"}))
    assert info.value.field == "units"
    imported = {**data, "origin": "mteb-import", "main_metric": "main_score", "main_score": 0.8, "units": {}, "n_units": 0}
    imported["scores"] = {"main_score": 0.8, "cos_sim_spearman": 0.8}
    assert read_result(write_json(tmp_path / "m.json", imported)).origin == "mteb-import"
    for path in COMMITTED:
        read_result(path)


def test_report_refuses_an_edited_task_type_in_one_line_naming_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "results"
    path = write_json(root / "tfidf_lexical" / "Tiny.test.json", {**_clustering_result(), "task_type": "retrieval"})
    assert evalkit(["report", str(root), "-o", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line and "main_metric" in line and "'retrieval' task type" in line, line


# --- status and score ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"main_score": None, "scores": {"cosine_spearman": None}}, "main_score", "needs a defined main score"),
        ({"status": "failed", "error": "boom"}, "main_score", "a failed cell has no main score"),
        ({"status": "failed", "main_score": None, "scores": {}}, "error", "must say why"),
        ({"status": "done"}, "status", "'ok' or 'failed'"),
        ({"schema_version": 2}, "schema_version", "got 2"),
        ({"mian_score": 0.5}, "mian_score", "did you mean 'main_score'"),
        ({"n_units": -1}, "n_units", "greater than or equal to 0"),
        ({"n_units": True}, "n_units", "valid integer"),
        ({"main_score": "0.7"}, "main_score", "valid number"),
        ({"task": "  "}, "task", "must not be empty"),
        ({"seeds": {"global": 0.5}}, "seeds.global", "valid integer"),
        ({"warnings": "one"}, "warnings", "valid list"),
        ({"details": {"a": [[[]]] * 2, "b": 1}}, None, None),  # valid: the control case
    ],
)
def test_fields_are_checked_by_the_model(tmp_path: Path, changes: dict[str, Any], field: str | None, fragment: str | None) -> None:
    path = write_json(tmp_path / "r.json", sts_result(**changes))
    if field is None:
        read_result(path)
        return
    with pytest.raises(DataError) as info:
        read_result(path)
    assert info.value.field == field and fragment in info.value.render() and info.value.path == str(path), info.value.render()


@pytest.mark.parametrize("missing", ["schema_version", "status", "main_score", "scores", "encoder", "task_type"])
def test_a_file_must_state_its_required_fields(tmp_path: Path, missing: str) -> None:
    data = sts_result()
    del data[missing]
    with pytest.raises(DataError, match="required field is missing") as info:
        read_result(write_json(tmp_path / "r.json", data))
    assert info.value.field == missing


def test_old_files_without_the_new_fields_still_read(tmp_path: Path) -> None:
    """task_hash, data_hash and warnings are optional: a version-1 file from before them reads as before."""
    result = read_result(write_json(tmp_path / "r.json", sts_result()))
    assert result.task_hash is None and result.data_hash is None and result.warnings == []


# --- non-finite numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
@pytest.mark.parametrize("where", ["main_score", "scores", "throughput", "ci"])
def test_non_finite_numbers_are_refused_wherever_they_are(tmp_path: Path, text: str, where: str) -> None:
    data = sts_result(throughput={"sentences_per_second": 0}, ci={"low": 0})
    marker = 123456.5
    if where == "main_score":
        data["main_score"] = marker
    elif where == "scores":
        data["scores"]["cosine_pearson"] = marker
    else:
        data[where] = {"value": marker}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data).replace("123456.5", text), encoding="utf-8")
    with pytest.raises(DataError, match=r"finite|number evalkit does not read") as info:
        read_result(path)
    assert info.value.path == str(path)


def test_building_a_result_with_a_non_finite_number_is_a_data_error_not_a_pydantic_traceback() -> None:
    data = sts_result()
    with pytest.raises(DataError, match="not finite") as info:
        CellResult(**{**data, "throughput": {"evaluation_seconds": math.inf}})
    assert info.value.field == "throughput"
    with pytest.raises(DataError, match="finite"):
        CellResult(**{**data, "scores": {**data["scores"], "cosine_pearson": math.nan}})


# --- what is at the path -------------------------------------------------------------------------------


def deep(levels: int) -> str:
    return '{"schema_version": 1, "details": ' + "[" * levels + "]" * levels + "}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.write_text(deep(100_000), encoding="utf-8"), "nested"),
        (lambda p: p.write_text(deep(200), encoding="utf-8"), "nested more than"),
        (lambda p: p.mkdir(), "directory"),
        (lambda p: p.symlink_to("/dev/zero"), "character device"),
        (lambda p: os.mkfifo(p), "FIFO"),
        (lambda p: p.write_bytes(b'{"task": "\xff"}'), "not UTF-8"),
        (lambda p: p.write_text('{"a": ' + "1" * 5000 + "}", encoding="utf-8"), "number"),
        (lambda p: p.write_text("[1, 2]", encoding="utf-8"), "JSON object"),
        (lambda p: p.write_text("", encoding="utf-8"), "not valid JSON"),
    ],
    ids=["100k-deep", "200-deep", "directory", "dev-zero", "fifo", "bad-utf8", "huge-int", "list", "empty"],
)
def test_unreadable_paths_are_one_data_error(tmp_path: Path, make: Any, fragment: str) -> None:
    path = tmp_path / "enc" / "Tiny.test.json"
    path.parent.mkdir()
    make(path)
    with pytest.raises(DataError, match=fragment):
        read_result(path)


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(sts_result()).encode())
    assert read_result(path).task == "Tiny"


def test_a_written_result_reads_back_equal(tmp_path: Path) -> None:
    result = CellResult(**sts_result(warnings=["pairs.tsv:3: duplicate row"], task_hash="t", data_hash="d"))
    path = ResultStore(tmp_path).write(result)
    assert read_result(path) == result
    assert result.replace(created_at="later").created_at == "later"
    with pytest.raises(DataError):
        result.replace(main_score=None)


# --- through the CLI: report refuses, run redoes -----------------------------------------------------


def tiny_task(folder: Path, name: str = "Tiny") -> Path:
    (folder / "pairs.tsv").write_text(GOOD_STS, encoding="utf-8")
    task = folder / "tiny.toml"
    task.write_text(f'name = "{name}"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "pairs.tsv"\n', encoding="utf-8")
    return task


@pytest.mark.timeout(120)
def test_run_redoes_a_cell_whose_file_is_nested_100k_deep_and_report_refuses_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task, out = tiny_task(tmp_path), tmp_path / "out"
    assert evalkit(["run", "-e", "tfidf:lexical", "-t", str(task), "-o", str(out), "--no-progress", "--no-report"]) == 0
    (path,) = ResultStore(out).files()
    good = read_result(path)
    assert good.task_hash and good.data_hash and good.ok
    path.write_text(deep(100_000), encoding="utf-8")
    capsys.readouterr()
    assert evalkit(["report", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line and "nested" in line
    assert evalkit(["run", "-e", "tfidf:lexical", "-t", str(task), "-o", str(out), "--no-progress", "--no-report"]) == 0
    assert "redoing" in capsys.readouterr().err
    assert read_result(path).comparable() == good.comparable()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["directory", "dev-zero", "fifo"])
def test_report_refuses_a_cell_path_that_is_not_a_regular_file(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    good = CellResult(**sts_result())
    ResultStore(tmp_path).write(good)
    other = ResultStore(tmp_path).path_for(good.encoder, "Other", "test")
    if kind == "directory":
        other.mkdir()
    elif kind == "dev-zero":
        other.symlink_to("/dev/zero")
    else:
        os.mkfifo(other)
    assert evalkit(["report", str(tmp_path), "-o", str(tmp_path / "reports")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert other.name in line and "not a regular file" in line


def test_an_undefined_main_score_is_a_failed_cell_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every pair is a sentence with itself: TF-IDF cosine is 1 for all, so Spearman is undefined (not `ok` with null)."""
    (tmp_path / "same.tsv").write_text(
        "sentence1\tsentence2\tscore\nA cat sits.\tA cat sits.\t3\nA dog runs.\tA dog runs.\t1\n"
        "Rain falls.\tRain falls.\t5\nThe sun is up.\tThe sun is up.\t2\n",
        encoding="utf-8",
    )
    task = tmp_path / "same.toml"
    task.write_text('name = "Same"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "same.tsv"\n', encoding="utf-8")
    out = tmp_path / "out"
    assert evalkit(["run", "-e", "tfidf:lexical", "-t", str(task), "-o", str(out), "--no-progress", "--no-report"]) == 1
    assert "Traceback" not in capsys.readouterr().err
    (path,) = ResultStore(out).files()
    result = read_result(path)
    assert result.status == "failed" and result.main_score is None and result.scores == {}
    assert result.error is not None and "'cosine_spearman' is undefined" in result.error
    assert result.task_hash and result.data_hash
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["status"] == "failed" and raw["main_score"] is None


# --- property: whatever the bytes, a result or one DataError ------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [*sts_result(), "units.gold", "units.cosine", "scores.cosine_spearman", "throughput", "error", "warnings", "extra"]


@pytest.mark.timeout(300)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES, drop=st.booleans())
def test_any_mutation_of_a_valid_file_reads_or_is_one_data_error(tmp_path: Path, field: str, value: Any, drop: bool) -> None:
    data = sts_result()
    head, _, tail = field.partition(".")
    target = data[head] if tail else data
    key = tail or head
    if drop:
        target.pop(key, None)
    else:
        target[key] = value
    path = write_json(tmp_path / "m.json", data)
    try:
        result = read_result(path)
    except DataError as exc:
        assert exc.path == str(path) and "\n" not in exc.render()
        return
    # accepted: then it is internally consistent and survives a round trip
    assert result.ok == (result.main_score is not None)
    if result.ok:
        assert result.scores[result.main_metric] == result.main_score
    assert read_result(write_json(tmp_path / "again.json", json.loads(result.to_json()))) == result


@pytest.mark.timeout(300)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_arbitrary_bytes_are_a_data_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(raw)
    with pytest.raises(EvalkitError):
        read_result(path)


def test_committed_folders_report_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder in ("baseline", "examples/pooling"):
        copy = tmp_path / folder.replace("/", "-")
        shutil.copytree(REPO / "results" / folder, copy)
        assert evalkit(["report", str(copy), "-f", "md", "-o", str(tmp_path / "out")]) == 0, capsys.readouterr().err
