"""Shared setup for the benchmark suite: the packaged MiniLM, STSBenchmark, and the ratio table.

Every comparison runs its two sides alternately in the same rounds (A, B, A, B, ...),
so load from other processes hits both alike; the ratio reported is the median of
the per-round ratios. ``EVALKIT_BENCH_ROUNDS`` sets the rounds (default 3). The
table is printed at the end of the run and written to ``out/bench/ratios.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Default: the machine's cores, as a user runs either tool. EVALKIT_BENCH_THREADS=N caps torch at N threads for
# both sides of every comparison (and the fresh processes, through OMP_NUM_THREADS); on a box shared with other
# jobs, 1 is far steadier because torch's intra-op threads spin at their barriers.
THREADS = os.environ.get("EVALKIT_BENCH_THREADS") or str(len(os.sched_getaffinity(0)))
os.environ["OMP_NUM_THREADS"] = THREADS

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
ROUNDS = int(os.environ.get("EVALKIT_BENCH_ROUNDS", "3"))
RATIO_FILE = REPO / "out" / "bench" / "ratios.json"
MINILM_HF = "hf:all-MiniLM-L6-v2"


@dataclass
class Ratio:
    """One side-by-side comparison: numerator / denominator, per round, then the median."""

    name: str
    numerator: str
    denominator: str
    num_seconds: list[float]
    den_seconds: list[float]
    target: str
    ok: bool | None = None

    @property
    def ratio(self) -> float:
        return statistics.median(n / d for n, d in zip(self.num_seconds, self.den_seconds, strict=True))


RATIOS: list[Ratio] = []


Sides = tuple[list[float], list[float], list[Any], list[Any]]


def alternate(first: Callable[[], Any], second: Callable[[], Any], rounds: int = ROUNDS) -> Sides:
    """Run ``first`` and ``second`` alternately: each side's wall times per round, then each side's return values."""
    times: dict[Any, list[float]] = {first: [], second: []}
    values: dict[Any, list[Any]] = {first: [], second: []}
    for i in range(rounds):
        for fn in (first, second) if i % 2 == 0 else (second, first):  # neither side always goes first
            start = time.perf_counter()
            value = fn()
            times[fn].append(time.perf_counter() - start)
            values[fn].append(value)
    return times[first], times[second], values[first], values[second]


def record(ratio: Ratio, benchmark: Any) -> Ratio:
    RATIOS.append(ratio)
    benchmark.extra_info.update({"ratio": round(ratio.ratio, 4), ratio.numerator: ratio.num_seconds, ratio.denominator: ratio.den_seconds})
    return ratio


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RATIOS:
        return
    from tabulate import tabulate

    rows = [
        [
            r.name,
            f"{statistics.median(r.num_seconds):.2f}",
            f"{statistics.median(r.den_seconds):.2f}",
            f"{r.ratio:.3f}",
            r.target,
            {True: "yes", False: "NO", None: "–"}[r.ok],
        ]
        for r in RATIOS
    ]
    headers = ["comparison (A / B)", "A median s", "B median s", "ratio (median of rounds)", "target", "met"]
    terminalreporter.write_sep("=", f"evalkit benchmark ratios ({ROUNDS} alternating rounds, {THREADS} torch thread(s))")
    terminalreporter.write_line(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    RATIO_FILE.parent.mkdir(parents=True, exist_ok=True)
    from evalkit.environment import environment

    ratios = [asdict(r) | {"ratio": r.ratio} for r in RATIOS]
    payload = {"rounds": ROUNDS, "torch_threads": THREADS, "load_average_at_end": os.getloadavg(), "environment": environment()}
    payload["ratios"] = ratios
    RATIO_FILE.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    terminalreporter.write_line(f"written: {RATIO_FILE}")


@pytest.fixture(scope="session", autouse=True)
def torch_threads() -> None:
    import torch

    torch.set_num_threads(int(THREADS))


@pytest.fixture(scope="session")
def stsb() -> Any:
    from evalkit.taskspec import TaskIndex

    return TaskIndex([]).get("STSBenchmark")


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The packaged MiniLM through evalkit's ``hf`` backend (mean pooling), loaded once."""
    from evalkit.encoders import load_encoder

    encoder = load_encoder(MINILM_HF)
    yield encoder
    encoder.close()
