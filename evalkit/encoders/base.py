"""The encoder seam: what every backend provides.

Adapters see only this Protocol. ``fingerprint`` lists everything that makes the
vectors what they are, so caches and result files can key on it without knowing
the backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from evalkit.errors import SpecError
from evalkit.schemas.options import BackendOptions
from evalkit.spec import EncoderSpec

# The ``weights`` entry of a fingerprint is the encoder's *identity*: what its model is, keyed by content
# (``sha256:…``), a pinned hub commit (``hub:ID@SHA``), or an explicit statement that it has none.
NO_IDENTITY = "none:"


def no_identity(why: str) -> str:
    """The ``weights`` entry of an encoder whose vectors evalkit cannot key: never cached, shared or resumed; says why."""
    return NO_IDENTITY + (why or "no identity")


def check_identity(spec: EncoderSpec, fingerprint: dict[str, str]) -> None:
    """A backend's fingerprint must state its identity: ``weights`` (possibly :func:`no_identity`), or corpus-fitted.

    Checked once for every encoder a :class:`Backend` builds, so a new backend that forgets
    its model's identity fails when it loads, instead of being run uncached (or worse,
    cached under a key that cannot tell two models apart) without a word.
    """
    if fingerprint.get("corpus_fitted") == "true":
        return
    weights = fingerprint.get("weights")
    if not isinstance(weights, str) or not weights:
        raise SpecError(
            f"backend '{spec.backend}' built an encoder for '{spec}' whose fingerprint names no 'weights' identity",
            hint="a backend's fingerprint() must give 'weights' (a content digest, or no_identity(why) when it has none)",
        )


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


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block on ``threads`` torch intra-op threads (None: leave the budget alone), then restore the count.

    For a spec's ``threads=N``: the encoder's own forward passes run at N, everything
    around them (and the next encoder) at the run's budget.
    """
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Backend:
    """Base of backends that declare their options: ``check_spec`` validates them before any model loads.

    A subclass sets ``options_model`` (a :class:`~evalkit.schemas.options.BackendOptions`
    subclass; the default takes no options) and reads its typed values with
    ``MyOptions.of(spec)`` (memoised: the up-front check and the constructor share one parse).
    ``share_key`` says which specs may run side by side on one loaded model.

    Third-party factories (``evalkit.encoders`` entry points) that do not subclass ``Backend``
    keep working: evalkit cannot know their options, so it accepts any and passes the spec as
    written; such a backend validates its own options when it is built. Subclass ``Backend``
    to have them checked up front, with one-line errors, like the built-in backends.
    """

    options_model: ClassVar[type[BackendOptions]] = BackendOptions
    declared_threads: int | None = None  # a spec's threads=N: its forward passes run at N (intra_op_threads)

    @classmethod
    def check(cls, spec: EncoderSpec, text: str | None = None) -> BackendOptions:
        """The spec's validated options (one SpecError naming spec and option otherwise); loads nothing."""
        return cls.options_model.of(spec, text)

    @classmethod
    def share_key(cls, spec: EncoderSpec) -> object:
        """Specs with equal keys run on one loaded model; by default every spec runs alone.

        A key must hold everything that can make two specs' vectors differ except what the
        shared model computes per head (pooling, layer): two specs with equal keys get one model.
        """
        return ("solo", str(spec))

    @classmethod
    def checked(cls, encoder: Encoder) -> Encoder:
        """``encoder`` once its fingerprint states an identity (:func:`check_identity`); every built encoder passes here."""
        check_identity(encoder.spec, encoder.fingerprint())
        return encoder


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


def device_of(encoder: object) -> str:
    """The device an encoder runs on, as the encoder itself reports it (decided once, when it loaded).

    Wrappers are looked through; a backend reports ``device`` itself or through its
    ``backbone``; anything else (TF-IDF, static embeddings) runs on the CPU.
    """
    while True:
        for holder in (encoder, getattr(encoder, "backbone", None)):
            device = getattr(holder, "device", None)
            if isinstance(device, str) and device:
                return device
        inner = getattr(encoder, "inner", None)
        if inner is None:
            return "cpu"
        encoder = inner
