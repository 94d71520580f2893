"""The encoder seam: what every backend provides.

Adapters see only this Protocol. ``fingerprint`` lists everything that makes the
vectors what they are, so caches and result files can key on it without knowing
the backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np

from evalkit.spec import EncoderSpec


class Role(StrEnum):
    """Which side of an asymmetric task a text is on (prompts may differ)."""

    QUERY = "query"
    DOCUMENT = "document"


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into a float32 matrix of shape (len(texts), dim)."""

    spec: EncoderSpec

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray: ...

    def fingerprint(self) -> dict[str, str]:
        """What determines the vectors: weights hash, tokenizer, max length, pooling, layer, dtype."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Number of real (non-padding) tokens the encoder sees for ``texts``."""
        ...

    def close(self) -> None:
        """Release the model (memory, GPU) so the next encoder starts clean."""
        ...


@runtime_checkable
class CorpusFitted(Protocol):
    """An encoder whose vectors depend on the whole text collection (e.g. TF-IDF).

    Adapters call ``fit`` with every text of a task before encoding, and such
    encoders are never cached across tasks.
    """

    def fit(self, texts: Sequence[str]) -> None: ...


class BaseEncoder:
    """Shared defaults for backends: whitespace token count, no-op close."""

    spec: EncoderSpec

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(t.split()) for t in texts)

    def close(self) -> None:
        return None

    def fingerprint(self) -> dict[str, str]:
        return {"spec": str(self.spec)}


class EncoderWrapper:
    """Base of encoders that wrap another (metering, caching, sharding): delegates the rest.

    Subclasses override ``encode``; fingerprint, token counts and release are the
    wrapped encoder's, so a wrapper never changes what the vectors are keyed by.
    """

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.spec = inner.spec

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        return self.inner.encode(texts, role)

    def fingerprint(self) -> dict[str, str]:
        return self.inner.fingerprint()

    def count_tokens(self, texts: Sequence[str]) -> int:
        return self.inner.count_tokens(texts)

    def close(self) -> None:
        self.inner.close()


def as_matrix(vectors: object, n: int) -> np.ndarray:
    """Normalise backend output to a 2-D float32 array and check its row count."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(n, -1) if n else array.reshape(0, 0)
    if array.shape[0] != n:
        raise RuntimeError(f"encoder returned {array.shape[0]} vectors for {n} texts")
    return array
