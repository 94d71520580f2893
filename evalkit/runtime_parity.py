"""Parity of a fast runtime against the same model in torch fp32, on a fixed sample.

An exported or quantised model can drift from the model it came from (an exporter bug,
an operator with other numerics, int8 rounding), and a benchmark score alone does not
show it. So every ``onnx:`` / ``openvino:`` encoder is compared once with the torch fp32
pipeline of its source model on :func:`sample_sentences` (the first 128 pairs of the
shipped STS-B dev split: 256 sentences), over every pair of those sentences (32,640):

* ``max_abs_delta_cosine``: the largest |cos_runtime(a, b) - cos_torch(a, b)|;
* ``spearman``: the rank correlation of the two lists of pair similarities.

fp32 runtimes must stay within :data:`FP32_BOUND` (1e-4, the bound infinity-emb holds its
backends to); quantised ones are recorded, not held to it: the quality gate judges them.

The comparison costs a torch load, so it runs once per export and is memoised in
``<evalkit cache>/runtimes/parity/`` under a key that covers the export's digest, the
runtime and its version, the reference model's digest and the sample. A memo file that
does not validate is ignored and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from pydantic import Field

from evalkit.io.atomic import write_memo
from evalkit.schemas.base import Finite, Name, Schema

FP32_BOUND = 1e-4
SAMPLE_PAIRS = 128
SAMPLE_NAME = f"STSBenchmark dev, first {SAMPLE_PAIRS} pairs ({2 * SAMPLE_PAIRS} sentences, every sentence pair)"
FORMAT = 1


class Parity(Schema):
    """One runtime vs torch fp32 comparison (what a result's fingerprint records)."""

    max_abs_delta_cosine: Finite = Field(ge=0)
    spearman: Finite = Field(ge=-1, le=1)
    sentences: int = Field(ge=2)
    pairs: int = Field(ge=1)
    sample: Name

    def within(self, bound: float = FP32_BOUND) -> bool:
        return self.max_abs_delta_cosine <= bound

    def as_fingerprint(self) -> dict[str, str]:
        """String entries for an encoder fingerprint (and so for every result file)."""
        return {
            "parity_max_abs_delta_cosine": f"{self.max_abs_delta_cosine:.3e}",
            "parity_spearman": f"{self.spearman:.7f}",
            "parity_sample": self.sample,
        }


class ParityMemo(Schema):
    """The memo file: its key (checked on read) and the comparison."""

    format: int
    key: Name
    parity: Parity


def sample_sentences() -> list[str]:
    """The fixed parity sample: sentence1, sentence2 of the first SAMPLE_PAIRS pairs of the shipped STS-B dev split."""
    from evalkit.samples import stsb_dev_pairs

    sentences = []
    for first, second in stsb_dev_pairs(SAMPLE_PAIRS):
        sentences += [first, second]
    return sentences


def compare(reference: np.ndarray, candidate: np.ndarray, sample: str = SAMPLE_NAME) -> Parity:
    """Parity of ``candidate`` against ``reference`` (same sentences, same order) over every sentence pair."""
    from evalkit.stats import spearman

    if reference.shape != candidate.shape or reference.ndim != 2 or reference.shape[0] < 2:
        raise ValueError(f"parity needs two (n >= 2, dim) matrices of one shape, got {reference.shape} and {candidate.shape}")
    upper = np.triu_indices(reference.shape[0], 1)
    ref = _cosines(reference)[upper]
    cand = _cosines(candidate)[upper]
    return Parity(
        max_abs_delta_cosine=float(np.max(np.abs(ref - cand))),
        spearman=float(spearman(ref, cand)),
        sentences=int(reference.shape[0]),
        pairs=int(ref.size),
        sample=sample,
    )


def _cosines(matrix: np.ndarray) -> np.ndarray:
    vectors = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    return unit @ unit.T


def memo_key(**parts: str) -> str:
    """A key over everything the comparison depends on (export digest, runtime, reference, sample, ...)."""
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def memo_dir() -> Path:
    from evalkit.catalogue import cache_dir

    return cache_dir() / "runtimes" / "parity"


def load(key: str) -> Parity | None:
    """The memoised parity for ``key``, or None (absent, unreadable or not valid: then it is recomputed)."""
    from pydantic import ValidationError

    path = memo_dir() / f"{key[:32]}.json"
    try:
        memo = ParityMemo.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return None
    return memo.parity if memo.key == key and memo.format == FORMAT else None


def store(key: str, parity: Parity) -> None:
    """Best effort, atomic (temporary file + rename): a memo that cannot be written only costs a recomputation."""
    folder = memo_dir()
    data = ParityMemo(format=FORMAT, key=key, parity=parity).model_dump_json(indent=1).encode()
    write_memo(folder / f"{key[:32]}.json", data)
