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
runtime and its version, the reference model's digest and the sample. A memo is sealed
the way a result's interval is: it names the export it was measured on (the digest of the
export's own digest record, ``.digest.json``, itself checked against the files before any
use) and carries a SHA-256 over its format, key, export and parity. A memo whose seal,
key or export does not match (edited by hand, copied from another export, corrupt, or
from an older evalkit) is ignored with one warning line and parity is measured again:
a faked parity never reaches a result's fingerprint, and a faked bad one never refuses
a good export.
"""

from __future__ import annotations

import hashlib
import json
import stat
import sys
from pathlib import Path

import numpy as np
from pydantic import Field

from evalkit.io.atomic import write_memo
from evalkit.schemas.base import Finite, Name, Schema

FP32_BOUND = 1e-4
SAMPLE_PAIRS = 128
SAMPLE_NAME = f"STSBenchmark dev, first {SAMPLE_PAIRS} pairs ({2 * SAMPLE_PAIRS} sentences, every sentence pair)"
FORMAT = 2  # 2: sealed (digest) and bound to the export
MEMO_MAX_BYTES = 1 << 16  # a memo is under 1 KiB
UNBOUND = "none"  # the export of a memo stored without one (the runtimes always name theirs: the digest of its record)


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
    """The memo file: its key, the export it was measured on, the comparison, and the seal over all of them (checked on read)."""

    format: int
    key: Name
    export: Name
    parity: Parity
    digest: Name


def memo_digest(key: str, export: str, parity: Parity) -> str:
    """SHA-256 over what a memo states: format, key, export and every field of the parity."""
    body = {"format": FORMAT, "key": key, "export": export, "parity": parity.model_dump(mode="json")}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


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


def memo_path(key: str) -> Path:
    return memo_dir() / f"{key[:32]}.json"


def load(key: str, export: str = UNBOUND) -> Parity | None:
    """The memoised parity for ``key`` measured on ``export``, or None: then it is measured again.

    Absent: None, silently. Present but unreadable, of another format, key or export, or not
    matching its seal: None, with one ``evalkit: warning:`` line naming the file.
    """
    from pydantic import ValidationError

    path = memo_path(key)
    try:
        status = path.lstat()
        if not stat.S_ISREG(status.st_mode) or status.st_size > MEMO_MAX_BYTES:
            _ignored(path, "not a regular file of a memo's size")  # a FIFO is never opened, a link never followed
            return None
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        _ignored(path, f"unreadable: {exc.strerror or exc}")
        return None
    try:
        found = json.loads(raw)
        if not isinstance(found, dict) or found.get("format") != FORMAT:
            _ignored(path, "written by another evalkit version, or not a parity memo")
            return None
        memo = ParityMemo.model_validate_json(raw)
    except (ValidationError, ValueError, RecursionError):
        _ignored(path, "not a valid parity memo")
        return None
    if memo.key != key:
        _ignored(path, "its key is not this export's")
    elif memo.export != export:
        _ignored(path, "it was measured on another export")
    elif memo.digest != memo_digest(memo.key, memo.export, memo.parity):
        _ignored(path, "it does not match its digest: edited or corrupt")
    else:
        return memo.parity
    return None


def _ignored(path: Path, why: str) -> None:
    """The one line saying a memo was not used (above a progress bar, if one is drawn)."""
    line = f"evalkit: warning: parity memo {path} ignored ({why}); parity against torch fp32 is measured again"
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:
        tqdm.tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


def store(key: str, parity: Parity, export: str = UNBOUND) -> None:
    """Best effort, atomic (temporary file + rename): a memo that cannot be written only costs a recomputation."""
    memo = ParityMemo(format=FORMAT, key=key, export=export, parity=parity, digest=memo_digest(key, export, parity))
    write_memo(memo_path(key), memo.model_dump_json(indent=1).encode())
