"""MTEB interoperability with the real layout: MTEB's own TaskResult reads what evalkit exports,
and the published MTEB result files (embeddings-benchmark/results, copied verbatim below) import
as leaderboard rows marked ``mteb-import``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mteb.results import TaskResult

from evalkit.cli import main as evalkit
from evalkit.report.sources import load_results
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
