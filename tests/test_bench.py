"""``evalkit bench``: warm-up, timed repeats, honest token counts, rows the result store accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.bench import BenchConfig, bench_result, bench_spec, bench_texts, measure, percentile
from evalkit.results.schema import BENCH_TASK_TYPE, CellResult, is_bench
from evalkit.results.store import ResultStore
from evalkit.spec import EncoderSpec


def test_the_sample_mixes_short_sentences_and_long_abstracts() -> None:
    texts = bench_texts()
    assert len(texts) == 512 and len(set(texts)) == 512
    lengths = sorted(len(t.split()) for t in bench_texts(256))
    assert lengths[0] < 10 and lengths[-1] > 150  # STS-B sentences and SciFact abstracts in the default slice


def test_percentile() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([], 95) is None


def test_measure_counts_every_timed_text_and_token(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    texts = bench_texts(24)
    config = BenchConfig(device="cpu", batch_size=8, warmup=1, repeats=2)
    row = measure(EncoderSpec.parse(f"hf:{tiny_bert}"), config, texts)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    real = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"])
    assert row["sentences"] == 2 * 24 and row["calls"] == 2 * 3  # warm-up not counted
    assert row["tokens"] == 2 * real
    assert row["padded_tokens"] >= row["tokens"]
    scores = row["scores"]
    assert scores["padding_efficiency"] == pytest.approx(row["tokens"] / row["padded_tokens"])
    assert 0 < scores["padding_efficiency"] <= 1
    assert scores["latency_p50_ms"] <= scores["latency_p95_ms"]
    assert scores["sentences_per_second"] == pytest.approx(row["sentences"] / row["encode_seconds"], rel=1e-3)  # seconds are rounded
    assert row["peak_memory_bytes"] > 0 and row["peak_memory_kind"] == "process peak RSS"


def test_sbert_padding_is_counted_per_call() -> None:
    row = measure(EncoderSpec.parse("sbert:all-MiniLM-L6-v2"), BenchConfig(device="cpu", batch_size=4, warmup=0, repeats=1), bench_texts(8))
    assert row["padded_tokens"] is not None and row["padded_tokens"] >= row["tokens"] > 0


def test_bench_rows_are_valid_results_kept_apart_from_quality(tiny_bert: Path, tmp_path: Path) -> None:
    spec = EncoderSpec.parse(f"hf:{tiny_bert}?pooling=cls")
    result = bench_result(spec, BenchConfig(device="cpu", batch_size=4, warmup=1, repeats=1), bench_texts(8))
    assert result.ok and is_bench(result) and result.task_type == BENCH_TASK_TYPE
    assert result.encoder == str(spec)  # joinable with the quality rows of the same spec
    assert result.split == "cpu-float32-bs4" and result.main_score == result.scores["sentences_per_second"] > 0
    assert {"cpu", "cpu_count", "packages", "torch_cuda"} <= set(result.environment)
    path = ResultStore(tmp_path).write(result)
    assert CellResult.read(path) == result


def test_options_a_backend_cannot_take() -> None:
    config = BenchConfig(device="cuda", dtype="float16")
    assert bench_spec(EncoderSpec.parse("static:tokenlearn-static"), config) is None
    assert bench_spec(EncoderSpec.parse("hf:m"), config) == EncoderSpec.parse("hf:m?device=cuda&dtype=float16&batch_size=32")
    assert bench_spec(EncoderSpec.parse("tfidf:x"), BenchConfig(device="cpu")) == EncoderSpec.parse("tfidf:x")


def test_cli_writes_one_row_per_configuration(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    argv = ["bench", "-e", f"hf:{tiny_bert}", "--batch-size", "4,8", "--texts", "16", "--repeats", "1", "--warmup", "1"]
    assert main([*argv, "--device", "cpu", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cpu-float32-bs4" in out and "cpu-float32-bs8" in out and "pad eff" in out
    rows = ResultStore(tmp_path).load_all()
    assert sorted(r.split for r in rows) == ["cpu-float32-bs4", "cpu-float32-bs8"]


def test_cuda_without_a_gpu_is_a_failed_row_not_a_crash(tiny_bert: Path, tmp_path: Path) -> None:
    import torch

    from evalkit.cli import main

    if torch.cuda.is_available():  # on a GPU machine the same call must succeed
        assert main(["bench", "-e", f"hf:{tiny_bert}", "--device", "cuda", "--texts", "8", "--repeats", "1", "-o", str(tmp_path)]) == 0
        return
    assert main(["bench", "-e", f"hf:{tiny_bert}", "--device", "cuda", "--texts", "8", "--repeats", "1", "-o", str(tmp_path)]) == 1
    (row,) = ResultStore(tmp_path).load_all(include_failed=True)
    assert not row.ok and "cuda" in (row.error or "").lower()


def test_token_budget_bounds_every_forward_batch(tiny_bert: Path) -> None:
    """Texts go longest first, in batches of at most ``batch_size`` texts and ``token_budget`` padded positions."""
    from evalkit.encoders import load_encoder

    texts = bench_texts(64)
    encoder = load_encoder(f"hf:{tiny_bert}?batch_size=16&token_budget=600")
    try:
        batches = list(encoder.backbone.batches(texts))
        lengths = encoder.backbone.token_lengths(texts)
    finally:
        encoder.close()
    seen = [int(i) for idx, _ in batches for i in idx]
    assert sorted(seen) == list(range(len(texts)))
    assert [lengths[i] for i in seen] == sorted(lengths, reverse=True)
    for idx, batch in batches:
        assert len(idx) <= 16
        assert batch["input_ids"].numel() <= 600 or len(idx) == 1
    assert len(batches) > len(texts) / 16  # the long abstracts forced smaller batches
