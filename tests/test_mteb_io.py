"""MTEB interoperability with the real layout: MTEB's own TaskResult reads what evalkit exports,
and the published MTEB result files (embeddings-benchmark/results, copied verbatim below) import
as leaderboard rows marked ``mteb-import``."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mteb.results import TaskResult

from evalkit.cli import main as evalkit
from evalkit.reading import load_results
from evalkit.results import ResultStore

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "results" / "baseline"
PUBLISHED_DIR = "sentence-transformers__all-MiniLM-L6-v2/8b3219a92973c328a8e22fadcfa821b5dc75636a"

# embeddings-benchmark/results, results/<PUBLISHED_DIR>/STSBenchmark.json and SICK-R.json (mteb 1.12.75)
PUBLISHED = {
    "STSBenchmark.json": """{
  "dataset_revision": "b0fddb56ed78048fa8b90373c8a3cfc37b684831",
  "evaluation_time": 1.2171757221221924,
  "kg_co2_emissions": 0.00018667650466967732,
  "mteb_version": "1.12.75",
  "scores": {
    "test": [
      {
        "cosine_pearson": 0.8274064239694425,
        "cosine_spearman": 0.8203247283076371,
        "euclidean_pearson": 0.8255616730069724,
        "euclidean_spearman": 0.8203247273691797,
        "hf_subset": "default",
        "languages": [
          "eng-Latn"
        ],
        "main_score": 0.8203247283076371,
        "manhattan_pearson": 0.8249144382439639,
        "manhattan_spearman": 0.8194552517480638,
        "pearson": [
          0.8274064200542519,
          0.0
        ],
        "spearman": [
          0.8203246151241224,
          0.0
        ]
      }
    ]
  },
  "task_name": "STSBenchmark"
}""",
    "SICK-R.json": """{
  "dataset_revision": "20a6d6f312dd54037fe07a32d58e5e168867909d",
  "evaluation_time": 6.865735292434692,
  "kg_co2_emissions": 0.0010462624858789834,
  "mteb_version": "1.12.75",
  "scores": {
    "test": [
      {
        "cosine_pearson": 0.839159584939085,
        "cosine_spearman": 0.7758245525469719,
        "euclidean_pearson": 0.8077605544401241,
        "euclidean_spearman": 0.7758243975699303,
        "hf_subset": "default",
        "languages": [
          "eng-Latn"
        ],
        "main_score": 0.7758245525469719,
        "manhattan_pearson": 0.8070675324768191,
        "manhattan_spearman": 0.7748235794233668,
        "pearson": [
          0.8391595859959821,
          0.0
        ],
        "spearman": [
          0.7758243918843188,
          0.0
        ]
      }
    ]
  },
  "task_name": "SICK-R"
}""",
}
IMPORTED = "mteb:sentence-transformers/all-MiniLM-L6-v2?revision=8b3219a929"


@pytest.fixture
def published(tmp_path: Path) -> Path:
    folder = tmp_path / "mteb-results" / PUBLISHED_DIR
    folder.mkdir(parents=True)
    for name, text in PUBLISHED.items():
        (folder / name).write_text(text, encoding="utf-8")
    return tmp_path / "mteb-results"


def test_published_files_are_mteb_task_results(published: Path) -> None:
    result = TaskResult.from_disk(published / PUBLISHED_DIR / "STSBenchmark.json")
    assert result.task_name == "STSBenchmark" and result.get_score() == pytest.approx(0.8203247283076371)


def test_import_published_results_as_marked_rows(published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    assert evalkit(["mteb", "import", str(published), "-o", str(out)]) == 0
    cells = {r.task: r for r in load_results(out)}
    assert set(cells) == {"STSBenchmark", "SICK-R"}
    stsb = cells["STSBenchmark"]
    assert stsb.origin == "mteb-import" and stsb.encoder == IMPORTED
    assert stsb.task_type == "sts" and stsb.main_metric == "cosine_spearman"
    assert stsb.main_score == pytest.approx(0.8203247283076371)
    assert "pearson" not in stsb.scores  # MTEB's [r, p] lists are not scores
    assert stsb.details["dataset_revision"] == "b0fddb56ed78048fa8b90373c8a3cfc37b684831" and stsb.units == {}
    # next to evalkit's own run of the same model: the published 82.03 is reproduced, and the row is marked
    for path in BASELINE.glob("sbert*/STSBenchmark.test.json"):
        target = ResultStore(out).path_for("sbert:all-MiniLM-L6-v2", "STSBenchmark", "test")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    capsys.readouterr()
    assert evalkit(["report", str(out), "-f", "md", "-o", "-"]) == 0
    md = capsys.readouterr().out
    rows = {line.split(" | ")[1]: line for line in md.splitlines() if line.startswith("| ") and " | " in line}
    imported_row, own_row = rows[IMPORTED], rows["sbert:all-MiniLM-L6-v2"]
    assert "| mteb-import |" in imported_row and "| evalkit |" in own_row
    assert imported_row.startswith("| – |")  # no units: not ranked
    assert "| 82.03 |" in imported_row and "| 82.03 [" in own_row  # imported: no interval; own: with interval
    assert "imported" in md


def test_export_is_read_back_by_mteb_and_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mteb"
    assert evalkit(["mteb", "export", str(BASELINE), "-o", str(out)]) == 0
    ours = {(r.encoder, r.task): r for r in load_results(BASELINE)}
    files = sorted(out.glob("*/*/*.json"))
    files = [f for f in files if f.name != "model_meta.json"]
    assert len(files) == len(ours)
    for path in files:
        result = TaskResult.from_disk(path)  # MTEB's own validation of the layout
        meta = json.loads((path.parent / "model_meta.json").read_text(encoding="utf-8"))
        original = ours[(meta["evalkit_spec"], result.task_name)]
        assert result.get_score() == pytest.approx(original.main_score)
        assert result.scores["test"][0]["languages"] == ["eng-Latn"]
        assert path.parent.parent.name == "evalkit__" + "".join(c if c.isalnum() or c in "-_.+" else "_" for c in meta["evalkit_spec"])
    back = tmp_path / "back"
    assert evalkit(["mteb", "import", str(out), "-o", str(back)]) == 0
    imported = load_results(back)
    assert len(imported) == len(ours) and all(r.origin == "mteb-import" for r in imported)
    assert sorted(round(r.main_score or 0, 6) for r in imported) == sorted(round(r.main_score or 0, 6) for r in ours.values())


def test_import_rejects_files_that_are_not_mteb_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"mteb_dataset_name": "STSBenchmark", "test": {}}', encoding="utf-8")
    assert evalkit(["mteb", "import", str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not an MTEB TaskResult" in err and str(bad) in err and "mteb < 1.11" in err
    bad.write_text('{"task_name": "STSBenchmark", "scores": {"dev": []}}', encoding="utf-8")
    assert evalkit(["mteb", "import", str(bad), "-o", str(tmp_path / "out")]) == 2
    assert "has no 'test' split" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- hostile MTEB files: exit 2 with one line naming the file and field, never a traceback, nothing written ----

STSB = json.loads(PUBLISHED["STSBenchmark.json"])


def entry(**changes: object) -> dict[str, object]:
    return {**STSB["scores"]["test"][0], **changes}  # type: ignore[dict-item]


HOSTILE: dict[str, tuple[str | bytes, str]] = {
    "evaluation_time 1e999": (
        PUBLISHED["STSBenchmark.json"].replace('"evaluation_time": 1.2171757221221924', '"evaluation_time": 1e999'),
        "'evaluation_time'",
    ),
    "negative evaluation_time": (json.dumps({**STSB, "evaluation_time": -1}), "'evaluation_time'"),
    "huge date": (json.dumps({**STSB, "date": 1e300}), "'date'"),
    "negative date": (json.dumps({**STSB, "date": -5}), "'date'"),
    "date that is no date": (json.dumps({**STSB, "date": "yesterday"}), "'date'"),
    "date that is a list": (json.dumps({**STSB, "date": [2024]}), "'date'"),
    "NaN main_score": (json.dumps({**STSB, "scores": {"test": [entry(main_score=float("nan"))]}}), "'scores.test.0.main_score'"),
    "Infinity metric": (json.dumps({**STSB, "scores": {"test": [entry(cosine_pearson=float("inf"))]}}), "'scores.test.0.cosine_pearson'"),
    "400-digit main_score": (
        PUBLISHED["STSBenchmark.json"].replace('"main_score": 0.8203247283076371', '"main_score": ' + "9" * 400),
        "main_score",
    ),
    "main_score is text": (json.dumps({**STSB, "scores": {"test": [entry(main_score="0.8")]}}), "no numeric main_score"),
    "nested 100k deep": ('{"task_name": "STSBenchmark", "scores": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    "nested 100 deep in an ignored key": (json.dumps({**STSB, "extra": json.loads("[" * 100 + "]" * 100)}), "nested more than 64"),
    "top level is a list": ("[1, 2]", "JSON object"),
    "top level is a number": ("5", "JSON object"),
    "scores is a list": (json.dumps({**STSB, "scores": [1]}), "not an MTEB TaskResult"),
    "split is an object": (json.dumps({**STSB, "scores": {"test": {"main_score": 0.8}}}), "'scores.test'"),
    "score object is text": (json.dumps({**STSB, "scores": {"test": ["0.8"]}}), "'scores.test'"),
    "task_name with an ANSI escape": (json.dumps({**STSB, "task_name": "STSBenchmark\x1b[2J"}), "'task_name'"),
    "task_name of 1000 characters": (json.dumps({**STSB, "task_name": "T" * 1000}), "'task_name'"),
    "task_name is empty": (json.dumps({**STSB, "task_name": " "}), "'task_name'"),
    "mteb_version is a number": (json.dumps({**STSB, "mteb_version": 1.12}), "'mteb_version'"),
    "not UTF-8": (b'{"task_name": "caf\xe9"}', "not UTF-8"),
    "lone surrogate": (PUBLISHED["STSBenchmark.json"].replace('"1.12.75"', '"\\ud800"'), "surrogate"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_mteb_files_are_exit_2_with_one_line(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, fragment = HOSTILE[name]
    path = tmp_path / "in" / PUBLISHED_DIR / "STSBenchmark.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    capsys.readouterr()
    assert evalkit(["mteb", "import", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--all-tasks"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert len(errors) == 1 and "STSBenchmark.json" in errors[0] and fragment in errors[0], err
    assert "\x1b" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "model_meta is a list", "model_meta is a FIFO"])
def test_mteb_import_refuses_special_files_without_hanging(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    folder = tmp_path / "in" / PUBLISHED_DIR
    folder.mkdir(parents=True)
    (folder / "SICK-R.json").write_text(PUBLISHED["SICK-R.json"], encoding="utf-8")
    if kind == "fifo":
        os.mkfifo(folder / "STSBenchmark.json")
    elif kind == "model_meta is a list":
        (folder / "model_meta.json").write_text("[]", encoding="utf-8")
    else:
        os.mkfifo(folder / "model_meta.json")
    capsys.readouterr()
    assert evalkit(["mteb", "import", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert ("FIFO" in errors[0]) == (kind != "model_meta is a list") and ".json" in errors[0]
    assert not (tmp_path / "out").exists()


def test_a_published_file_with_a_bom_and_an_iso_date_imports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in" / PUBLISHED_DIR
    folder.mkdir(parents=True)
    data = {**STSB, "date": "2024-06-01T12:00:00"}
    (folder / "STSBenchmark.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(data).encode())
    assert evalkit(["mteb", "import", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 0
    (result,) = load_results(tmp_path / "out")
    assert result.main_score == pytest.approx(0.8203247283076371) and result.created_at == "2024-06-01T12:00:00+00:00"
    assert result.throughput == {"evaluation_seconds": pytest.approx(1.2171757221221924)}


MUTATIONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@pytest.mark.timeout(300)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(["task_name", "scores", "evaluation_time", "date", "mteb_version", "dataset_revision", "main_score", "hf_subset"]),
    value=MUTATIONS,
)
def test_fuzz_a_mutated_published_file_is_imported_or_one_data_error(key: str, value: object, tmp_path: Path) -> None:
    """One field of a real published file replaced by any JSON value (NaN and ±inf included)."""
    from evalkit.errors import DataError
    from evalkit.report.mteb_io import read_mteb_file

    data = json.loads(PUBLISHED["STSBenchmark.json"])
    if key in {"main_score", "hf_subset"}:
        data["scores"]["test"][0][key] = value
    else:
        data[key] = value
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        path = Path(folder) / PUBLISHED_DIR / "STSBenchmark.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(data), encoding="utf-8")
        try:
            result = read_mteb_file(path, all_tasks=True)
        except DataError as exc:
            assert "\n" not in exc.render()
            return
    assert result is not None
    assert math.isfinite(result.main_score or 0.0) and result.origin == "mteb-import"
    json.loads(result.to_json())  # writable as a result file
