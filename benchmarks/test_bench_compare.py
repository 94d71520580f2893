"""The paired speed comparison calibrated: A against A holds 1, halving one side's threads is detected.

``evalkit bench --compare`` (``evalkit.speed.compare``) on the packaged MiniLM: A vs A over 12 ABBA/BAAB
rounds at 99 % (rounds on a shared machine vary by ~10 %), halved threads over 8 rounds at 95 %.
The candidate of the second comparison runs its forward passes at half the budget
(``threads=N/2``, a spec option). On 2 idle cores that is close to 2× slower; with
other processes on the cores the slowdown shrinks, which is why this is a benchmark,
not a test. Run: ``make bench ARGS='-k compare'``.
"""

from __future__ import annotations

from typing import Any

import torch
from conftest import MINILM_HF, Ratio, record

from evalkit.samples import bench_texts
from evalkit.spec import EncoderSpec
from evalkit.speed import CompareConfig, compare

SPEC = f"{MINILM_HF}?pooling=mean"


def test_a_vs_a_and_halved_threads(benchmark: Any) -> None:
    budget = torch.get_num_threads()
    half = max(1, budget // 2)
    texts = bench_texts(64)
    config = CompareConfig(rounds=8, warmup=2, repeats=1, memory_probes=0)
    calibration = CompareConfig(rounds=12, warmup=2, repeats=1, memory_probes=0, level=0.99)  # as the test suite's A vs A
    base = EncoderSpec.parse(SPEC)

    def both() -> tuple[Any, Any]:
        same = compare(base, base, texts, calibration)
        slow = compare(base, EncoderSpec.parse(f"{SPEC}&threads={half}"), texts, config)
        return same, slow

    same, slow = benchmark.pedantic(both, rounds=1, iterations=1)
    benchmark.extra_info.update(
        {
            "a_vs_a": [same.ratio.estimate, same.ratio.low, same.ratio.high],
            "halved": [slow.ratio.estimate, slow.ratio.low, slow.ratio.high],
            "threads": [budget, half],
        }
    )
    assert slow.declared_threads == {"candidate": half}
    identity = record(
        Ratio("A vs A: paired ratio (interval must hold 1)", "A", "A", [same.ratio.estimate], [1.0], "interval holds 1"), benchmark
    )
    identity.ok = same.ratio.low <= 1.0 <= same.ratio.high
    halved = record(
        Ratio(f"threads {half} / {budget}: paired ratio (must exclude 1)", "half", "full", [slow.ratio.estimate], [1.0], "< 1"),
        benchmark,
    )
    halved.ok = slow.ratio.high < 1.0
