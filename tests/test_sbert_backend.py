"""``sbert`` runs the model's own modules on token-budget batches and CPU streams, with ``encode``'s vectors.

The reference is always the real ``SentenceTransformer.encode`` of the same loaded
model: it pads each batch of ``batch_size`` texts to its longest, evalkit's runner
sorts by tokens and cuts budgeted batches, so the two differ only by padding noise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.bench import BenchConfig, bench_texts, measure, padded_positions
from evalkit.encoders import load_encoder
from evalkit.encoders.base import Role
from evalkit.encoders.streams import ENV_VAR
from evalkit.encoders.transformer import MAX_PAD_RATIO, plan_batches
from evalkit.spec import EncoderSpec
from evalkit.throughput import MeteredEncoder
from tests.conftest import REPO, sts_sentences

TOLERANCE = 1e-6
slow = pytest.mark.slow


def sample() -> list[str]:
    """Short STS-B sentences, SciFact abstracts past MiniLM's 256-token limit, and edge cases."""
    lines = (REPO / "tasks" / "data" / "retrieval" / "scifact" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    abstracts = [json.loads(line)["text"] for line in lines]
    return sts_sentences(40) + abstracts + ["", " ", "naïve café ✓ 東京", "a"]


def st_model(encoder: Any) -> Any:
    return getattr(encoder, "inner", encoder).model


def runner(encoder: Any) -> Any:
    return getattr(encoder, "inner", encoder).backbone


def reference(model: Any, texts: list[str], batch_size: int = 32, **kwargs: Any) -> np.ndarray:
    """``SentenceTransformer.encode`` on one torch thread: its threads spin at barriers on a busy machine, one does not."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return np.asarray(model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False, **kwargs))
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def minilm() -> Iterator[Any]:
    encoder = load_encoder("sbert:all-MiniLM-L6-v2")
    yield encoder
    encoder.close()


@pytest.fixture
def two_streams(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two torch threads and two CPU streams, whatever the machine: the streams path is the one under test."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setenv(ENV_VAR, "2")
    yield
    torch.set_num_threads(before)


@slow
def test_vectors_equal_sentence_transformers_encode(minilm: Any, two_streams: None) -> None:
    texts = sample()
    ours, theirs = minilm.encode(texts), reference(st_model(minilm), texts)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (len(texts), 384)
    assert np.abs(ours - theirs).max() <= TOLERANCE
    assert runner(minilm).stats.batches > 1, "ran as several token-budget batches"


@slow
def test_spec_prompts_max_length_and_normalize_as_encode_applies_them() -> None:
    spec = EncoderSpec(
        "sbert",
        "all-MiniLM-L6-v2",
        (("max_length", "48"), ("normalize", "true"), ("query_prompt", "query: "), ("batch_size", "8"), ("token_budget", "200")),
    )
    encoder = load_encoder(spec)
    try:
        model, texts = st_model(encoder), sample()
        assert model.max_seq_length == 48
        for role, prompt in ((Role.QUERY, "query: "), (Role.DOCUMENT, None), (None, None)):
            theirs = reference(model, texts, batch_size=8, prompt=prompt, normalize_embeddings=True)
            assert np.abs(encoder.encode(texts, role) - theirs).max() <= TOLERANCE, role
        assert runner(encoder).stats.padded_tokens <= runner(encoder).stats.batches * 200
    finally:
        encoder.close()


@slow
def test_model_declared_prompts_default_prompt_and_include_prompt(minilm: Any, two_streams: None) -> None:
    """What ``config_sentence_transformers.json`` and a Pooling with ``include_prompt=false`` declare, honoured like ``encode``."""
    model, texts = st_model(minilm), sample()[:20] + sample()[80:81]
    saved = (dict(model.prompts), model.default_prompt_name)
    model.prompts = {"query": "query: ", "document": "passage: ", "plain": "represent this: "}
    try:
        for include_prompt in (True, False):
            model.set_pooling_include_prompt(include_prompt)
            model.default_prompt_name = None
            query = reference(model, texts, prompt_name="query")
            assert np.abs(minilm.encode(texts, Role.QUERY) - query).max() <= TOLERANCE
            assert np.abs(minilm.encode(texts, Role.DOCUMENT) - reference(model, texts, prompt_name="document")).max() <= TOLERANCE
            assert np.abs(minilm.encode(texts) - reference(model, texts)).max() <= TOLERANCE
            model.default_prompt_name = "plain"
            assert np.abs(minilm.encode(texts) - reference(model, texts)).max() <= TOLERANCE
            assert np.abs(query - reference(model, texts)).max() > 1e-3, "the prompts change the vectors"
    finally:
        model.prompts, model.default_prompt_name = saved
        model.set_pooling_include_prompt(True)


@slow
def test_a_processor_setting_the_shortcut_would_miss_falls_back_to_preprocess(minilm: Any, two_streams: None) -> None:
    """A Transformer module's own ``processing_kwargs`` (saved with some models) changes tokenisation: still ``encode``'s vectors."""
    model, texts = st_model(minilm), sample()
    saved, stats = model[0].processing_kwargs, runner(minilm).stats
    model[0].processing_kwargs = {"text": {"max_length": 24}}
    try:
        padded, count = stats.padded_tokens, stats.texts
        ours = minilm.encode(texts)
        assert np.abs(ours - reference(model, texts)).max() <= TOLERANCE
        assert stats.padded_tokens - padded <= 24 * (stats.texts - count), "every batch was tokenised as preprocess does: at most 24 tokens"
    finally:
        model[0].processing_kwargs = saved


@slow
def test_mpnet_vectors_equal_encode(two_streams: None) -> None:
    try:
        encoder = load_encoder("sbert:all-mpnet-base-v2")
    except Exception as exc:
        pytest.skip(f"all-mpnet-base-v2 not installed: {exc}")
    try:
        texts = sts_sentences(12) + sample()[80:83]
        assert np.abs(encoder.encode(texts) - reference(st_model(encoder), texts)).max() <= TOLERANCE
    finally:
        encoder.close()


@slow
def test_batches_run_as_single_threaded_streams_and_threads_come_back_when_a_batch_raises(minilm: Any, two_streams: None) -> None:
    model, texts = st_model(minilm), sample()
    seen: list[tuple[str, int]] = []
    calls = {"n": 0}

    def record(module: Any, args: Any) -> None:
        seen.append((threading.current_thread().name, torch.get_num_threads()))

    def fail_third(module: Any, args: Any, output: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("batch 3 failed")

    handle = model[0].register_forward_pre_hook(record)
    try:
        minilm.encode(texts)
        assert torch.get_num_threads() == 2
        assert {threads for _, threads in seen} == {1}, "each stream runs on its share of the two threads"
        assert {name for name, _ in seen} <= {"evalkit-stream_0", "evalkit-stream_1"}
        failing = model[1].register_forward_hook(fail_third)
        try:
            with pytest.raises(RuntimeError, match="batch 3 failed"):
                minilm.encode(texts)
        finally:
            failing.remove()
        assert torch.get_num_threads() == 2, "the thread count is restored after a failed batch"
    finally:
        handle.remove()


@slow
def test_one_stream_gives_the_same_vectors(minilm: Any, two_streams: None, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = sample()
    streamed = minilm.encode(texts)
    assert np.array_equal(minilm.encode(texts), streamed), "each batch is computed by one stream, start to end"
    monkeypatch.setenv(ENV_VAR, "1")  # one batch at a time on both intra-op threads: another summation order
    assert np.abs(minilm.encode(texts) - streamed).max() <= TOLERANCE


@slow
def test_throughput_counts_forward_batches_and_padding(minilm: Any) -> None:
    meter = MeteredEncoder(minilm)
    meter.encode(sample())
    done = meter.reset().as_dict()
    assert done["forward_batches"] > 1 and not done["shared_forward_pass"]
    assert 0.7 < done["padding_efficiency"] <= 1
    assert minilm.encode([]).shape == (0, 384)


@slow
def test_padding_efficiency_on_the_bench_sample_beats_one_padded_batch_per_call() -> None:
    """``evalkit bench`` feeds 32 texts per call: before, each call was one batch padded to its longest text."""
    texts = bench_texts(128)
    row = measure(EncoderSpec.parse("sbert:all-MiniLM-L6-v2"), BenchConfig(device="cpu", batch_size=32, warmup=0, repeats=1), texts)
    probe = load_encoder("sbert:all-MiniLM-L6-v2")
    try:
        before = sum(padded_positions(getattr(probe, "inner", probe), texts[i : i + 32]) or 0 for i in range(0, len(texts), 32))
    finally:
        probe.close()
    efficiency, old = row["scores"]["padding_efficiency"], row["tokens"] / before
    assert row["forward_batches"] > len(texts) // 32, "each call is cut into length-sorted batches"
    assert efficiency > 0.7 and efficiency > 2 * old, (efficiency, old)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 600), max_size=120),
    batch_size=st.integers(1, 40),
    budget=st.integers(1, 5000),
)
def test_plan_batches_covers_every_text_once_within_limits(lengths: list[int], batch_size: int, budget: int) -> None:
    array = np.asarray(lengths, dtype=np.int64)
    batches = list(plan_batches(array, batch_size, budget))
    assert sorted(int(i) for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        sizes = array[batch]
        longest = max(int(sizes[0]), 1)
        assert int(sizes[0]) == int(sizes.max()), "longest text first"
        assert len(batch) <= batch_size
        assert len(batch) == 1 or len(batch) * longest <= budget, "a batch of several texts stays within the budget"
        assert all(int(n) * MAX_PAD_RATIO >= int(sizes[0]) for n in sizes), "no text padded past twice its length"
