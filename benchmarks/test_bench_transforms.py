"""A compression sweep costs no extra forward pass: 4 dims × 3 precisions vs one configuration, on STSBenchmark.

Both sides run through the local executor from scratch (model load, encode, score, write), alternately.
Run: ``make bench ARGS='-k transforms'``.
"""

from __future__ import annotations

import tempfile
from typing import Any

from conftest import MINILM_HF, Ratio, alternate, record

from evalkit.spec import EncoderSpec

DIMS = (64, 128, 256, 384)
PRECISIONS = ("float32", "int8", "binary")


def test_dims_by_precision_sweep_vs_one_configuration(benchmark: Any, stsb: Any) -> None:
    from evalkit.execution import plan, run_local
    from evalkit.results.store import ResultStore

    sweep = [EncoderSpec.parse(f"{MINILM_HF}?truncate_dim={d}&precision={p}") for d in DIMS for p in PRECISIONS]
    single = [EncoderSpec.parse(MINILM_HF)]

    def run(specs: list[EncoderSpec]) -> list[Any]:
        with tempfile.TemporaryDirectory() as folder:
            return run_local(plan(specs, [stsb]), ResultStore(folder), progress=False)

    run(single)  # imports and the model files' first read, outside the timed rounds (the sweep would otherwise pay them)
    twelve, one, swept, alone = benchmark.pedantic(lambda: alternate(lambda: run(sweep), lambda: run(single)), rounds=1, iterations=1)
    assert all(r.ok for results in swept + alone for r in results)
    assert all(
        len(results) == 12 and sum(r.throughput["forward_batches"] for r in results) == alone[0][0].throughput["forward_batches"]
        for results in swept
    )
    full = {r.encoder: r.main_score for r in swept[0]}[f"{MINILM_HF}?precision=float32&truncate_dim=384"]
    assert full == alone[0][0].main_score  # truncating to the model's own width at float32 changes nothing
    benchmark.extra_info["scores"] = {r.encoder: round(r.main_score, 5) for r in swept[0]}
    ratio = record(Ratio("4 dims × 3 precisions / one configuration", "twelve", "one", twelve, one, "<= 1.1"), benchmark)
    ratio.ok = ratio.ratio <= 1.1
