"""Forward passes on CPU as parallel streams of whole batches, not one batch split over threads.

A sentence encoder's matrices are small (a batch of 32 short sentences is a
~500 × 384 GEMM): splitting each operation over torch's intra-op threads spends much
of the time at the barriers between them. Running S batches at once, each on
``threads // S`` intra-op threads, keeps every core busy on whole operations. On the
2-core reference machine, MiniLM encodes the STS-B test texts as two single-threaded
streams in 0.85× the time of one two-threaded pass (``make bench``, docs/performance.md).

Each batch is computed by one stream from start to end, so its vectors do not
depend on scheduling. torch releases the GIL inside its kernels; the Python between
them is what limits the number of useful streams (at most ``MAX_STREAMS``).
``EVALKIT_CPU_STREAMS`` overrides the choice (1 turns streams off).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_STREAMS = 4
ENV_VAR = "EVALKIT_CPU_STREAMS"


def configured() -> int | None:
    """The stream count ``EVALKIT_CPU_STREAMS`` asks for (None: choose); commands check it before any model loads."""
    forced = os.environ.get(ENV_VAR, "").strip()
    if not forced:
        return None
    if not forced.isdigit() or int(forced) < 1:
        from evalkit.errors import EvalkitError

        hint = f"unset it, or {ENV_VAR}=1 to turn streams off"
        raise EvalkitError(f"{ENV_VAR} must be a positive integer, got {forced!r}", field=ENV_VAR, hint=hint)
    return int(forced)


def stream_count(threads: int) -> int:
    """How many batches run at once on ``threads`` intra-op threads (the budget torch was given)."""
    forced = configured()
    if forced is not None:
        return min(forced, max(threads, 1))
    return max(1, min(threads, MAX_STREAMS))


def budget_share(budget: int, device: str) -> int:
    """Padded positions per batch when ``budget`` bounds those in flight: streams split it, so peak memory stays put."""
    if device != "cpu":
        return budget
    import torch

    return max(1, budget // stream_count(torch.get_num_threads()))


def run_batches(fn: Callable[[T], R], batches: Iterable[T], device: str) -> Generator[R, None, None]:
    """``fn`` over ``batches``, results in input order; on CPU, several batches at once.

    torch's intra-op thread count is process-wide: it is lowered for the streams and
    restored when the iterator finishes or is closed, so callers consume it inside
    ``contextlib.closing`` (a half-read iterator would otherwise keep the lower count
    until it is garbage-collected).

    ``fn`` must enter its own ``torch.inference_mode`` (grad mode is per thread). Batches
    are produced on the calling thread (tokenizers are not thread-safe), at most two
    per stream ahead of the results, so padded batches never pile up in memory.
    """
    import torch

    items = iter(batches)
    head = list(itertools.islice(items, 2))
    threads = torch.get_num_threads()
    streams = stream_count(threads) if device == "cpu" and len(head) > 1 else 1
    if streams < 2:
        yield from map(fn, itertools.chain(head, items))
        return
    torch.set_num_threads(max(1, threads // streams))
    try:
        with ThreadPoolExecutor(streams, thread_name_prefix="evalkit-stream") as pool:
            pending: deque[Future[R]] = deque()
            for item in itertools.chain(head, items):
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * streams:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    finally:
        torch.set_num_threads(threads)
