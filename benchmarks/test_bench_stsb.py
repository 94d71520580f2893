"""The four side-by-side comparisons of the performance issue, on STSBenchmark with the packaged MiniLM.

Run: ``make bench`` (or ``python -m pytest benchmarks -q``). The ratio table is printed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from conftest import MINILM_HF, REPO, THREADS, Ratio, alternate, record

from evalkit.spec import EncoderSpec

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def evalkit_cell(encoder: Any, task: Any, cache: Any = None) -> Any:
    from evalkit.execution.cells import Cell, evaluate_cell
    from evalkit.throughput import MeteredEncoder

    return evaluate_cell(MeteredEncoder(encoder, cache=cache), Cell(encoder.spec, task, "test"))


def test_evaluation_vs_mteb_model_loaded(benchmark: Any, stsb: Any, minilm: Any) -> None:
    """evalkit's STS evaluation vs MTEB's evaluator, each with its model already loaded."""
    import mteb_local

    task, model = mteb_local.stsb_task(), mteb_local.minilm_wrapper()
    ours, theirs, results, scores = benchmark.pedantic(
        lambda: alternate(lambda: evalkit_cell(minilm, stsb), lambda: mteb_local.evaluate(task, model)), rounds=1, iterations=1
    )
    assert all(r.ok and abs(r.main_score - s) < 1e-4 for r, s in zip(results, scores, strict=True))
    record(Ratio("evaluation, model loaded: evalkit / MTEB", "evalkit", "mteb", ours, theirs, "(report)"), benchmark)


def test_end_to_end_vs_mteb_fresh_processes(benchmark: Any, tmp_path: Path) -> None:
    """``evalkit run`` vs a script running MTEB's evaluator, each a fresh process (imports, model load, data, scoring)."""
    out = tmp_path / "results"
    ours_cmd = [sys.executable, "-m", "evalkit", "run", "-e", MINILM_HF, "-t", "STSBenchmark", "-o", str(out)]
    ours_cmd += ["--overwrite", "--no-cache", "--no-progress", "--no-report"]
    theirs_cmd = [sys.executable, str(REPO / "benchmarks" / "mteb_local.py")]

    def run(cmd: list[str]) -> str:
        return subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, check=True).stdout

    ours, theirs, _, printed = benchmark.pedantic(lambda: alternate(lambda: run(ours_cmd), lambda: run(theirs_cmd)), rounds=1, iterations=1)
    import json

    from evalkit.results import ResultStore

    mteb_score = json.loads(printed[0].strip().splitlines()[-1])["cosine_spearman"]
    ours_score = ResultStore(out).load_all()[0].main_score
    assert abs(ours_score - mteb_score) < 1e-4
    ratio = record(Ratio("end to end, fresh process: evalkit / MTEB", "evalkit", "mteb", ours, theirs, "<= 0.6"), benchmark)
    ratio.ok = ratio.ratio <= 0.6


def test_harness_efficiency(benchmark: Any, stsb: Any, minilm: Any) -> None:
    """The bare forward passes (pre-tokenised, length-sorted, no pooling, no scoring) vs evalkit's whole evaluation."""
    import torch

    from evalkit.adapters.sts import STSAdapter
    from evalkit.encoders.streams import run_batches

    data = STSAdapter().load(stsb, "test")
    texts = list(dict.fromkeys(data.sentences1 + data.sentences2))
    backbone = minilm.backbone
    batches = [batch for _, batch in backbone.batches(texts)]  # the same length-sorted batches, tokenised ahead of time

    def one(batch: dict[str, Any]) -> None:
        with torch.inference_mode():
            backbone.model(**batch)

    def forward() -> None:  # run as evalkit runs batches (parallel CPU streams), so only the harness around it differs
        for _ in run_batches(one, batches, backbone.device):
            pass

    bare, full, _, results = benchmark.pedantic(lambda: alternate(forward, lambda: evalkit_cell(minilm, stsb)), rounds=1, iterations=1)
    assert all(r.ok for r in results)
    ratio = record(Ratio("harness efficiency: bare forward / evalkit evaluation", "forward", "evaluation", bare, full, ">= 0.9"), benchmark)
    ratio.ok = ratio.ratio >= 0.9


def test_cpu_streams_vs_one_batch_at_a_time(benchmark: Any, stsb: Any, minilm: Any) -> None:
    """The STS-B texts through evalkit's encoder: parallel CPU streams vs one batch at a time on every intra-op thread."""
    from evalkit.adapters.sts import STSAdapter
    from evalkit.encoders.streams import ENV_VAR

    data = STSAdapter().load(stsb, "test")
    texts = list(dict.fromkeys(data.sentences1 + data.sentences2))

    def encode(streams: str) -> Any:
        os.environ[ENV_VAR] = streams
        try:
            return minilm.encode(texts)
        finally:
            os.environ.pop(ENV_VAR, None)

    streamed, inline, a, b = benchmark.pedantic(lambda: alternate(lambda: encode(THREADS), lambda: encode("1")), rounds=1, iterations=1)
    assert all(abs(x - y).max() < 1e-5 for x, y in zip(a, b, strict=True))
    record(Ratio(f"CPU streams ({THREADS}) / one batch at a time", "streams", "one", streamed, inline, "(report)"), benchmark)


def test_pooling_sweep_vs_single(benchmark: Any, stsb: Any) -> None:
    """Six poolings of one ``hf`` model vs one, through the local executor (model load, encode, score, write)."""
    from evalkit.encoders import pooling as poolings
    from evalkit.execution import plan, run_local
    from evalkit.results.store import ResultStore

    sweep = [EncoderSpec.parse(f"{MINILM_HF}?pooling={p}") for p in poolings.names()]
    single = [EncoderSpec.parse(f"{MINILM_HF}?pooling=mean")]

    def run(specs: list[EncoderSpec]) -> list[Any]:
        with tempfile.TemporaryDirectory() as folder:
            return run_local(plan(specs, [stsb]), ResultStore(folder), progress=False)

    six, one, swept, alone = benchmark.pedantic(lambda: alternate(lambda: run(sweep), lambda: run(single)), rounds=1, iterations=1)
    assert all(r.ok for results in swept + alone for r in results)
    mean = str(single[0])
    assert all(next(r for r in results if r.encoder == mean).scores == alone[0][0].scores for results in swept)
    ratio = record(Ratio("6-pooling sweep / single pooling", "six", "one", six, one, "<= 1.2"), benchmark)
    ratio.ok = ratio.ratio <= 1.2


def test_warm_vs_cold_cache(benchmark: Any, stsb: Any, minilm: Any, tmp_path: Path) -> None:
    """STSBenchmark with a warm embedding cache vs a cold one (cleared before each cold round), model loaded."""
    from evalkit.cache import EmbeddingCache

    root = tmp_path / "cache"

    def cold() -> Any:
        EmbeddingCache(root).clear()
        return evalkit_cell(minilm, stsb, EmbeddingCache(root))

    def warm() -> Any:
        return evalkit_cell(minilm, stsb, EmbeddingCache(root))  # a new cache object: vectors read back from disk

    EmbeddingCache(root).clear()
    evalkit_cell(minilm, stsb, EmbeddingCache(root))  # filled before timing; every cold round refills it
    warm_times, cold_times, warm_results, cold_results = benchmark.pedantic(lambda: alternate(warm, cold), rounds=1, iterations=1)
    assert all(r.ok for r in warm_results + cold_results)
    assert len({repr(sorted(r.scores.items())) for r in warm_results + cold_results}) == 1, "warm and cold must score identically"
    assert all(r.throughput["cached_fraction"] == 1.0 and r.throughput["forward_batches"] == 0 for r in warm_results)
    assert all(r.throughput["cached_fraction"] == 0.0 for r in cold_results)
    ratio = record(Ratio("cold cache / warm cache (evaluation, model loaded)", "cold", "warm", cold_times, warm_times, ">= 20"), benchmark)
    ratio.ok = ratio.ratio >= 20
