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

from evalkit.cache import CachedEncoder, EmbeddingCache
from evalkit.encoders.base import CorpusFitted, Encoder, EncoderWrapper, Role
from evalkit.encoders.transforms import SharedPass, Transform, Transformer, VectorInfo, float32_info
from evalkit.spec import EncoderSpec


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


def cuda_in_use(device: str) -> bool:
    """Whether ``device`` is a CUDA device that is running (a CPU encoder on a GPU host reads CPU memory)."""
    torch = sys.modules.get("torch")
    return bool(device.startswith("cuda") and torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())


def synchronize(device: str) -> None:
    if cuda_in_use(device):
        import torch

        torch.cuda.synchronize()


@contextmanager
def peak_memory(device: str = "cpu", interval: float = 0.005) -> Iterator[dict[str, int]]:
    """Yield a dict whose 'peak' holds the peak memory in bytes once the block ends (CUDA allocator or process RSS)."""
    result = {"peak": 0}
    if cuda_in_use(device):
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
    """What one (encoder, task) cell cost to encode.

    Only texts the model itself encoded count towards the speeds: vectors served by
    the embedding cache are reported as ``cached_sentences``, and an ``hf`` pooling
    whose vectors came from a sibling's forward pass has ``shared_forward_pass`` set;
    in both cases there is no model speed to report, so the speeds are null.
    """

    encode_seconds: float = 0.0
    sentences: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    forward_batches: int = 0
    peak_memory_bytes: int = 0
    device: str = "cpu"
    calls: int = 0
    cached_sentences: int = 0
    shared_sentences: int = 0  # served by the forward pass of a spec on the same model (a transform sweep)
    vector_dim: int | None = None  # what one vector handed to the adapter is, after any transform
    vector_dtype: str | None = None  # its stored precision (float32, float16, int8, uint8, binary, ubinary)
    bytes_per_vector: int | None = None  # its stored size (binary: dim / 8 rounded up)
    latencies: list[float] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        """Whether this cell's own forward passes were timed (not only cache hits or a sibling's pass)."""
        return self.sentences > 0 and self.encode_seconds > 0 and not self.shared_forward_pass

    @property
    def shared_forward_pass(self) -> bool:
        if self.sentences == 0:
            return self.shared_sentences > 0
        return self.padded_tokens == 0 and self.forward_batches == 0 and self._backbone

    def note(self, vector: VectorInfo) -> None:
        self.vector_dim, self.vector_dtype, self.bytes_per_vector = vector.dim, vector.dtype, vector.bytes

    _backbone: bool = False

    @property
    def sentences_per_second(self) -> float | None:
        return self.sentences / self.encode_seconds if self.measured else None

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.encode_seconds if self.measured else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies")
        data.pop("_backbone")
        total = self.sentences + self.cached_sentences
        data["cached_fraction"] = round(self.cached_sentences / total, 6) if total else 0.0
        data["shared_forward_pass"] = self.shared_forward_pass
        data["padding_efficiency"] = round(self.tokens / self.padded_tokens, 6) if self.padded_tokens else None
        data["sentences_per_second"] = None if self.sentences_per_second is None else round(self.sentences_per_second, 3)
        data["tokens_per_second"] = None if self.tokens_per_second is None else round(self.tokens_per_second, 3)
        data["encode_seconds"] = round(self.encode_seconds, 6)
        return data


class MeteredEncoder(EncoderWrapper):
    """An Encoder that measures the one it wraps; adapters cannot tell the difference.

    The stack, outside in: ``transform`` (whiten → truncate → quantise, fitted per task),
    ``shared`` (the untransformed vectors a sibling spec on the same model already
    computed for this task), the embedding ``cache`` (untransformed vectors, keyed by the
    model's spec and fingerprint), then the meter and the model. So only the texts the
    model really encodes are timed; the rest are counted as cached or shared, and every
    transform of one model reuses one forward pass and one cache entry per text.
    """

    def __init__(
        self,
        inner: Encoder,
        device: str = "cpu",
        cache: EmbeddingCache | None = None,
        *,
        transform: Transform | None = None,
        shared: SharedPass | None = None,
        spec: EncoderSpec | None = None,
    ) -> None:
        super().__init__(inner)
        if spec is not None:
            self.spec = spec  # the spec with its transform; ``inner`` runs the spec without it
        self.meter = Throughput(device=device)
        self.cached: CachedEncoder | None = None
        if cache is not None:
            front = cache.wrap(_Measured(self), device)
            self.cached = front if isinstance(front, CachedEncoder) else None
        self.shared = shared
        self.transformer = None
        if transform is not None:  # a calibration sample is set-up, like loading the model: not this task's encoding
            self.transformer = Transformer(transform, self.raw, sample_source=lambda texts, role: self.inner.encode(texts, role))

    def reset(self) -> Throughput:
        """The measurements so far (then zeroed); a transform forgets what it was fitted on."""
        done, self.meter = self.meter, Throughput(device=self.meter.device)
        if self.cached is not None:
            done.cached_sentences = int(self.cached.reset_counts()["cached_sentences"])
        if self.transformer is not None:
            self.transformer.reset()
        return done

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        raw = self.raw(texts, role)
        if self.transformer is None:
            shape = np.shape(raw)
            self.meter.note(float32_info(int(shape[1]) if len(shape) == 2 else 0))
            return raw
        vectors, vector = self.transformer(raw)
        self.meter.note(vector)
        return vectors

    def raw(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        """The untransformed vectors: from a sibling's pass (``shared``), else the cache, else the model (timed)."""
        if self.shared is None:
            return self._fetch(texts, role)
        vectors, hits = self.shared.get(texts, role, lambda missing: self._fetch(missing, role))
        self.meter.shared_sentences += hits
        return vectors

    def _fetch(self, texts: Sequence[str], role: Role | None) -> np.ndarray:
        if self.cached is not None:
            return self.cached.encode(texts, role)
        return self.measure(texts, role)

    def fingerprint(self) -> dict[str, str]:
        """The model's fingerprint, plus the transform's (the cache keys on the model's alone)."""
        if self.transformer is None:
            return self.inner.fingerprint()
        return {**self.inner.fingerprint(), **self.transformer.transform.fingerprint()}

    def measure(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        """Encode with the wrapped encoder, timing it and counting its tokens and forward batches."""
        stats = getattr(getattr(self.inner, "backbone", None), "stats", None)
        before = (stats.batches, stats.padded_tokens, stats.real_tokens) if stats is not None else (0, 0, 0)
        device = self.meter.device
        with peak_memory(device) as memory:
            synchronize(device)
            start = time.perf_counter()
            vectors = self.inner.encode(texts, role)
            synchronize(device)
            elapsed = time.perf_counter() - start
        self.meter.encode_seconds += elapsed
        self.meter.latencies.append(elapsed)
        self.meter.calls += 1
        self.meter.sentences += len(texts)
        self.meter.peak_memory_bytes = max(self.meter.peak_memory_bytes, memory["peak"])
        if stats is not None and stats.batches > before[0]:  # the backbone counted the tokens it ran: no second tokenisation
            self.meter.forward_batches += stats.batches - before[0]
            self.meter.padded_tokens += stats.padded_tokens - before[1]
            self.meter.tokens += stats.real_tokens - before[2]
        else:
            self.meter.tokens += self.inner.count_tokens(texts)
        self.meter._backbone = self.meter._backbone or stats is not None
        return vectors

    def fit(self, texts: Sequence[str]) -> None:
        """Corpus-fitted models (TF-IDF) and transforms (whitening, int8 ranges) see every text of the task first."""
        if isinstance(self.inner, CorpusFitted):
            self.inner.fit(texts)
        if self.transformer is not None:
            self.transformer.fit(texts)


class _Measured(EncoderWrapper):
    """The meter seen as an Encoder, so the cache sends it only the texts it misses."""

    def __init__(self, meter: MeteredEncoder) -> None:
        super().__init__(meter.inner)
        self.meter = meter

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        return self.meter.measure(texts, role)
