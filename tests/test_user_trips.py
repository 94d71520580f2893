"""What a new user tripped on (issue 17 item 5, issue 19 item 9), each as they met it: real runs, real files, no mocks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import evalkit
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def evalkit_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def model_copy(tiny_bert: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny BERT, so a test may break its weights."""
    return Path(shutil.copytree(tiny_bert, tmp_path / "model"))


def break_weights(folder: Path) -> None:
    """Garbage in place of the weights: the model folder is still there, but loading it fails (a failed cell)."""
    weights = folder / "model.safetensors"
    assert weights.is_file()
    weights.write_bytes(b"not a safetensors file" * 100)


# 1. --overwrite: a rerun that fails keeps the good result it was meant to replace, and says so.


def test_a_failed_overwrite_keeps_the_good_result_and_says_why(model_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = f"hf:{model_copy}"
    args = ("run", "-e", spec, "-t", "STSBenchmark", "--limit", "40", "-o", str(out), "--no-progress", "--no-cache")
    first = evalkit_cli(*args)
    assert first.returncode == 0, first.stderr
    (path,) = out.glob("*/STSBenchmark.test@limit40.json")
    good = path.read_bytes()
    assert json.loads(good)["status"] == "ok"

    break_weights(model_copy)
    again = evalkit_cli(*args, "--overwrite")
    assert again.returncode == 1, again.stderr
    assert "Traceback" not in again.stderr
    assert path.read_bytes() == good  # the good result is still there, byte for byte
    failed_line = next(line for line in again.stderr.splitlines() if "cell failed" in line)
    assert "STSBenchmark" in failed_line and len(failed_line) > len("evalkit: cell failed: ")  # the failed attempt's reason
    assert any("was kept, not replaced" in line and str(path) in line for line in again.stderr.splitlines()), again.stderr
    assert "1 earlier result(s) kept" in again.stderr  # the run summary

    report = evalkit_cli("report", str(out), "-o", "-", "-f", "json")
    assert report.returncode == 0, report.stderr  # the folder still reports the good score


def test_a_failed_overwrite_from_the_api_keeps_the_file_and_tells(model_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = f"hf:{model_copy}"
    first = evalkit.evaluate([spec], ["STSBenchmark"], output=out, limit=40, progress=False, cache=False)
    assert not first.failed
    (path,) = out.glob("*/STSBenchmark.test@limit40.json")
    good = path.read_bytes()

    break_weights(model_copy)
    again = evalkit.evaluate([spec], ["STSBenchmark"], output=out, limit=40, progress=False, cache=False, overwrite=True)
    assert path.read_bytes() == good
    (attempt,) = again.failed
    assert again.kept == (attempt,)
    assert attempt.error  # why the rerun failed
    assert attempt.details["kept"]["path"] == str(path)
    assert any("was kept, not replaced" in w for w in attempt.warnings)
    frame = again.to_pandas()
    assert frame.loc[0, "kept"] == str(path) and frame.loc[0, "status"] == "failed"


# 3. One leaderboard, one answer: Results.leaderboard() ranks as `evalkit report` does on the saved folder.


def test_the_api_leaderboard_ranks_as_the_report_of_the_saved_folder(tmp_path: Path) -> None:
    import csv
    import io

    specs = ["sbert:all-MiniLM-L6-v2", "tfidf:lexical", "static:tokenlearn-static"]
    results = evalkit.evaluate(specs, ["STSBenchmark"], limit=300, progress=False)
    assert not results.failed
    board = results.leaderboard()
    ranks = {encoder: int(rank) for encoder, rank in board["rank"].items() if rank != "–"}
    assert set(ranks) == set(specs), board  # every encoder ranked, none shown as –
    assert ranks["sbert:all-MiniLM-L6-v2"] == 1

    saved = results.save(tmp_path / "saved")
    report = evalkit_cli("report", str(saved), "-o", "-", "-f", "csv")
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    assert {row["encoder"]: int(float(row["rank"])) for row in rows} == ranks
    assert list(board.index) == [row["encoder"] for row in rows]  # the same order too


# 5. Results.save() into a folder a running `evalkit run` holds: refused, naming the holder.

HOLD = """
import sys
from evalkit.execution.lock import ResultsLock
lock = ResultsLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def test_save_refuses_a_folder_locked_by_a_running_run(tmp_path: Path) -> None:
    from evalkit.errors import EvalkitError

    results = evalkit.evaluate(["tfidf:lexical"], ["STSBenchmark"], limit=50, progress=False)
    folder = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(EvalkitError) as caught:
            results.save(folder)
        message = caught.value.render()
        assert "\n" not in message
        assert f"pid {holder.pid}" in message and "in use by another evalkit run" in message
        assert not list(folder.glob("*/*.json"))  # nothing was written
    finally:
        holder.communicate("", timeout=30)
    assert results.save(folder) == folder  # once the run is over, saving works
    assert len(list(folder.glob("*/*.json"))) == 1


# 2. A missing optional extra is one line naming it, exit 2 — with the package really unimportable.

WITHOUT = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Uninstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Uninstalled())
sys.argv = ["evalkit", *sys.argv[2:]]
from evalkit.cli import entrypoint
entrypoint()
"""


def evalkit_without(modules: str, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", WITHOUT, modules, *args], capture_output=True, text=True, cwd=REPO, timeout=300, env=dict(os.environ)
    )


def test_html_report_without_matplotlib_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    folder = REPO / "results" / "examples" / "pooling"
    result = evalkit_without("matplotlib", "report", str(folder), "-f", "html", "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert result.stderr.startswith("evalkit: error: matplotlib is not installed")
    assert "pip install 'evalkit[report]'" in result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing half-written
    assert evalkit_without("matplotlib", "report", str(folder), "-f", "md", "-o", str(tmp_path / "md")).returncode == 0  # md needs none


def test_ray_executor_without_ray_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    args = ("run", "--executor", "ray", "-e", "tfidf:lexical", "-t", "STSBenchmark", "--limit", "20", "-o", str(tmp_path), "--no-progress")
    result = evalkit_without("ray", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # refused before any task data is read
    assert "ray is not installed" in result.stderr and "pip install 'evalkit[ray]'" in result.stderr


def test_onnx_backend_without_onnxruntime_fails_its_cell_naming_the_extra(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = evalkit_without(
        "onnxruntime,openvino", "run", "-e", "onnx:all-MiniLM-L6-v2", "-t", "STSBenchmark", "--limit", "20", "-o", str(out), "--no-progress"
    )
    assert "Traceback" not in result.stderr
    assert result.returncode in (1, 2), result.stderr
    lines = [line for line in result.stderr.splitlines() if "evalkit[runtimes]" in line]
    assert lines and all("onnxruntime is not installed" in line for line in lines), result.stderr
    for path in out.glob("*/*.json"):
        error = json.loads(path.read_text())["error"]
        assert error.startswith("onnxruntime is not installed") and "\n" not in error and "pip install 'evalkit[runtimes]'" in error


# 4. The HTML report: equal points share one label; an untimed (cached) encoder is named under the throughput plot.


def test_points_at_one_place_share_one_label_in_quality_vs_size() -> None:
    from evalkit.report import plots

    base = "sbert:all-MiniLM-L6-v2"
    specs = [base, f"{base}?precision=binary", f"{base}?precision=ubinary", f"{base}?precision=int8"]
    results = evalkit.evaluate(specs, ["STSBenchmark"], limit=200, progress=False)
    assert not results.failed
    board = results.board()
    encoders, x, y = plots.plotted(board, "bytes_per_vector")
    same = {f"{base}?precision=binary", f"{base}?precision=ubinary"}
    assert board.score.loc[sorted(same), "Mean"].nunique() == 1  # the same bits, the same score, the same 48 bytes
    labels = plots.point_labels(encoders, x, y)
    places = [(x[i], round(y[i], 2)) for i, _ in labels]
    assert len(places) == len(set(places)) == 3  # one label per place, not one per encoder
    (stacked,) = [text for _, text in labels if "\n" in text]
    assert set(stacked.split("\n")) == same
    assert plots.quality_vs_bytes(board) is not None


def test_an_untimed_cached_encoder_is_named_under_the_throughput_plot(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    static = "static:tokenlearn-static"
    evalkit.evaluate([static], ["STSBenchmark"], limit=200, progress=False, cache_dir=cache)  # fills the cache
    again = evalkit.evaluate([static, "tfidf:lexical"], ["STSBenchmark"], limit=200, progress=False, cache_dir=cache)
    assert not again.failed
    board = again.board()
    assert board.throughput["sentences_per_second"].isna()[static]  # served from the cache: nothing was timed

    folder = again.save(tmp_path / "saved")
    report = evalkit_cli("report", str(folder), "-f", "html", "-o", str(tmp_path / "html"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "html" / "leaderboard.html").read_text(encoding="utf-8")
    start = page.index('id="fig-quality-throughput-left-out"')
    note = page[start : page.index("</p>", start)]
    assert static in note and "embedding cache" in note and "--no-cache" in note
    assert "tfidf:lexical" not in note  # the timed one is drawn, not listed
    assert 'id="fig-quality-throughput"' in page


# 6. A report on a result of 1e6 units: memory bounded (and the replicates unchanged).


def test_bootstrap_of_a_million_units_is_bounded_in_memory_and_exact() -> None:
    import tracemalloc

    import numpy as np

    from evalkit import stats
    from evalkit.adapters import adapter_for

    n = 1_000_000
    rng = np.random.default_rng(0)
    gold = np.round(rng.uniform(0, 5, n), 2)  # ties, as real gold scores have
    cosine = np.clip(gold / 5 + rng.normal(0, 0.3, n), -1, 1)
    units = {"gold": gold.tolist(), "cosine": cosine.tolist()}
    config = stats.Bootstrap(n_boot=100)
    tracemalloc.start()
    try:
        reps = stats.replicates(adapter_for("sts"), units, n, config, key=7)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 600 * 2**20, f"{peak / 2**20:.0f} MiB"  # was > 2 GiB: (64 × n) int64 draws, their counts, ranks, ...
    # the same numbers: each replicate is Spearman's rho of the resample it stands for
    first = next(stats.resample_indices(n, config, key=7))
    for row in (0, 1, 63):
        idx = first[row]
        assert reps[row] == pytest.approx(stats.spearman(gold[idx], cosine[idx]), abs=1e-12)


def test_a_report_draws_no_bootstrap_it_does_not_need(tmp_path: Path) -> None:
    """One encoder on one task: its sealed interval is the answer and it ranks first; no cell is resampled again."""
    from evalkit import reading
    from evalkit.report.table import MEAN, report_board

    source = next((REPO / "results" / "examples" / "pooling").glob("*pooling_mean*/STSBenchmark.test.json"))
    folder = tmp_path / "one"
    (folder / source.parent.name).mkdir(parents=True)
    shutil.copy(source, folder / source.parent.name / source.name)
    (result,) = reading.load_results(folder)
    assert result.ci_sealed
    reading._REPLICATES.clear()
    board = report_board([result])
    assert not reading._REPLICATES  # nothing was resampled
    assert int(board.rank[result.encoder]) == 1
    for column in ("STSBenchmark", MEAN):
        assert board.interval(result.encoder, column) == (100 * result.ci["low"], 100 * result.ci["high"])
