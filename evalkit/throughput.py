"""Timing and memory measurement around encoding.

``MeteredEncoder`` wraps any encoder and records what it cost: wall seconds spent
in ``encode`` (CUDA synchronised before the clock is read), texts and tokens seen,
and peak memory (``torch.cuda.max_memory_allocated`` on GPU, sampled peak RSS on CPU).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from evalkit.encoders.base import CorpusFitted, Encoder, Role


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def cuda_in_use() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())


def synchronize() -> None:
    if cuda_in_use():
        import torch

        torch.cuda.synchronize()


@contextmanager
def peak_memory(interval: float = 0.005) -> Iterator[dict[str, int]]:
    """Yield a dict whose 'peak' holds the peak memory in bytes once the block ends."""
    result = {"peak": 0}
    if cuda_in_use():
        import torch

        torch.cuda.reset_peak_memory_stats()
        try:
            yield result
        finally:
            torch.cuda.synchronize()
            result["peak"] = int(torch.cuda.max_memory_allocated())
        return
    stop = threading.Event()
    peak = [current_rss()]

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], current_rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result["peak"] = max(peak[0], current_rss())


@dataclass
class Throughput:
    """What one (encoder, task) cell cost to encode."""

    encode_seconds: float = 0.0
    sentences: int = 0
    tokens: int = 0
    peak_memory_bytes: int = 0
    device: str = "cpu"
    calls: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.encode_seconds if self.encode_seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.encode_seconds if self.encode_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies")
        data["sentences_per_second"] = round(self.sentences_per_second, 3)
        data["tokens_per_second"] = round(self.tokens_per_second, 3)
        data["encode_seconds"] = round(self.encode_seconds, 6)
        return data


class MeteredEncoder:
    """An Encoder that measures the one it wraps; adapters cannot tell the difference."""

    def __init__(self, inner: Encoder, device: str = "cpu") -> None:
        self.inner = inner
        self.spec = inner.spec
        self.meter = Throughput(device=device)

    def reset(self) -> Throughput:
        done, self.meter = self.meter, Throughput(device=self.meter.device)
        return done

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        with peak_memory() as memory:
            synchronize()
            start = time.perf_counter()
            vectors = self.inner.encode(texts, role)
            synchronize()
            elapsed = time.perf_counter() - start
        self.meter.encode_seconds += elapsed
        self.meter.latencies.append(elapsed)
        self.meter.calls += 1
        self.meter.sentences += len(texts)
        self.meter.tokens += self.inner.count_tokens(texts)
        self.meter.peak_memory_bytes = max(self.meter.peak_memory_bytes, memory["peak"])
        return vectors

    def fit(self, texts: Sequence[str]) -> None:
        if isinstance(self.inner, CorpusFitted):
            self.inner.fit(texts)

    def fingerprint(self) -> dict[str, str]:
        return self.inner.fingerprint()

    def count_tokens(self, texts: Sequence[str]) -> int:
        return self.inner.count_tokens(texts)

    def close(self) -> None:
        self.inner.close()
