"""The embedding cache: a warm re-run does no forward pass, and no change of model,
pooling, prompt or role can ever read another configuration's vectors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from evalkit.cache import CachedEncoder, EmbeddingCache, uncacheable_reason
from evalkit.encoders import Role, load_encoder
from evalkit.throughput import MeteredEncoder
from tests.conftest import sts_sentences

TEXTS = list(dict.fromkeys(sts_sentences(60)))  # distinct, as adapters send them


def encode_with(spec: str, cache: EmbeddingCache, texts: list[str] = TEXTS, role: Role | None = None) -> tuple[np.ndarray, dict]:
    """Encode through a fresh load of ``spec`` behind ``cache``; also return what the meter saw."""
    meter = MeteredEncoder(load_encoder(spec), cache=cache)
    try:
        vectors = meter.encode(texts, role)
        return vectors, meter.reset().as_dict()
    finally:
        meter.close()


def plain(spec: str, texts: list[str] = TEXTS, role: Role | None = None) -> np.ndarray:
    encoder = load_encoder(spec)
    try:
        return encoder.encode(texts, role)
    finally:
        encoder.close()


def test_warm_cache_runs_no_forward_pass_and_returns_identical_vectors(tiny_bert: Path, tmp_path: Path) -> None:
    spec = f"hf:{tiny_bert}?pooling=mean"
    cold, cold_tp = encode_with(spec, EmbeddingCache(tmp_path))
    warm, warm_tp = encode_with(spec, EmbeddingCache(tmp_path))  # a new cache object: read back from disk
    assert cold_tp["forward_batches"] > 0 and cold_tp["cached_sentences"] == 0
    assert warm_tp["forward_batches"] == 0 and warm_tp["sentences"] == 0 and warm_tp["calls"] == 0
    assert warm_tp["cached_sentences"] == len(TEXTS) and warm_tp["cached_fraction"] == 1.0
    assert warm_tp["sentences_per_second"] is None  # no model speed is claimed for cache hits
    np.testing.assert_array_equal(warm, cold)
    np.testing.assert_array_equal(cold, plain(spec))


def test_partial_hits_keep_the_order_of_the_texts(tiny_bert: Path, tmp_path: Path) -> None:
    spec = f"hf:{tiny_bert}"
    cache = EmbeddingCache(tmp_path)
    encode_with(spec, cache, TEXTS[::2])
    mixed, seen = encode_with(spec, EmbeddingCache(tmp_path), TEXTS)
    assert seen["cached_sentences"] == len(TEXTS[::2]) and seen["sentences"] == len(TEXTS) - len(TEXTS[::2])
    np.testing.assert_allclose(mixed, plain(spec), atol=1e-6)


@pytest.mark.parametrize(
    ("first", "second", "role1", "role2"),
    [
        ("hf:{m}?pooling=mean", "hf:{m}?pooling=cls", None, None),
        ("hf:{m}?pooling=mean", "hf:{m}?pooling=mean&layer=1", None, None),
        ("hf:{m}", "hf:{m}?prompt=query: ", None, None),
        ("hf:{m}?query_prompt=q: &document_prompt=d: ", "hf:{m}?query_prompt=q: &document_prompt=d: ", Role.QUERY, Role.DOCUMENT),
        ("hf:{m}", "hf:{m}", Role.QUERY, Role.DOCUMENT),
        ("hf:{m}", "hf-logits:{m}", None, None),
    ],
    ids=["pooling", "layer", "prompt", "role-with-prompts", "role-without-prompts", "backend"],
)
def test_a_changed_configuration_never_hits_another_entries(
    tiny_bert: Path, tmp_path: Path, first: str, second: str, role1: Role | None, role2: Role | None
) -> None:
    a, b = first.format(m=tiny_bert), second.format(m=tiny_bert)
    encode_with(a, EmbeddingCache(tmp_path), role=role1)
    vectors, seen = encode_with(b, EmbeddingCache(tmp_path), role=role2)
    assert seen["cached_sentences"] == 0 and seen["sentences"] == len(TEXTS)
    np.testing.assert_array_equal(vectors, plain(b, role=role2))


def test_changed_weights_under_the_same_path_and_spec_miss(tiny_bert: Path, tmp_path: Path) -> None:
    """The key holds a hash of the weights, not the model's name: retrained weights in place never hit."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    spec = f"hf:{folder}"
    before, _ = encode_with(spec, EmbeddingCache(tmp_path / "cache"))
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: v + 0.5 if k.endswith("LayerNorm.bias") else v for k, v in tensors.items()}, weights, metadata={"format": "pt"})
    after, seen = encode_with(spec, EmbeddingCache(tmp_path / "cache"))
    assert seen["cached_sentences"] == 0
    assert not np.allclose(after, before)
    np.testing.assert_array_equal(after, plain(spec))


def test_corpus_fitted_encoders_are_never_cached(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    tfidf = load_encoder("tfidf:lexical")
    assert uncacheable_reason(tfidf, tfidf.fingerprint()) is not None
    assert cache.wrap(tfidf) is tfidf
    meter = MeteredEncoder(tfidf, cache=cache)
    assert meter.cached is None
    meter.fit(TEXTS)
    meter.encode(TEXTS)
    assert cache.info().namespaces == 0 and not any(tmp_path.rglob("*.npz"))


def test_an_unreadable_shard_is_a_miss_not_a_wrong_vector(tiny_bert: Path, tmp_path: Path) -> None:
    spec = f"hf:{tiny_bert}"
    encode_with(spec, EmbeddingCache(tmp_path))
    shards = list(tmp_path.rglob("shard-*.npz"))
    assert len(shards) == 1
    shards[0].write_bytes(b"not a zip file")
    vectors, seen = encode_with(spec, EmbeddingCache(tmp_path))
    assert seen["cached_sentences"] == 0
    np.testing.assert_array_equal(vectors, plain(spec))


def test_cached_encoder_counts_hits_and_misses(tiny_bert: Path, tmp_path: Path) -> None:
    encoder = CachedEncoder(load_encoder(f"hf:{tiny_bert}"), EmbeddingCache(tmp_path))
    try:
        encoder.encode(TEXTS[:10])
        encoder.encode(TEXTS[:20])
        assert encoder.reset_counts() == {"cached_sentences": 10, "cached_fraction": 0.333333}
    finally:
        encoder.close()


def test_cli_info_and_clear(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    encode_with(f"hf:{tiny_bert}", EmbeddingCache(tmp_path))
    encode_with(f"hf:{tiny_bert}", EmbeddingCache(tmp_path), role=Role.QUERY)
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "namespaces (encoder configuration × role): 2" in out and f"vectors: {2 * len(TEXTS)}" in out
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    assert "cleared 2" in capsys.readouterr().out
    assert EmbeddingCache(tmp_path).info().entries == 0


def test_run_with_a_warm_cache_gives_identical_scores_and_says_so(tiny_bert: Path, tmp_path: Path) -> None:
    """``evalkit run --overwrite`` twice: the second run reads every vector from the cache and reports it."""
    from evalkit.cli import main
    from evalkit.results import ResultStore
    from tests.test_pooling_sweep import small_sts_task

    task = str(small_sts_task(tmp_path))
    args = ["run", "-e", f"hf:{tiny_bert}", "-t", task, "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--no-progress", "--no-report"]) == 0
    first = ResultStore(tmp_path / "out").load_all()[0]
    assert main([*args, "--no-progress", "--no-report", "--overwrite"]) == 0
    second = ResultStore(tmp_path / "out").load_all()[0]
    assert second.scores == first.scores
    assert first.throughput["cached_fraction"] == 0.0 and first.throughput["sentences_per_second"] > 0
    assert second.throughput["cached_fraction"] == 1.0 and second.throughput["forward_batches"] == 0
    assert second.throughput["sentences_per_second"] is None
    assert main([*args, "--no-progress", "--no-report", "--overwrite", "--no-cache"]) == 0
    third = ResultStore(tmp_path / "out").load_all()[0]
    assert third.throughput["cached_fraction"] == 0.0 and third.scores == first.scores


def test_hub_models_are_cached_only_when_pinned_to_a_commit(tiny_bert: Path) -> None:
    encoder = load_encoder(f"hf:{tiny_bert}")
    try:
        assert uncacheable_reason(encoder, encoder.fingerprint()) is None  # a local folder: keyed by its weights hash
        for weights in ("hub:org/model@main", "hub:org/model@v1.0"):
            assert uncacheable_reason(encoder, {**encoder.fingerprint(), "weights": weights}) is not None
        assert uncacheable_reason(encoder, {**encoder.fingerprint(), "weights": "hub:org/model@" + "a" * 40}) is None
    finally:
        encoder.close()
