"""The leaderboard report on the committed baseline (real runs): formats agree, Markdown renders
as a table, ties share a rank, and text from data cannot break or inject into the output."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from evalkit.cli import main as evalkit
from evalkit.reading import load_results
from evalkit.report.table import build
from evalkit.results import ResultStore
from evalkit.results.schema import CellResult

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "results" / "baseline"
SBERT, STATIC = "sbert:all-MiniLM-L6-v2", "static:tokenlearn-static"


def report(capsys: pytest.CaptureFixture[str], folder: Path, fmt: str, *extra: str) -> str:
    capsys.readouterr()
    assert evalkit(["report", str(folder), "-f", fmt, "-o", "-", *extra]) == 0
    return capsys.readouterr().out


def renamed(result: CellResult, encoder: str, **changes: object) -> CellResult:
    data = json.loads(result.to_json())
    data.update(encoder=encoder, **changes)
    return CellResult.from_dict(data)


def test_markdown_renders_as_a_table_with_intervals_means_ranks_and_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    md = report(capsys, BASELINE, "md")
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert html.count("<table>") == 1
    head = html.split("<thead>")[1].split("</thead>")[0]
    for column in ("rank", "encoder", "STSBenchmark", "AmazonCounterfactualClassification", "mean sts", "mean classification", "Mean"):
        assert f">{column}</th>" in head
    assert ">sentences/s</th>" in head and ">tokens/s</th>" in head
    body = html.split("<tbody>")[1]
    assert body.count("<tr>") == 2
    assert '<td style="text-align:right">82.03 [79.7, 84.1]</td>' in body  # MiniLM on STS-B, as published by MTEB, with its interval
    first = body.split("</tr>")[0]
    assert f"<td>{SBERT}</td>" in first and '<td style="text-align:right">1</td>' in first


def test_csv_json_and_markdown_agree(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(report(capsys, BASELINE, "json"))
    csv = pd.read_csv(io.StringIO(report(capsys, BASELINE, "csv")), index_col="encoder")
    by_encoder = {e["encoder"]: e for e in data["encoders"]}
    assert list(by_encoder) == list(csv.index) == [SBERT, STATIC]
    for encoder, entry in by_encoder.items():
        task = entry["tasks"]["STSBenchmark"]
        assert task["low"] < task["score"] < task["high"]
        assert csv.at[encoder, "STSBenchmark"] == pytest.approx(task["score"], abs=1e-4)
        assert csv.at[encoder, "STSBenchmark low"] == pytest.approx(task["low"], abs=1e-4)
        assert csv.at[encoder, "rank"] == entry["rank"]
        assert entry["mean"]["low"] < entry["mean"]["score"] < entry["mean"]["high"]
        assert entry["throughput"]["sentences_per_second"] > 0
    assert data["intervals"] == {"method": "percentile bootstrap", "level": 0.95, "n_boot": 1000, "seed": 0}
    assert [e["rank"] for e in data["encoders"]] == [1, 2]


def test_intervals_of_the_mean_are_narrower_than_of_each_task() -> None:
    board = build(load_results(BASELINE))
    for encoder in board.encoders:
        widths = {c: board.high.at[encoder, c] - board.low.at[encoder, c] for c in (*board.tasks, "Mean")}
        assert widths["Mean"] < max(widths[t] for t in board.tasks)


def test_statistically_tied_encoders_share_a_rank() -> None:
    """A re-run whose per-unit outcomes equal the original's is tied with it; the static model ranks below both."""
    results = load_results(BASELINE)
    rerun = [renamed(r, f"{SBERT}?batch_size=16") for r in results if r.encoder == SBERT]
    board = build([*results, *rerun])
    assert board.rank[SBERT] == board.rank[f"{SBERT}?batch_size=16"] == 1
    assert board.rank[STATIC] == 3


def test_baseline_comparison_section(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    md = report(capsys, BASELINE, "md", "--baseline", str(BASELINE))
    assert "Compared with the baseline" in md
    rows = [line for line in md.splitlines() if line.startswith(f"| {SBERT} | {SBERT} |")]
    assert len(rows) == 2 and all("| +0.00 | [+0.00, +0.00] | 1 |" in row for row in rows)


def test_text_from_data_is_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evil = "hf:evil<script>alert(1)</script>|x"
    store = ResultStore(tmp_path / "r")
    for result in load_results(BASELINE):
        store.write(renamed(result, evil if result.encoder == SBERT else result.encoder, task=result.task + "<img src=x onerror=alert(2)>"))
    md = report(capsys, store.root, "md")
    assert "<script>" not in md and "<img" not in md
    html_table = MarkdownIt("commonmark").enable("table").render(md)
    assert "<script>" not in html_table and html_table.count("<tr>") == 3  # the '|' did not split a row
    page = report(capsys, store.root, "html")
    assert "<script>" not in page and "<img src=x" not in page
    assert "hf:evil&lt;script&gt;alert(1)&lt;/script&gt;|x" in page


def test_report_writes_the_requested_files_and_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "results"
    shutil.copytree(BASELINE, folder)
    assert evalkit(["report", str(folder), "-f", "md", "-f", "html", "-f", "csv", "-f", "json"]) == 0
    assert {p.name for p in folder.glob("leaderboard.*")} == {"leaderboard.md", "leaderboard.html", "leaderboard.csv", "leaderboard.json"}
    # the reports written next to the cells are not mistaken for results on the next read
    assert evalkit(["report", str(folder), "-f", "json", "-o", "-"]) == 0
    capsys.readouterr()
    next(folder.glob("sbert*/STSBenchmark.test.json")).write_text("{", encoding="utf-8")
    assert evalkit(["report", str(folder)]) == 2
    assert "STSBenchmark.test.json" in capsys.readouterr().err
    assert evalkit(["report", str(BASELINE), "-f", "md", "-f", "csv", "-o", "-"]) == 2
