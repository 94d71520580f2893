"""Encoder throughput, measured the way a performance engineer would trust it.

For each (encoder, device, dtype, batch size): load the model, run warm-up batches,
then time ``repeats`` passes over a fixed, shipped text sample
(``tasks/data/bench/texts.jsonl``: STS-B sentences and SciFact abstracts), one
encode call per batch. Each call is timed by the same ``MeteredEncoder.measure``
that ``evalkit run`` uses (CUDA synchronised before the clock is read), so the two
never disagree on what "encode time" means. A result is a ``CellResult`` with
``task="throughput"`` and ``task_type="bench"``: stored next to quality results
and joinable with them on ``encoder``, but never part of a quality mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.results.schema import BENCH_TASK_TYPE
from evalkit.samples import TEXTS_FILE, bench_texts  # noqa: F401  (re-exported: bench's sample)
from evalkit.spec import EncoderSpec

BENCH_TASK = "throughput"
MAIN_METRIC = "sentences_per_second"


@dataclass(frozen=True)
class BenchConfig:
    """One measurement: where, in which precision, how many texts per call, how long."""

    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 32
    warmup: int = 2
    repeats: int = 3

    @property
    def label(self) -> str:
        return f"{self.device}-{self.dtype}-bs{self.batch_size}"


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def bench_spec(spec: EncoderSpec, config: BenchConfig) -> EncoderSpec | None:
    """``spec`` with the config's device / dtype / batch size, or None if the backend cannot take them."""
    from evalkit.encoders import option_names

    allowed = option_names(spec.backend) or frozenset()
    updates = {}
    for key, value, default in (("device", config.device, "auto"), ("dtype", config.dtype, "float32")):
        if key in allowed:
            updates[key] = value
        elif value not in (default, "cpu"):
            return None  # e.g. a static or TF-IDF encoder on CUDA: not applicable
    if "batch_size" in allowed:
        updates["batch_size"] = str(config.batch_size)
    return spec.with_options(**updates)


def padded_positions(encoder: Any, batch: Sequence[str]) -> int | None:
    """Padded positions of one call for a sentence-transformers model (one forward batch, padded to its longest text)."""
    model: Any = getattr(encoder, "model", None)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or not hasattr(model, "max_seq_length"):
        return None
    lengths = [len(ids) for ids in tokenizer(list(batch), truncation=True, max_length=model.max_seq_length)["input_ids"]]
    return len(lengths) * max(lengths, default=0)


def measure(spec: EncoderSpec, config: BenchConfig, texts: Sequence[str]) -> dict[str, Any]:
    """Load the encoder, warm it up, time the repeats; the numbers of one bench row."""
    from evalkit.encoders import load_encoder
    from evalkit.encoders.base import device_of
    from evalkit.throughput import MeteredEncoder

    configured = bench_spec(spec, config)
    if configured is None:
        raise EvalkitError(f"backend '{spec.backend}' cannot run on {config.device} in {config.dtype}")
    encoder = load_encoder(configured)
    try:
        device = device_of(encoder)
        meter = MeteredEncoder(encoder, device=device)
        batches = [list(texts[i : i + config.batch_size]) for i in range(0, len(texts), config.batch_size)]
        for batch in (batches * (config.warmup // max(len(batches), 1) + 1))[: config.warmup]:
            meter.measure(batch)
        meter.reset()
        for _ in range(config.repeats):
            for batch in batches:
                meter.measure(batch)
        timed = meter.reset()
        padded = timed.padded_tokens or None
        if padded is None:
            per_pass = [padded_positions(encoder, b) for b in batches]
            padded = None if None in per_pass else config.repeats * sum(p for p in per_pass if p is not None)
        fingerprint = encoder.fingerprint()
    finally:
        encoder.close()
    seconds = timed.encode_seconds
    latencies_ms = [1000 * s for s in timed.latencies]
    return {
        "device": device,
        "spec": str(configured),
        "encode_seconds": round(seconds, 6),
        "sentences": timed.sentences,
        "tokens": timed.tokens,
        "padded_tokens": padded,
        "calls": timed.calls,
        "forward_batches": timed.forward_batches or None,
        "peak_memory_bytes": timed.peak_memory_bytes,
        "peak_memory_kind": "torch.cuda.max_memory_allocated" if device.startswith("cuda") else "process peak RSS",
        # the same keys as an evaluation cell's throughput section, so reports read bench rows and cells alike
        "sentences_per_second": round(timed.sentences / seconds, 3) if seconds else None,
        "tokens_per_second": round(timed.tokens / seconds, 3) if seconds else None,
        "scores": {
            "sentences_per_second": timed.sentences / seconds if seconds else None,
            "tokens_per_second": timed.tokens / seconds if seconds else None,
            "padded_tokens_per_second": padded / seconds if padded and seconds else None,
            "padding_efficiency": timed.tokens / padded if padded else None,
            "latency_p50_ms": percentile(latencies_ms, 50),
            "latency_p95_ms": percentile(latencies_ms, 95),
            "peak_memory_mb": timed.peak_memory_bytes / 2**20,
        },
        "fingerprint": fingerprint,
    }


def bench_result(spec: EncoderSpec, config: BenchConfig, texts: Sequence[str]) -> Any:
    """One bench row as a CellResult (failures become failed rows, as in ``evalkit run``)."""
    from evalkit.environment import environment
    from evalkit.results.schema import CellResult, config_hash

    setup = {"encoder": str(spec), **config.__dict__, "texts": len(texts), "sample": _sample_digest(texts)}
    header: dict[str, Any] = {
        "encoder": str(spec),
        "task": BENCH_TASK,
        "task_type": BENCH_TASK_TYPE,
        "split": config.label,
        "main_metric": MAIN_METRIC,
        "config_hash": config_hash(setup),
    }
    try:
        row = measure(spec, config, texts)
    except Exception as exc:  # one configuration that cannot run (no CUDA, out of memory) must not stop the others
        message = exc.render() if isinstance(exc, EvalkitError) else f"{type(exc).__name__}: {exc}"
        return CellResult(
            **header,
            main_score=None,
            scores={},
            status="failed",
            error=message,
            environment=environment(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    scores = {k: None if v is None else round(float(v), 6) for k, v in row.pop("scores").items()}
    fingerprint = row.pop("fingerprint")
    return CellResult(
        **header,
        main_score=scores[MAIN_METRIC],
        scores=scores,
        n_units=len(texts),
        details={"setup": setup},
        throughput=row,
        environment=environment(),
        encoder_fingerprint=fingerprint,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _sample_digest(texts: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
