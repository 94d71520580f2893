"""Integration: the real packaged MiniLM on real STS-B data reproduces MTEB's published 82.03."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.defaults import DEFAULT_ENCODERS
from evalkit.execution import local as local_executor
from evalkit.execution import plan, run_local
from evalkit.report.table import leaderboard
from evalkit.results import ResultStore
from evalkit.results.schema import CellResult
from evalkit.spec import EncoderSpec
from evalkit.taskspec import TaskIndex

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_on_stsb(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CellResult]:
    """The embedded default recipes on STSBenchmark (one pass per model family)."""
    store = ResultStore(tmp_path_factory.mktemp("results"))
    task = TaskIndex().get("stsbenchmark")
    results = run_local(plan([EncoderSpec.parse(s) for s in DEFAULT_ENCODERS], [task]), store, progress=False)
    return {r.encoder: r for r in results}


def test_minilm_matches_mteb_published_score(default_on_stsb: dict[str, CellResult]) -> None:
    sbert = default_on_stsb["sbert:all-MiniLM-L6-v2"]
    assert sbert.ok and sbert.main_metric == "cosine_spearman"
    assert sbert.main_score == pytest.approx(0.8203, abs=0.0005)
    hf_mean = default_on_stsb["hf:all-MiniLM-L6-v2?pooling=mean"]  # the model is mean-pooled
    assert hf_mean.main_score == pytest.approx(sbert.main_score, abs=1e-4)


def test_recipes_rank_as_expected(default_on_stsb: dict[str, CellResult]) -> None:
    score = {spec: r.main_score or 0.0 for spec, r in default_on_stsb.items()}
    sbert, cls = score["sbert:all-MiniLM-L6-v2"], score["hf:all-MiniLM-L6-v2?pooling=cls"]
    logits, tutorial = score["hf-logits:all-MiniLM-L6-v2"], score["hf-logits:all-MiniLM-L6-v2?reduce=mean"]
    assert sbert - cls > 0.05  # sentence-tuned mean pooling ≫ CLS
    assert cls > logits > tutorial  # an untrained head is worse still; one number per sentence is worst
    assert tutorial < 0.3
    assert score["static:tokenlearn-static"] < sbert and score["tfidf:lexical"] < sbert


def test_result_files_hold_the_schema(default_on_stsb: dict[str, CellResult]) -> None:
    result = default_on_stsb["sbert:all-MiniLM-L6-v2"]
    for metric in ("cosine_pearson", "cosine_spearman", "manhattan_spearman", "euclidean_spearman", "dot_spearman"):
        assert -1 <= (result.scores[metric] or 0) <= 1
    assert result.split == "test" and result.task == "STSBenchmark" and result.n_units == 1379
    for key in ("encode_seconds", "sentences_per_second", "tokens_per_second", "peak_memory_bytes", "device"):
        assert key in result.throughput
    assert result.throughput["sentences"] == 2552  # distinct sentences, each encoded once
    assert {"python", "platform", "cpu", "packages"} <= set(result.environment)
    assert result.encoder_fingerprint["weights"].startswith("sha256:")
    table = leaderboard(list(default_on_stsb.values()))
    assert table.index[0] in {"sbert:all-MiniLM-L6-v2", "hf:all-MiniLM-L6-v2?pooling=mean"}


def test_each_model_loads_once_for_all_its_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    real = local_executor.load_encoder

    def counting(spec: EncoderSpec):  # type: ignore[no-untyped-def]
        loads.append(str(spec))
        return real(spec)

    monkeypatch.setattr(local_executor, "load_encoder", counting)
    index = TaskIndex()
    tasks = [index.get("STS16"), index.get("STSBenchmark")]
    specs = [EncoderSpec.parse("static:tokenlearn-static"), EncoderSpec.parse("tfidf:lexical")]
    results = run_local(plan(specs, tasks), ResultStore(tmp_path), progress=False)
    assert len(results) == 4 and all(r.ok for r in results)
    assert sorted(loads) == sorted(str(s) for s in specs)
