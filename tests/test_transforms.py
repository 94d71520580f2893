"""Post-pooling transforms (whiten → truncate → quantise): sentence-transformers' semantics, one forward pass per sweep.

The quantisers are checked bit for bit against ``sentence_transformers.quantize_embeddings``,
whitening against Su et al.'s reference code, and the scores of a real sweep on the packaged
MiniLM against ``quantize_embeddings`` + the STS adapter's own scoring on the same vectors.
A sweep's forward passes are counted at the model: every text goes through it once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from evalkit.adapters.similarity import similarities
from evalkit.adapters.sts import STSAdapter, correlations
from evalkit.cache import EmbeddingCache
from evalkit.cli import main
from evalkit.encoders import check_spec, load_encoder, share_key
from evalkit.encoders.base import Encoder, EncoderWrapper, Role
from evalkit.encoders.transforms import (
    PRECISIONS,
    SharedPass,
    Transform,
    TransformedEncoder,
    Whitening,
    scalar_ranges,
    split_spec,
    truncate,
)
from evalkit.errors import EvalkitError, SpecError
from evalkit.execution import plan
from evalkit.execution.local import run_group
from evalkit.report.plots import precision_grid, quality_vs_bytes
from evalkit.report.table import build
from evalkit.schemas.options import PRECISIONS as OPTION_PRECISIONS
from evalkit.spec import EncoderSpec
from evalkit.taskspec import TaskIndex, TaskSpec
from tests.test_pooling_sweep import small_sts_task

MISSING = "/no/such/model-folder"  # a bad option must be refused before anything tries to load this
MINILM = "all-MiniLM-L6-v2"
DIMS = (64, 128)
SWEPT = ("int8", "binary")
FLOATS = hnp.arrays(np.float32, st.tuples(st.integers(2, 30), st.integers(1, 40)), elements=st.floats(-4, 4, width=32))


# ---- the quantisers are sentence-transformers', bit for bit ----------------------------------------------


@settings(max_examples=40, deadline=None)
@given(vectors=FLOATS, data=st.data())
def test_quantisers_equal_quantize_embeddings(vectors: np.ndarray, data: st.DataObject) -> None:
    from sentence_transformers.util.quantization import quantize_embeddings

    calibration = data.draw(hnp.arrays(np.float32, (data.draw(st.integers(2, 20)), vectors.shape[1]), elements=st.floats(-4, 4, width=32)))
    for name in ("int8", "uint8", "binary", "ubinary"):
        precision = PRECISIONS[name]
        own = precision.quantize(vectors, scalar_ranges(vectors) if precision.scalar else None)
        theirs = quantize_embeddings(vectors, precision=name)
        assert own.dtype == theirs.dtype and np.array_equal(own, theirs), name
        if precision.scalar:  # ranges from a calibration sample (calibration=bench)
            theirs = quantize_embeddings(vectors, precision=name, calibration_embeddings=calibration)
            assert np.array_equal(precision.quantize(vectors, scalar_ranges(calibration)), theirs)


@settings(max_examples=30, deadline=None)
@given(vectors=FLOATS)
def test_binary_and_ubinary_score_the_same_unpacked_bits_as_the_evaluator(vectors: np.ndarray) -> None:
    """sentence-transformers' EmbeddingSimilarityEvaluator unpacks both to {0, 1}; MTEB's CompressionWrapper uses x > 0."""
    dim = vectors.shape[1]
    binary, ubinary = PRECISIONS["binary"], PRECISIONS["ubinary"]
    from_binary = binary.decode(binary.quantize(vectors, None), dim)
    from_ubinary = ubinary.decode(ubinary.quantize(vectors, None), dim)
    evaluator = np.unpackbits((binary.quantize(vectors, None).astype(np.int16) + 128).astype(np.uint8), axis=1).astype(np.float32)
    assert np.array_equal(from_binary, from_ubinary)
    assert np.array_equal(from_binary, evaluator[:, :dim]) and not evaluator[:, dim:].any()  # the padding bits are zeros
    assert np.array_equal(from_binary, (vectors > 0).astype(np.float32))
    assert binary.quantize(vectors, None).shape[1] == math.ceil(dim / 8)


def test_the_option_model_and_the_registry_list_the_same_precisions() -> None:
    assert tuple(PRECISIONS) == OPTION_PRECISIONS


# ---- whitening is Su et al.'s; truncation is sentence-transformers' ------------------------------------------


def reference_whitening(vectors: np.ndarray, k: int) -> np.ndarray:
    """bert-whitening's compute_kernel_bias + transform_and_normalize, as published."""
    mu = vectors.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(np.cov(vectors.T))
    kernel = np.linalg.inv(np.dot(u, np.diag(s**0.5)).T)[:, :k]
    out = (vectors - mu).dot(kernel)
    return out / (out**2).sum(axis=1, keepdims=True) ** 0.5


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_whitening_equals_the_reference_and_whitens(data: st.DataObject) -> None:
    dim = data.draw(st.integers(2, 12))
    n = data.draw(st.integers(dim + 2, 60))
    seed = data.draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    vectors = (rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) + rng.normal(size=dim)).astype(np.float32)
    k = data.draw(st.integers(1, dim))
    fitted = Whitening.fit(vectors, k)
    raw = (vectors.astype(np.float64) - fitted.mean) @ fitted.kernel
    assert np.allclose(np.cov(raw.T).reshape(k, k), np.eye(k), atol=1e-6)  # whitened: identity covariance
    assert np.allclose(fitted(vectors), reference_whitening(vectors.astype(np.float64), k), atol=1e-4)


def test_whitening_keeps_the_components_that_vary_and_refuses_more() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 16)).astype(np.float32)
    with pytest.raises(EvalkitError) as caught:
        Whitening.fit(vectors, 8)
    assert caught.value.field == "whiten_dim" and "at most 4" in (caught.value.hint or "")
    assert Whitening.fit(vectors, 4).kernel.shape == (16, 4)  # 5 texts span 4 components
    assert Whitening.fit(vectors, None).kernel.shape == (16, 4)
    constant = rng.normal(size=(200, 12)).astype(np.float32)
    constant[:, [2, 7, 9]] = 0.25  # dimensions that never vary (as 3 of MiniLM's mean-pooled 384 on STS-B)
    fitted = Whitening.fit(constant, None)
    assert fitted.kernel.shape == (12, 9) and np.isfinite(fitted(constant)).all()
    with pytest.raises(EvalkitError):
        Whitening.fit(np.ones((10, 4), dtype=np.float32), None)  # nothing varies: no whitening at all


def test_truncation_renormalises_only_when_asked_like_sentence_transformers() -> None:
    import torch

    vectors = np.random.default_rng(1).normal(size=(6, 10)).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert np.array_equal(truncate(unit, 4, renormalize=False), unit[:, :4])  # encode(truncate_dim=4)
    expected = torch.nn.functional.normalize(torch.from_numpy(unit[:, :4]), p=2, dim=1).numpy()  # ... normalize_embeddings=True
    assert np.allclose(truncate(unit, 4, renormalize=True), expected, atol=1e-7)
    with pytest.raises(EvalkitError) as caught:
        truncate(unit, 11, renormalize=False)
    assert caught.value.field == "truncate_dim" and "10 dimensions" in caught.value.message


# ---- options: refused before any model loads; transforms never split a model --------------------------------

BAD = [
    ("hf", "truncate_dim=0", "truncate_dim", None),
    ("hf", "precision=int4", "precision", "did you mean 'int8'?"),
    ("sbert", "whiten_dim=8", "whiten_dim", None),
    ("hf", "whiten=true&whiten_dim=8&truncate_dim=16", "truncate_dim", None),
    ("static", "precision=binary&calibration=bench", "calibration", None),
    ("static", "calibration=tasks", "calibration", "did you mean 'task'?"),
    ("hf-logits", "whiten=perhaps", "whiten", None),
    ("tfidf", "precision=int8", "precision", None),  # TF-IDF is not a dense backend: no transforms
]


@pytest.mark.parametrize(("backend", "query", "option", "hint"), BAD, ids=[f"{b}?{q}" for b, q, _, _ in BAD])
def test_a_bad_transform_option_is_exit_2_one_line_before_any_model_loads(
    backend: str, query: str, option: str, hint: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SpecError) as caught:
        check_spec(f"{backend}:{MISSING}?{query}")
    assert caught.value.field == option and (hint is None or caught.value.hint == hint)
    out = tmp_path / "out"
    code = main(["run", "-e", f"{backend}:{MISSING}?{query}", "-t", "STSBenchmark", "-o", str(out), "--no-progress", "--no-report"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    assert f"field '{option}'" in lines[0] and MISSING in lines[0]
    assert "Traceback" not in captured.err + captured.out and not out.exists()


def test_transform_options_never_change_which_model_loads() -> None:
    for backend in ("hf", "sbert", "static", "hf-logits"):
        plain = check_spec(f"{backend}:m")
        variants = [f"{backend}:m?truncate_dim=8", f"{backend}:m?precision=binary&truncate_dim=16", f"{backend}:m?whiten=1&whiten_dim=4"]
        for text in variants:
            spec = check_spec(text)
            assert share_key(spec) == share_key(plain), text
            base, transform = split_spec(spec)
            assert base == plain and transform is not None
    assert split_spec(check_spec("hf:m?precision=float32&pooling=cls")) == (check_spec("hf:m?pooling=cls"), None)  # the identity
    assert split_spec(check_spec("sbert:m?normalize=true&truncate_dim=8"))[1] == Transform(truncate_dim=8, renormalize=True)
    assert split_spec(check_spec("hf:m?pooling=cls&truncate_dim=8"))[0] == check_spec("hf:m?pooling=cls")


# ---- a real sweep on the packaged MiniLM ---------------------------------------------------------------------


class Counting(EncoderWrapper):
    """Counts the texts that reach the model (the base encoder, under every cache and transform)."""

    seen: list[int]

    def __init__(self, inner: Encoder, seen: list[int]) -> None:
        super().__init__(inner)
        self.seen = seen

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        self.seen.append(len(texts))
        return self.inner.encode(texts, role)


def sweep_specs(backend: str) -> list[str]:
    """A dims × precision × whitening sweep plus the plain model (whiten_dim fits the small task's texts)."""
    specs = [f"{backend}:{MINILM}"]
    for whiten in ("", "&whiten=true&whiten_dim=128"):
        specs += [f"{backend}:{MINILM}?truncate_dim={d}&precision={p}{whiten}" for d in DIMS for p in ("float32", *SWEPT)]
    return specs


def run(specs: Sequence[str], task: TaskSpec, cache: EmbeddingCache | None = None) -> tuple[list[Any], list[int]]:
    seen: list[int] = []
    cells = plan([EncoderSpec.parse(s) for s in specs], [task])
    results = list(run_group(cells, cache=cache, wrap=lambda e: Counting(e, seen), release=False))
    return results, seen


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> TaskSpec:
    return TaskIndex([]).get(str(small_sts_task(tmp_path_factory.mktemp("sts"), pairs=90)))


@pytest.fixture(scope="module")
def unique_texts(task: TaskSpec) -> tuple[list[str], Any]:
    data = STSAdapter().load(task, "test")
    return list(dict.fromkeys([*data.sentences1, *data.sentences2])), data


@pytest.fixture(scope="module")
def hf_sweep(task: TaskSpec) -> tuple[list[Any], list[int]]:
    return run(sweep_specs("hf"), task)


@pytest.mark.parametrize("backend", ["hf", "sbert"])
def test_a_dims_by_precision_by_whitening_sweep_is_one_forward_pass(
    backend: str, task: TaskSpec, unique_texts: tuple[list[str], Any], hf_sweep: tuple[list[Any], list[int]]
) -> None:
    results, seen = hf_sweep if backend == "hf" else run(sweep_specs(backend), task)
    assert len(results) == 1 + 2 * len(DIMS) * 3 and all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert sum(seen) == len(unique_texts[0])  # every text reached the model once, for all 13 specs
    assert len(seen) == 1  # in one call (the first cell's), which every other spec and every fit then read back
    batches = [r.throughput["forward_batches"] for r in results]
    assert sum(batches) == max(batches)  # one cell ran the batches; the 12 others ran none
    shared = [r for r in results if r.throughput["shared_forward_pass"]]
    assert len(shared) == len(results) - 1
    assert all(r.throughput["sentences_per_second"] == results[0].throughput["sentences_per_second"] for r in shared)  # the pass's speed


def test_every_result_records_what_one_vector_costs(hf_sweep: tuple[list[Any], list[int]]) -> None:
    expected = {"float32": lambda d: 4 * d, "int8": lambda d: d, "binary": lambda d: math.ceil(d / 8)}
    for result in hf_sweep[0]:
        spec = EncoderSpec.parse(result.encoder)
        dim = int(spec.opts.get("truncate_dim", 384))
        precision = spec.opts.get("precision", "float32")
        tp = result.throughput
        assert (tp["vector_dim"], tp["vector_dtype"], tp["bytes_per_vector"]) == (dim, precision, expected[precision](dim)), result.encoder


def test_int8_and_binary_scores_equal_quantize_embeddings_on_the_same_vectors(
    hf_sweep: tuple[list[Any], list[int]], unique_texts: tuple[list[str], Any]
) -> None:
    """What the issue asks: quantize_embeddings (ranges from the task's vectors) + the adapter's scoring, computed directly."""
    from sentence_transformers.util.quantization import quantize_embeddings

    texts, data = unique_texts
    encoder = load_encoder(f"hf:{MINILM}")
    try:
        raw = encoder.encode(texts)
    finally:
        encoder.close()
    position = {t: i for i, t in enumerate(texts)}
    first, second = [position[t] for t in data.sentences1], [position[t] for t in data.sentences2]
    by_spec = {r.encoder: r.scores for r in hf_sweep[0]}
    for dim in DIMS:
        cut = raw[:, :dim]  # hf vectors are not unit length and the spec does not ask for normalize: plain truncation
        int8 = quantize_embeddings(cut, precision="int8").astype(np.float32)
        binary = quantize_embeddings(cut, precision="binary")
        bits = np.unpackbits((binary.astype(np.int16) + 128).astype(np.uint8), axis=1).astype(np.float32)  # the evaluator's unpacking
        for precision, vectors in (("int8", int8), ("binary", bits)):
            expected = correlations(data.gold, similarities(vectors[first], vectors[second]))
            got = by_spec[f"hf:{MINILM}?precision={precision}&truncate_dim={dim}"]
            assert got["cosine_spearman"] == pytest.approx(expected["cosine_spearman"], abs=1e-12), (precision, dim)
            assert got["cosine_pearson"] == pytest.approx(expected["cosine_pearson"], abs=1e-9), (precision, dim)
    whitened = Whitening.fit(raw, 128)(raw)[:, :64]  # fitted on every text of the task, then truncated
    expected = correlations(data.gold, similarities(whitened[first], whitened[second]))
    got = by_spec[f"hf:{MINILM}?precision=float32&truncate_dim=64&whiten=true&whiten_dim=128"]
    assert got["cosine_spearman"] == pytest.approx(expected["cosine_spearman"], abs=1e-9)


def test_sentence_transformers_evaluator_agrees_on_int8_and_binary(task: TaskSpec, unique_texts: tuple[list[str], Any]) -> None:
    """The library's own EmbeddingSimilarityEvaluator(precision=...) on its own encode: equal up to batching noise."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from evalkit.catalogue import resolve

    _, data = unique_texts
    model = SentenceTransformer(str(resolve(MINILM)), device="cpu")
    results, _ = run([f"sbert:{MINILM}?precision={p}" for p in SWEPT], task)
    ours = {r.encoder.rsplit("=", 1)[1]: r.main_score for r in results}
    for precision in SWEPT:
        evaluator = EmbeddingSimilarityEvaluator(data.sentences1, data.sentences2, list(data.gold), precision=precision, write_csv=False)
        theirs = evaluator(model)["spearman_cosine"]
        assert ours[precision] == pytest.approx(theirs, abs=2e-3), precision


def test_transform_variants_reuse_the_cached_untransformed_vectors(task: TaskSpec, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    first, seen = run([f"sbert:{MINILM}"], task, cache)
    assert sum(seen) > 0 and first[0].throughput["cached_sentences"] == 0
    later, seen = run([f"sbert:{MINILM}?truncate_dim=32&precision=ubinary", f"sbert:{MINILM}?precision=uint8"], task, cache)
    assert seen == [] and all(r.ok for r in later)  # no text reached the model: the plain spec's vectors served both
    assert later[0].throughput["cached_sentences"] > 0 and later[0].throughput["bytes_per_vector"] == 4
    assert len(list((tmp_path / "cache").glob("*/*/key.json"))) == 1  # one namespace: the model's, not one per transform


def test_a_spec_with_transforms_loaded_directly_transforms_its_vectors(tiny_bert: Path) -> None:
    from sentence_transformers.util.quantization import quantize_embeddings

    texts = ["a cat sits on the mat", "a dog runs", "stock prices fell", "the market dropped", "rain again today"]
    encoder = load_encoder(f"hf:{tiny_bert}?truncate_dim=16&precision=uint8")
    plain = load_encoder(f"hf:{tiny_bert}")
    try:
        assert isinstance(encoder, TransformedEncoder) and str(encoder.spec) == f"hf:{tiny_bert}?precision=uint8&truncate_dim=16"
        expected = quantize_embeddings(plain.encode(texts)[:, :16], precision="uint8").astype(np.float32)
        assert np.array_equal(encoder.encode(texts), expected)  # unfitted: calibrated on the call, as quantize_embeddings is
        assert encoder.fingerprint()["corpus_fitted"] == "true" and "uint8" in encoder.fingerprint()["transform"]
    finally:
        encoder.close()
        plain.close()


def test_bench_calibration_takes_its_ranges_from_the_shipped_sample(
    tiny_bert: Path, task: TaskSpec, unique_texts: tuple[list[str], Any]
) -> None:
    from sentence_transformers.util.quantization import quantize_embeddings

    from evalkit.bench import bench_texts

    texts, data = unique_texts
    results, seen = run([f"hf:{tiny_bert}?precision=int8&calibration=bench"], task)
    assert sorted(seen) == sorted([len(texts), len(bench_texts())])  # the task's texts, and the sample once
    assert results[0].throughput["sentences"] == len(texts)  # the sample is set-up, not this task's encoding
    plain = load_encoder(f"hf:{tiny_bert}")
    try:
        raw, sample = plain.encode(texts), plain.encode(bench_texts())
    finally:
        plain.close()
    vectors = quantize_embeddings(raw, precision="int8", calibration_embeddings=sample).astype(np.float32)
    position = {t: i for i, t in enumerate(texts)}
    a, b = vectors[[position[t] for t in data.sentences1]], vectors[[position[t] for t in data.sentences2]]
    assert results[0].main_score == pytest.approx(correlations(data.gold, similarities(a, b))["cosine_spearman"], abs=1e-12)


def test_a_truncation_wider_than_the_model_is_one_clear_failed_cell(tiny_bert: Path, task: TaskSpec) -> None:
    results, _ = run([f"hf:{tiny_bert}?truncate_dim=5000", f"hf:{tiny_bert}"], task)
    bad, good = sorted(results, key=lambda r: r.ok)
    assert bad.status == "failed" and "truncate_dim=5000 is larger than the vectors' 32 dimensions" in (bad.error or "")
    assert "Traceback" not in str(bad.details) and good.ok


def test_shared_pass_serves_both_roles_only_for_role_blind_models() -> None:
    calls: list[list[str]] = []

    def compute(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.arange(len(texts) * 2, dtype=np.float32).reshape(-1, 2) + len(calls)

    for blind, expected_calls in ((True, 1), (False, 2)):
        calls.clear()
        shared = SharedPass(role_blind=blind)
        fitted, hits = shared.get(["q", "d1", "d2"], None, compute)
        again, hits = shared.get(["d2", "q"], Role.QUERY, compute)
        assert len(calls) == expected_calls
        if blind:
            assert hits == 2 and np.array_equal(again, fitted[[2, 0]])
    shared = SharedPass(limit=8)  # too small to keep anything: every call computes
    shared.get(["a", "b"], None, compute)
    assert len(shared) == 0


def test_report_draws_quality_vs_bytes_and_the_dims_by_precision_map(hf_sweep: tuple[list[Any], list[int]], tmp_path: Path) -> None:
    board = build(hf_sweep[0], ranks=False)
    assert quality_vs_bytes(board) is not None
    found = precision_grid(board)
    assert found is not None
    model, grid, _ = found
    assert model == f"hf:{MINILM}" and list(grid.index) == ["float32", "int8", "binary"] and list(grid.columns) == ["64", "128", "full"]
    assert not np.isnan(grid.at["int8", "64"]) and np.isnan(grid.at["int8", "full"])
    from evalkit.report.html import render_html

    page = render_html(board)
    assert 'id="fig-quality-bytes"' in page and 'id="fig-precision"' in page and 'id="fig-quality-throughput"' in page


def test_a_retrieval_fit_over_queries_and_documents_is_the_one_pass_of_both_roles(tiny_bert: Path, tmp_path: Path) -> None:
    """Retrieval fits on queries and documents together (no role); a role-blind model's pass then serves both roles."""
    import json

    docs = [{"_id": f"d{i}", "title": "", "text": f"document {i} about topic {i % 5} and more words {i * 7}"} for i in range(30)]
    queries = [{"_id": f"q{i}", "text": f"which document is about topic {i}"} for i in range(5)]
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    qrels = "".join(f"q{i}\td{i}\t1\n" for i in range(5))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels, encoding="utf-8")
    toml = tmp_path / "task.toml"
    toml.write_text(
        'name = "Tiny"\ntype = "retrieval"\nsplit = "test"\n[files]\ncorpus = "corpus.jsonl"\nqueries = "queries.jsonl"\n'
        'test = "qrels/test.tsv"\n',
        encoding="utf-8",
    )
    task = TaskIndex([]).get(str(toml))
    results, seen = run([f"hf:{tiny_bert}?precision=int8&whiten=true&whiten_dim=16", f"hf:{tiny_bert}"], task)
    assert all(r.ok for r in results), [r.error for r in results]
    assert sum(seen) == len(docs) + len(queries)  # each text once: the fit and both roles of both specs share one pass
