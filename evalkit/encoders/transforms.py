"""Post-pooling transforms, declared as data: whitening, Matryoshka truncation, storage precision.

Spec options (:class:`~evalkit.schemas.options.TransformOptions`, taken by every dense backend):
``whiten=true`` (+ ``whiten_dim=K``), ``truncate_dim=N``, ``precision=float32|float16|int8|uint8|binary|ubinary``
and ``calibration=task|bench``. Order of operations, always::

    pooling (the backend) → whiten → truncate (→ re-normalise) → quantise

* **whiten** — BERT-whitening (Su et al. 2021, the reference code's ``compute_kernel_bias`` and
  ``transform_and_normalize``): mean μ and covariance Σ (``np.cov``) of the pooled vectors of
  *every text of the task* (a corpus-fitted transform, fitted like TF-IDF through ``fit``),
  ``U, S = svd(Σ)``, ``x ↦ normalise((x − μ) · U[:, :K] · diag(S[:K])^-½)``. K defaults to the
  components that vary over the task (a constant direction cannot be whitened, 1/√0, and tells no
  two texts apart); a ``whiten_dim`` above that (fewer distinct texts than K + 1) is refused.
* **truncate** — keep the first N dimensions. sentence-transformers re-normalises a truncated
  vector only when asked to (``encode(truncate_dim=N, normalize_embeddings=True)`` truncates,
  *then* normalises); evalkit does the same: re-normalised when the spec says ``normalize=true``,
  left as it is otherwise (a model whose own Normalize module made full-size unit vectors gives
  shorter, non-unit ones, exactly as in sentence-transformers). Cosine scores are unaffected.
* **quantise** — ``sentence_transformers.quantize_embeddings``, operation for operation (a test
  compares them): int8/uint8 map each dimension's [min, max] to 256 buckets, the ranges coming
  from the task's own vectors (``calibration=task``, the default: the same ranges for every text,
  as sentence-transformers' EmbeddingSimilarityEvaluator calibrates both sides together) or from
  the shipped bench sample (``calibration=bench``: ``tasks/data/bench/texts.jsonl``, 512 STS-B
  sentences and SciFact abstracts, encoded once per loaded spec); binary/ubinary keep the sign
  bit, packed eight to a byte. float16 is a cast (as MTEB's CompressionWrapper; not in
  sentence-transformers). Whitening and int8 ranges see the same vectors the adapter will score.

**Scoring.** The adapters score what MTEB's ``CompressionWrapper`` and sentence-transformers'
``EmbeddingSimilarityEvaluator`` score: int8/uint8 codes cast to float, binary/ubinary *unpacked*
to {0, 1} (both give the same bits, so the same scores), then the task's usual similarity
(cosine for every shipped task). Neither evaluator uses Hamming distance; sentence-transformers'
``semantic_search_faiss`` / ``_usearch`` do, and Hamming ranks like the dot product of ±1 codes,
not like the cosine of {0, 1} codes, so a binary index without rescoring can rank differently
from the number reported here (and by MTEB).

A transform changes no forward pass: the cache stores the untransformed vectors, and specs that
differ only in these options share one loaded model and one pass (:class:`SharedPass`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from evalkit.encoders.base import Backend, CorpusFitted, Encoder, EncoderWrapper, Role
from evalkit.errors import EvalkitError
from evalkit.schemas.options import TRANSFORM_FIELDS, TransformOptions

if TYPE_CHECKING:
    from evalkit.spec import EncoderSpec

Source = Callable[[list[str], Role | None], np.ndarray]
"""Where a transform gets untransformed vectors: (texts, role) -> float32 matrix."""


# ---- precisions, as data ---------------------------------------------------------------------------


def scalar_ranges(vectors: np.ndarray) -> np.ndarray:
    """Per-dimension [min; max] (2 × dim, float32), as ``quantize_embeddings`` computes them."""
    if len(vectors) < 2:
        raise EvalkitError(
            f"int8/uint8 ranges cannot be calibrated on {len(vectors)} vector(s)",
            field="precision",
            hint="the task has too few distinct texts; use calibration=bench or another precision",
        )
    return np.vstack((np.min(vectors, axis=0), np.max(vectors, axis=0))).astype(np.float32, copy=False)


def _buckets(vectors: np.ndarray, ranges: np.ndarray | None) -> np.ndarray:
    """``quantize_embeddings``' int8/uint8 buckets 0..255, operation for operation (float32 arithmetic)."""
    assert ranges is not None
    ranges = ranges.astype(np.float32, copy=False)
    starts = ranges[0, :]
    steps = (ranges[1, :] - starts) / 255
    steps = np.where(steps == 0, 1, steps)
    return np.clip(np.floor((vectors - starts) / steps), 0, 255)


def _unpack(packed: np.ndarray, dim: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1)[:, :dim].astype(np.float32)


@dataclass(frozen=True)
class Precision:
    """One storage precision: how float vectors become stored codes, and what the adapters score."""

    name: str
    description: str
    quantize: Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (float32 vectors, ranges) -> stored codes
    decode: Callable[[np.ndarray, int], np.ndarray]  # (stored codes, dim) -> the float32 matrix adapters score
    scalar: bool = False  # int8/uint8: needs calibration ranges


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("float32", "4 bytes a dimension (no change)", lambda x, _: x, lambda c, _: c),
        Precision(
            "float16",
            "2 bytes a dimension (a cast; scored as float32)",
            lambda x, _: x.astype(np.float16),
            lambda c, _: c.astype(np.float32),
        ),
        Precision(
            "int8",
            "1 byte a dimension: 256 buckets over each dimension's calibrated range, minus 128",
            lambda x, r: (_buckets(x, r) - 128).astype(np.int8),
            lambda c, _: c.astype(np.float32),
            scalar=True,
        ),
        Precision(
            "uint8",
            "1 byte a dimension: 256 buckets over each dimension's calibrated range",
            lambda x, r: _buckets(x, r).astype(np.uint8),
            lambda c, _: c.astype(np.float32),
            scalar=True,
        ),
        Precision(
            "binary",
            "1 bit a dimension (x > 0), packed, as int8 (byte − 128); scored unpacked to {0, 1}",
            lambda x, _: (np.packbits(x > 0, axis=-1) - 128).astype(np.int8),
            lambda c, dim: _unpack((c.astype(np.int16) + 128).astype(np.uint8), dim),
        ),
        Precision(
            "ubinary",
            "1 bit a dimension (x > 0), packed, as uint8; scored unpacked to {0, 1}",
            lambda x, _: np.packbits(x > 0, axis=-1),
            lambda c, dim: _unpack(c, dim),
        ),
    )
}


def _bench_sample() -> list[str]:
    from evalkit.samples import bench_texts

    return bench_texts()


CALIBRATION_SAMPLES: dict[str, Callable[[], list[str]]] = {"bench": _bench_sample}
"""Named calibration samples for int8/uint8 ranges (``calibration=task`` uses the task's own texts)."""


@dataclass(frozen=True)
class VectorInfo:
    """What one stored vector is: its dimension, precision and size in bytes."""

    dim: int
    dtype: str
    bytes: int


def float32_info(dim: int) -> VectorInfo:
    return VectorInfo(dim, "float32", 4 * dim)


# ---- whitening and truncation ------------------------------------------------------------------------


def normalize(x: np.ndarray) -> np.ndarray:
    """L2 rows, as ``torch.nn.functional.normalize`` (norm clamped at 1e-12)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    return (x / np.maximum(norms, 1e-12)[:, None]).astype(x.dtype, copy=False)


VARIES = 1e-10
"""A covariance component varies when its variance exceeds this fraction of the largest (float noise sits near 1e-16)."""


@dataclass(frozen=True)
class Whitening:
    """BERT-whitening fitted on one task's vectors: ``normalise((x − mean) @ kernel)``."""

    mean: np.ndarray  # (dim,) float64
    kernel: np.ndarray  # (dim, K) float64

    @classmethod
    def fit(cls, vectors: np.ndarray, keep: int | None) -> Whitening:
        """Su et al.'s ``compute_kernel_bias``: ``np.cov``, SVD, ``U · diag(S)^-½``, first K columns.

        Without ``keep``, every component that varies over the task is kept: a direction
        with no variance at all (``all-MiniLM-L6-v2``'s mean-pooled last layer has 3, of 384,
        on STS-B: dimensions that are constant) has no whitening (1/√0), and carries nothing
        that tells two texts apart, so it is dropped; the result's ``vector_dim`` says how many
        were kept. Asking for more components (``whiten_dim``) than vary is refused.
        """
        x = np.asarray(vectors, dtype=np.float64)
        n, dim = x.shape
        if keep is not None and keep > dim:
            raise EvalkitError(f"whiten_dim={keep} is larger than the vectors' {dim} dimensions", field="whiten_dim")
        if n < 2:
            raise EvalkitError(f"whitening needs at least 2 distinct texts; the task has {n}", field="whiten")
        u, s, _ = np.linalg.svd(np.cov(x.T))
        rank = int(np.sum(s > s[0] * VARIES)) if s[0] > 0 else 0
        k = rank if keep is None else keep
        if rank == 0 or rank < k:
            raise EvalkitError(
                f"whitening is undefined here: the task's {n} distinct texts vary along {rank} of the {k} components asked for",
                field="whiten_dim" if keep else "whiten",
                hint=f"set whiten_dim to at most {rank}" if rank else "the vectors do not vary",
            )
        return cls(x.mean(axis=0), u[:, :k] / np.sqrt(s[:k]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return normalize(((np.asarray(x, dtype=np.float64) - self.mean) @ self.kernel).astype(np.float32))


def truncate(x: np.ndarray, dim: int, renormalize: bool) -> np.ndarray:
    """The first ``dim`` dimensions (re-normalised when the spec asks for normalised vectors)."""
    if dim > x.shape[1]:
        raise EvalkitError(
            f"truncate_dim={dim} is larger than the vectors' {x.shape[1]} dimensions",
            field="truncate_dim",
            hint=f"use at most {x.shape[1]}",
        )
    out = np.ascontiguousarray(x[:, :dim])
    return normalize(out) if renormalize else out


# ---- a spec's transform ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """The transform options of one spec (typed), in the fixed order whiten → truncate → quantise."""

    whiten: bool = False
    whiten_dim: int | None = None
    truncate_dim: int | None = None
    precision: str = "float32"
    calibration: str = "task"
    renormalize: bool = False  # truncation re-normalises: the spec asked for normalize=true

    @classmethod
    def from_options(cls, options: TransformOptions) -> Transform | None:
        """The transform the options ask for; None when they ask for none (the vectors pass unchanged)."""
        transform = cls(
            whiten=options.whiten,
            whiten_dim=options.whiten_dim,
            truncate_dim=options.truncate_dim,
            precision=options.precision,
            calibration=options.calibration,
            renormalize=getattr(options, "normalize", None) is True,
        )
        return None if transform.identity else transform

    @property
    def identity(self) -> bool:
        return not self.whiten and self.truncate_dim is None and self.precision == "float32"

    @property
    def scalar(self) -> bool:
        return PRECISIONS[self.precision].scalar

    @property
    def fits_on_task(self) -> bool:
        """Whether it must see every text of the task first (whitening, int8/uint8 ranges from the task)."""
        return self.whiten or (self.scalar and self.calibration == "task")

    def fingerprint(self) -> dict[str, str]:
        """What it adds to the encoder's fingerprint (what determines the transformed vectors)."""
        out = {"transform": self.describe()}
        if self.fits_on_task:
            out["corpus_fitted"] = "true"  # never cache transformed vectors: they depend on the task
        return out

    def describe(self) -> str:
        steps = []
        if self.whiten:
            steps.append(f"whiten({self.whiten_dim or 'all'})")
        if self.truncate_dim is not None:
            steps.append(f"truncate({self.truncate_dim}{', normalised' if self.renormalize else ''})")
        if self.precision != "float32":
            steps.append(self.precision + (f"({self.calibration} ranges)" if self.scalar else ""))
        return " → ".join(steps) or "none"


class Transformer:
    """A spec's transform with its fitted state (whitening, ranges); raw vectors come from ``source``.

    ``fit(texts)`` fits what depends on the task (corpus-fitted, like TF-IDF); ``reset``
    forgets it, so a cell never uses another task's statistics: an adapter that does not
    fit first gets an error (``strict``), or, outside evaluation (``strict=False``), the
    statistics of the vectors being transformed, as ``quantize_embeddings`` does without ranges.
    """

    def __init__(self, transform: Transform, source: Source, strict: bool = True, sample_source: Source | None = None) -> None:
        self.transform = transform
        self.precision = PRECISIONS[transform.precision]
        self.source = source
        self.sample_source = sample_source or source  # the calibration sample: once per loaded spec, outside the task's meter
        self.strict = strict
        self.whitening: Whitening | None = None
        self.ranges: np.ndarray | None = None
        self.fitted = False
        self._sample: np.ndarray | None = None  # raw vectors of the calibration sample (kept across tasks)

    def reset(self) -> None:
        self.whitening, self.ranges, self.fitted = None, None, False

    def fit(self, texts: Sequence[str]) -> None:
        if self.transform.fits_on_task:
            self._fit(np.asarray(self.source(list(texts), None), dtype=np.float32))

    def _fit(self, raw: np.ndarray) -> None:
        t = self.transform
        self.whitening = Whitening.fit(raw, t.whiten_dim) if t.whiten else None
        self.ranges = scalar_ranges(self.floats(raw)) if t.scalar and t.calibration == "task" else None
        self.fitted = True

    def floats(self, raw: np.ndarray) -> np.ndarray:
        """Whitened and truncated, still float32: the stage before quantisation."""
        x = np.asarray(raw, dtype=np.float32)
        if self.whitening is not None:
            x = self.whitening(x)
        if self.transform.truncate_dim is not None:
            x = truncate(x, self.transform.truncate_dim, self.transform.renormalize)
        return x

    def _calibration_ranges(self) -> np.ndarray:
        if self._sample is None:
            texts = CALIBRATION_SAMPLES[self.transform.calibration]()
            self._sample = np.asarray(self.sample_source(texts, None), dtype=np.float32)
        return scalar_ranges(self.floats(self._sample))

    def __call__(self, raw: np.ndarray) -> tuple[np.ndarray, VectorInfo]:
        """The vectors the adapter scores, and what one stored vector is."""
        t = self.transform
        if t.fits_on_task and not self.fitted:
            if self.strict:
                raise EvalkitError(
                    f"the transform '{t.describe()}' must be fitted on the task's texts first, and this task type did not fit it",
                    hint="its adapter should call evalkit.adapters.base.fit_if_needed before encoding",
                )
            self._fit(np.asarray(raw, dtype=np.float32))  # this call's own statistics, for this call only
            try:
                return self._apply(raw)
            finally:
                self.reset()
        return self._apply(raw)

    def _apply(self, raw: np.ndarray) -> tuple[np.ndarray, VectorInfo]:
        t = self.transform
        x = self.floats(raw)
        ranges = None
        if t.scalar:
            if self.ranges is None:  # calibration sample: after this task's whitening, so computed per fit
                self.ranges = self._calibration_ranges()
            ranges = self.ranges
        with np.errstate(over="ignore"):
            codes = self.precision.quantize(x, ranges)
        scored = self.precision.decode(codes, x.shape[1])
        if not np.isfinite(scored).all():
            raise EvalkitError(
                f"the transformed vectors ({t.describe()}) are not finite",
                field="precision" if t.precision == "float16" else None,
                hint="float16 holds values up to 65504" if t.precision == "float16" else None,
            )
        row_bytes = int(codes.shape[1] * codes.itemsize) if codes.ndim == 2 else 0
        return scored, VectorInfo(int(x.shape[1]), t.precision, row_bytes)


# ---- specs, and the encoders around a transform ---------------------------------------------------


def split_spec(spec: EncoderSpec) -> tuple[EncoderSpec, Transform | None]:
    """The spec the model is loaded with (transform options removed) and the transform (None: none asked for).

    Backends whose options model is not a :class:`TransformOptions` keep their spec whole.
    """
    from evalkit.encoders import backend

    factory = backend(spec.backend)
    if not (isinstance(factory, type) and issubclass(factory, Backend) and issubclass(factory.options_model, TransformOptions)):
        return spec, None
    options = factory.options_model.of(spec)  # memoised: check_spec parsed it already
    assert isinstance(options, TransformOptions)
    present = [key for key in TRANSFORM_FIELDS if key in spec.opts]
    return (spec.without(*present) if present else spec), Transform.from_options(options)


class TransformedEncoder(EncoderWrapper):
    """An encoder whose vectors pass through a transform: what ``load_encoder`` returns for a spec with one.

    Evaluation builds its own stack (the shared pass, the cache of untransformed vectors,
    the meter: ``evalkit.execution.local``); this wrapper is for direct use. Unfitted, it
    calibrates on the vectors of each call, as ``quantize_embeddings`` does without ranges.
    """

    def __init__(self, inner: Encoder, transform: Transform, spec: EncoderSpec) -> None:
        super().__init__(inner)
        self.spec = spec
        self.transformer = Transformer(transform, lambda texts, role: np.asarray(inner.encode(texts, role), dtype=np.float32), strict=False)
        self.last: VectorInfo | None = None

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        vectors, self.last = self.transformer(np.asarray(self.inner.encode(texts, role), dtype=np.float32))
        return vectors

    def fit(self, texts: Sequence[str]) -> None:
        if isinstance(self.inner, CorpusFitted):
            self.inner.fit(texts)
        self.transformer.fit(texts)

    def fingerprint(self) -> dict[str, str]:
        return {**self.inner.fingerprint(), **self.transformer.transform.fingerprint()}


# ---- one forward pass for every transform of a model ---------------------------------------------

SHARED_BYTES = 2 << 30
"""Most bytes of vectors a :class:`SharedPass` keeps for one task; beyond that, siblings encode again."""


def uses_role(encoder: object) -> bool:
    """Whether the encoder's vectors may depend on the role; assumed so unless it says otherwise (``uses_role()``)."""
    while True:
        declared = getattr(encoder, "uses_role", None)
        if callable(declared):
            return bool(declared())
        inner = getattr(encoder, "inner", None)
        if inner is None:
            return True
        encoder = inner


class SharedPass:
    """One task's untransformed vectors of one loaded model, by (role, text).

    Every spec that runs on the model (its transform variants, the plain spec) reads its
    vectors here first, so a sweep over transforms costs one forward pass; a corpus-fitted
    transform's ``fit`` fills it and the adapter's encoding reads it back. An encoder that
    declares its vectors role-independent (``uses_role() == False``) shares one entry per text
    across roles, so a fit over queries and documents together serves both roles.
    The executor clears it after each task; it holds at most ``limit`` bytes.
    """

    def __init__(self, role_blind: bool = False, limit: int = SHARED_BYTES) -> None:
        self.role_blind = role_blind
        self.limit = limit
        self._index: dict[str | None, dict[str, tuple[int, int]]] = {}  # role -> text -> (block, row)
        self._blocks: list[np.ndarray] = []
        self._texts: list[tuple[str | None, list[str]]] = []  # each block's role and texts, in order
        self._bytes = 0

    def __len__(self) -> int:
        return sum(len(index) for index in self._index.values())

    def get(self, texts: Sequence[str], role: Role | None, compute: Callable[[list[str]], np.ndarray]) -> tuple[np.ndarray, int]:
        """The vectors of ``texts`` (``compute`` runs on the missing ones only), and how many were already here."""
        key = None if self.role_blind or role is None else role.value
        for block, (owner, stored) in enumerate(self._texts):  # a sibling asking for exactly what was encoded (the usual case)
            if owner == key and len(stored) == len(texts) and stored == list(texts):
                return self._blocks[block].copy(), len(texts)
        index = self._index.setdefault(key, {})
        rows = list(map(index.get, texts))
        missing = [i for i, r in enumerate(rows) if r is None]
        if len(missing) == len(texts):
            fresh = np.asarray(compute(list(texts)), dtype=np.float32)
            self._store(key, texts, fresh)
            return fresh, 0
        dim = self._blocks[0].shape[1]
        computed = None
        if missing:
            computed = np.asarray(compute([texts[i] for i in missing]), dtype=np.float32)
            if computed.ndim != 2 or computed.shape[1] != dim:  # the model changed under us: trust only its new output
                self.clear()
                return np.asarray(compute(list(texts)), dtype=np.float32), 0
        out = np.empty((len(texts), dim), dtype=np.float32)
        found = np.fromiter((i for i, r in enumerate(rows) if r is not None), dtype=np.int64)
        where = np.asarray([r for r in rows if r is not None], dtype=np.int64).reshape(-1, 2)
        for block in np.unique(where[:, 0]):
            mine = where[:, 0] == block
            out[found[mine]] = self._blocks[int(block)][where[mine, 1]]
        if computed is not None:
            out[missing] = computed
            self._store(key, [texts[i] for i in missing], computed)
        return out, len(found)

    def _store(self, key: str | None, texts: Sequence[str], vectors: np.ndarray) -> None:
        if vectors.ndim != 2 or len(vectors) != len(texts) or self._bytes + vectors.nbytes > self.limit:
            return
        if self._blocks and vectors.shape[1] != self._blocks[0].shape[1]:
            return
        block = len(self._blocks)
        self._blocks.append(vectors)
        self._texts.append((key, list(texts)))
        self._bytes += vectors.nbytes
        index = self._index.setdefault(key, {})
        for row, text in enumerate(texts):
            index.setdefault(text, (block, row))

    def clear(self) -> None:
        self._index.clear()
        self._blocks.clear()
        self._texts.clear()
        self._bytes = 0
