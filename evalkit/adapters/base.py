"""The adapter seam: a task type's protocol for turning vectors into scores."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import sys
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np

from evalkit.encoders.base import CorpusFitted, Encoder, EncoderWrapper, Role
from evalkit.errors import DataError, EvalkitError
from evalkit.schemas.base import Schema
from evalkit.schemas.task import NoSettings

if TYPE_CHECKING:
    from evalkit.taskspec import TaskSpec  # loading a task file validates it against the adapters: TaskSpec sits above


@dataclass(frozen=True)
class TaskOutcome:
    """What an adapter hands back: scores, and per-unit outcomes for intervals."""

    main_metric: str
    scores: Mapping[str, float | None]
    n_units: int
    units: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # data-quality notes (``file:line: ...``), stored in the result file

    @property
    def main_score(self) -> float | None:
        return self.scores.get(self.main_metric)


class Adapter(Protocol):
    """Scores one encoder on one task split, following the field's protocol for the type.

    Conventions every adapter follows: ``Settings`` is the Schema of its ``[settings]``
    table (read with ``task.settings_as(self.Settings)``; validated when the task file
    loads); ``metrics`` names every score it reports (a ``main_score`` outside it is
    refused when the task file loads; an adapter whose names depend on its settings
    defines ``metric_names(settings)`` instead); ``validate(task, split)`` reads the
    split's data and refuses bad input before any model loads, printing data-quality
    warnings once (:func:`emit`); ``evaluate`` returns them again in ``TaskOutcome.warnings``.
    An adapter may declare ``unit_bounds`` (unit key → closed range): a stored result
    whose per-unit values leave it is refused when read (:func:`evalkit.reading.check_bounds`).
    """

    task_type: ClassVar[str]
    main_metric: ClassVar[str]
    Settings: ClassVar[type[Schema]]
    metrics: ClassVar[tuple[str, ...]]

    def validate(self, task: TaskSpec, split: str | None = None) -> None:
        """Check settings and the data of ``split`` (default: the task's) before any model loads: DataError naming file, line, field."""
        ...

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome: ...

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        """The main score recomputed on a resample of the units (``index`` into them): bootstrap intervals."""
        ...


# ---- every vector an adapter scores: finite, real, and on a scale float32 arithmetic can score -----
RESCALE_BELOW, RESCALE_ABOVE = 2.0**-16, 2.0**32
"""A vector whose largest magnitude lies in this range is scored as it is; outside it a scale-invariant task rescales (exactly)."""
ROW_SAFE_BAND = (2.0**-60, 2.0**56)
"""Unscaled vectors outside this band get their own power of two (cosine types): inside it float32 squares and sums of up to
2**12 squares stay normal, and a vector is scored exactly as MTEB scores it (sklearn leaves one of length < 1.2e-6
unnormalised; rescaling it would move the published numbers, e.g. the tutorial's one-number logits)."""
UNIFORM_BAND = (2.0**-40, 2.0**48)
"""Under one common power of two (fixed by the first call, which it brings into the range above), later calls' magnitudes may
lie in this wider band: products and squares of float32 values stay normal (2**-126..2**128); beyond it, a refusal."""
FLOAT32_MAX, FLOAT32_TINY = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)
Scaling = Literal["none", "uniform", "row"]
"""How a task type may rescale vectors: not at all (its metrics depend on scale), all by one power of two, or each its own."""
_WHY = {
    "uniform": "its metrics depend on the vectors' relative magnitudes, so they can only be rescaled all alike",
    "none": "its metrics depend on scale, so evalkit does not rescale them",
}


class VectorCheck(EncoderWrapper):
    """The encoder as an adapter sees it: every ``encode`` result checked, then handed over as float32.

    Built by :class:`TaskAdapter` around the encoder of each ``evaluate`` call, so no task
    type can score a vector that did not pass here. The encoder's array is read in its own
    dtype (float64, float16, integers): anything but real numbers (complex, bool, objects,
    strings), a width of 0, a width other than that of its earlier vectors in the task,
    a NaN or infinite value, or vectors that are all zero (cosine undefined) is an
    EvalkitError naming the encoder (the encoder is at fault, not the task's data).

    Finite vectors whose largest magnitude lies outside ``RESCALE_BELOW..RESCALE_ABOVE``
    (squares that overflow float32, norms read as zero, sklearn's and torch's epsilon
    guards) are multiplied in float64 by a power of two (exact), then cast to float32, as
    the task type's ``scaling`` allows (:meth:`TaskAdapter.vector_scaling`):

    - ``"row"`` (every metric scored by cosine: STS, summarization, cosine retrieval and
      reranking): all vectors by one power of two when one brings them all into the range
      (fixed by the first call of the evaluation); otherwise each vector outside the range
      by its own, and the metrics that depend on a vector's length (``row_dependent``:
      STS's Euclidean, Manhattan and dot scores, summarization's dot scores) are reported
      as None. Vectors already in the range are never touched when none needs it.
    - ``"uniform"`` (k-means, pair classification's distances, dot-product search): one
      power of two for all, or a refusal when the vectors' magnitudes are too far apart.
    - ``"none"`` (a classifier's regularisation depends on scale): unchanged, or a
      refusal when float32 cannot hold them.

    Every rescaling is said in the result's warnings (:meth:`annotate`).
    """

    def __init__(
        self,
        inner: Encoder,
        task_type: str,
        scale_invariant: bool | None = None,
        scaling: Scaling | None = None,
        row_dependent: Sequence[str] = (),
    ) -> None:
        super().__init__(inner)
        self.task_type = task_type
        self.scaling: Scaling = scaling or ("uniform" if scale_invariant else "none")
        self.scale_invariant = self.scaling != "none"
        self.row_dependent = tuple(row_dependent)  # score-name prefixes that change when one vector is rescaled alone
        self.exponent: int | None = None  # vectors are multiplied by 2**-exponent; fixed at the first non-zero call
        self.peak = 0.0
        self.width: int | None = None
        self.rows_rescaled = 0  # vectors given their own power of two ("row" scaling)
        self.row_magnitudes = (math.inf, 0.0)  # the smallest and largest magnitude among those

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        return self.check(self.inner.encode(texts, role), texts)

    def _refuse(self, message: str, hint: str) -> EvalkitError:
        return EvalkitError(f"encoder {self.spec} {message}"[:400], hint=hint)

    def check(self, raw: object, texts: Sequence[str]) -> np.ndarray:
        vectors = self._real(raw, texts)
        magnitudes = np.max(np.abs(vectors), axis=1)
        if not magnitudes.any() and any(t.strip() for t in texts):
            raise self._refuse(
                f"returned all-zero vectors for all {len(texts)} texts of a call (first: {texts[0][:60]!r}); cosine is undefined",
                "the encoder is at fault, not the task's data: check its weights and pooling; values below float32's "
                "smallest number (1.2e-38) read as zero when cast to float32 before evalkit sees them",
            )
        exponents = self._exponents(magnitudes)
        if magnitudes.any():
            self.peak = max(self.peak, float(magnitudes.max()))
        if exponents is not None:
            with np.errstate(under="ignore"):  # a row's values far below its largest may fall under float64: as in float32
                vectors = np.ldexp(vectors, -exponents[:, np.newaxis])  # exact for every value that matters
        return np.asarray(vectors, dtype=np.float32)

    def _real(self, raw: object, texts: Sequence[str]) -> np.ndarray:
        """``raw`` as a float64 (n, dim) array of finite numbers, in the encoder's own values (nothing cast away)."""
        try:
            vectors = np.asarray(raw)
        except Exception as exc:  # an object numpy cannot read as an array
            raise self._refuse(
                f"returned {type(raw).__name__}, not an array of vectors ({exc})", "encode() must return (n, dim) numbers"
            ) from None
        kind = vectors.dtype.kind
        if kind not in "fiu":
            what = {"c": "complex", "b": "boolean", "O": "Python object", "U": "string", "S": "bytes"}.get(kind, str(vectors.dtype))
            raise self._refuse(
                f"returned {what} values ({vectors.dtype}), not real numbers",
                "encode() must return real numbers (evalkit does not drop an imaginary part or guess what objects mean)",
            )
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise self._refuse(
                f"returned an array of {vectors.dtype} with shape {vectors.shape} for {len(texts)} texts",
                "encode() must return one row of numbers per text: shape (n, dim)",
            )
        if vectors.shape[1] == 0:
            raise self._refuse(f"returned vectors of width 0 for {len(texts)} texts", "encode() must return vectors of at least one number")
        if self.width is not None and vectors.shape[1] != self.width:
            raise self._refuse(
                f"returned vectors of width {vectors.shape[1]} in this task after vectors of width {self.width}",
                "every vector of a task (queries and documents alike) must have one width: check the model's roles and prompts",
            )
        self.width = vectors.shape[1]
        if kind == "f" and vectors.dtype.itemsize > 8:  # long double: finite there, perhaps beyond float64
            self._finite(vectors, texts)
            with np.errstate(over="ignore"):
                wide = vectors.astype(np.float64)
            if not np.isfinite(wide).all():
                raise self._refuse(
                    f"returned {vectors.dtype} values beyond float64's range (1.8e308)", "scale the vectors down in the encoder"
                )
            vectors = wide
        vectors = np.asarray(vectors, dtype=np.float64)  # exact for float16/32 and for integers up to 2**53
        self._finite(vectors, texts)
        return vectors

    def _finite(self, vectors: np.ndarray, texts: Sequence[str]) -> None:
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            kinds = " and ".join(k for k, f in (("NaN", np.isnan), ("infinite", np.isinf)) if f(vectors[bad]).any())
            raise self._refuse(
                f"returned {int(bad.sum())} of {len(texts)} vectors with {kinds} values (first: text {texts[first][:60]!r})",
                "the encoder is at fault, not the task's data: check the model's weights and dtype (an overflow in float16), "
                "or a division by a zero norm",
            )

    def _exponents(self, magnitudes: np.ndarray) -> np.ndarray | None:
        """Each vector's power of two (vectors are multiplied by ``2**-e``), or None when none is rescaled."""
        nonzero = magnitudes > 0
        if not nonzero.any():
            return None
        low, high = float(magnitudes[nonzero].min()), float(magnitudes[nonzero].max())
        if self.scaling == "none":
            if high > FLOAT32_MAX or low < FLOAT32_TINY:
                raise self._refuse(
                    f"returned vectors of magnitude {low:.3g} to {high:.3g}, beyond float32's range (1.2e-38 to 3.4e38), in which "
                    f"task type '{self.task_type}' scores them ({_WHY['none']})",
                    "scale the vectors (normalise them) in the encoder",
                )
            return None
        if self.exponent is None:
            # cosine types: the largest decides (a short vector is MTEB's to normalise or not); types that compare lengths:
            # every vector must fit, and one exact power of two for all changes no rank
            fits = high <= RESCALE_ABOVE and (high if self.scaling == "row" else low) >= RESCALE_BELOW
            if fits:
                self.exponent = 0
            else:
                common = _common_exponent(low, high)
                if common is None and self.scaling == "uniform":
                    raise self._apart(low, high)
                self.exponent = 0 if common is None else common
        exponents = np.full(magnitudes.shape, self.exponent, dtype=np.int64)
        with np.errstate(over="ignore", under="ignore"):  # an overflow reads as out of range, as it is
            scaled = np.ldexp(magnitudes, -exponents)
        if self.scaling != "row":
            below, above = UNIFORM_BAND
        elif self.exponent:  # a common power of two moved every vector: bring back those it moved out of range
            below, above = RESCALE_BELOW, RESCALE_ABOVE
        else:  # vectors as the encoder gave them: touched only where float32 itself fails, so MTEB's numbers stand
            below, above = ROW_SAFE_BAND
        outside = nonzero & ((scaled < below) | (scaled > above))
        if outside.any():
            if self.scaling == "uniform":
                raise self._apart(low, high)
            exponents[outside] = np.frexp(magnitudes[outside])[1]  # each such vector's largest value to 0.5..1
            self.rows_rescaled += int(outside.sum())
            apart = magnitudes[outside]
            self.row_magnitudes = (min(self.row_magnitudes[0], float(apart.min())), max(self.row_magnitudes[1], float(apart.max())))
        return exponents if exponents.any() else None

    def _apart(self, low: float, high: float) -> EvalkitError:
        return self._refuse(
            f"returned vectors of magnitudes {low:.3g} to {high:.3g}, too far apart (with its earlier ones in this task) for one "
            f"power of two to bring them all to a scale float32 can score; task type '{self.task_type}': {_WHY['uniform']}",
            "the encoder's vectors differ in length by more than 2**48: normalise them in the encoder",
        )

    def annotate(self, outcome: Any) -> Any:
        """The outcome, with a warning saying the vectors were rescaled (when they were), length-dependent metrics dropped."""
        if not isinstance(outcome, TaskOutcome):
            return outcome
        notes, scores = list(outcome.warnings), dict(outcome.scores)
        if self.exponent:
            notes.append(
                f"encoder {self.spec}: vectors of magnitude up to {self.peak:.3g} scaled by 2**{-self.exponent} before scoring "
                f"(exact; every metric of task type '{self.task_type}' is scale-invariant)"
            )
        if self.rows_rescaled:
            dropped = [name for name in scores if name != outcome.main_metric and name.startswith(self.row_dependent)]
            low, high = self.row_magnitudes
            note = (
                f"encoder {self.spec}: {self.rows_rescaled} vectors of magnitude {low:.3g} to {high:.3g} (beyond what float32 scores) "
                f"each scaled by its own power of two before scoring (exact; cosine does not change with a vector's length)"
            )
            if dropped:
                note += f"; not reported, as they depend on each vector's length: {', '.join(dropped)}"
                scores.update(dict.fromkeys(dropped))
            notes.append(note)
        if len(notes) == len(outcome.warnings):
            return outcome
        return dataclasses.replace(outcome, scores=scores, warnings=tuple(notes))


def _common_exponent(low: float, high: float) -> int | None:
    """A power of two ``e`` bringing magnitudes ``low..high`` into ``RESCALE_BELOW..RESCALE_ABOVE`` (times ``2**-e``), or None.

    The largest goes to 0.5..1 when the smallest stays at or above 2**-16; otherwise the smallest goes to 2**-16..2**-15.
    Decided on binary exponents (``x = f * 2**E``, f in 0.5..1), so nothing overflows on the way.
    """
    top, bottom = math.frexp(high)[1], math.frexp(low)[1]
    exponent = min(top, bottom + 15)
    return exponent if top - exponent <= 32 else None


def rows_rescaled(encoder: object) -> bool:
    """Whether ``encoder`` (as an adapter received it) gave some vectors their own power of two: lengths no longer compare."""
    return bool(getattr(encoder, "rows_rescaled", 0))


class _FittedVectorCheck(VectorCheck):
    """A :class:`VectorCheck` around a corpus-fitted encoder: ``isinstance(_, CorpusFitted)`` holds as for the inner one."""

    def fit(self, texts: Sequence[str]) -> None:
        self.inner.fit(texts)  # type: ignore[attr-defined]


def scaling_of(adapter: object, task: Any = None) -> Scaling:
    """How ``adapter``'s task type lets vectors be rescaled on ``task`` (:meth:`TaskAdapter.vector_scaling`)."""
    decide = getattr(adapter, "vector_scaling", None)
    if callable(decide):
        with contextlib.suppress(Exception):  # a task the adapter cannot read: the class-level answer
            found = decide(task)
            if found in ("none", "uniform", "row"):
                return found
    return "uniform" if getattr(adapter, "scale_invariant", False) else "none"


def checked_encoder(encoder: Encoder, adapter: object, task: Any = None) -> VectorCheck:
    """``encoder`` behind the finite-vector check of ``adapter``'s task type (a checked encoder is returned as it is)."""
    if isinstance(encoder, VectorCheck):
        return encoder
    kind = _FittedVectorCheck if isinstance(encoder, CorpusFitted) else VectorCheck
    task_type = str(getattr(adapter, "task_type", type(adapter).__name__))
    row_dependent = tuple(getattr(adapter, "row_dependent_metrics", ()))
    return kind(encoder, task_type, scaling=scaling_of(adapter, task), row_dependent=row_dependent)


def _checking(evaluate: Callable[..., Any]) -> Callable[..., Any]:
    """``evaluate`` with its encoder behind :class:`VectorCheck` (idempotent)."""
    if getattr(evaluate, "__checks_vectors__", False):
        return evaluate

    @functools.wraps(evaluate)
    def checked(self: Any, encoder: Encoder, task: Any, split: str, *args: Any, **kwargs: Any) -> Any:
        if isinstance(encoder, VectorCheck):  # a subclass calling super().evaluate: already checked
            return evaluate(self, encoder, task, split, *args, **kwargs)
        wrapped = checked_encoder(encoder, self, task)
        return wrapped.annotate(evaluate(self, wrapped, task, split, *args, **kwargs))

    checked.__checks_vectors__ = True  # type: ignore[attr-defined]
    return checked


class TaskAdapter:
    """Base class of the task types: whatever ``evaluate`` a subclass defines receives its encoder behind :class:`VectorCheck`.

    ``scale_invariant`` declares that every metric of the type is unchanged when all
    vectors are multiplied by one positive number (correlations, rankings, k-means);
    ``row_invariant`` that its main metric is unchanged when each vector is multiplied by
    its own (cosine), the metrics that are not being named by ``row_dependent_metrics``
    (prefixes). Such types get out-of-range vectors rescaled instead of refused
    (:meth:`vector_scaling`, :class:`VectorCheck`). Third-party adapters that follow the
    :class:`Adapter` Protocol without subclassing are put behind the same check by
    :func:`evalkit.adapters.adapter_for`.
    """

    scale_invariant: ClassVar[bool] = False
    row_invariant: ClassVar[bool] = False
    row_dependent_metrics: ClassVar[tuple[str, ...]] = ()

    def vector_scaling(self, task: Any) -> Scaling:
        """How this task's vectors may be rescaled: each on its own ("row"), all alike ("uniform"), or not ("none")."""
        if self.row_invariant:
            return "row"
        return "uniform" if self.scale_invariant else "none"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("evaluate")
        if callable(own):
            setattr(cls, "evaluate", _checking(own))  # noqa: B010 - a class attribute replaced on purpose


class CheckedAdapter:
    """A Protocol-only (third-party) adapter with its ``evaluate`` behind :class:`VectorCheck`; everything else delegated."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def evaluate(self, encoder: Encoder, task: Any, split: str) -> Any:
        wrapped = checked_encoder(encoder, self.inner, task)
        return wrapped.annotate(self.inner.evaluate(wrapped, task, split))  # type: ignore[attr-defined]


def checked_adapter(adapter: Any) -> Any:
    """``adapter`` if it subclasses :class:`TaskAdapter`, else the same adapter behind :class:`CheckedAdapter`."""
    return adapter if isinstance(adapter, TaskAdapter | CheckedAdapter) else CheckedAdapter(adapter)


def embed(encoder: Encoder, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
    """Encode each distinct text once and map the vectors back to ``texts``' order."""
    index: dict[str, int] = {}
    positions = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    unique = list(index)
    vectors = np.asarray(encoder.encode(unique, role), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(unique):
        raise RuntimeError(f"encoder {encoder.spec} returned shape {vectors.shape} for {len(unique)} texts")
    return vectors[positions]


def embed_pairs(encoder: Encoder, first: Sequence[str], second: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of both sides of sentence pairs, every distinct sentence encoded once (corpus-fitted encoders fit first)."""
    texts = [*first, *second]
    fit_if_needed(encoder, texts)
    vectors = embed(encoder, texts)
    return vectors[: len(first)], vectors[len(first) :]


def fit_if_needed(encoder: Encoder, texts: Sequence[str]) -> None:
    """Corpus-fitted encoders (TF-IDF) see every text of the task before encoding."""
    if isinstance(encoder, CorpusFitted):
        encoder.fit(list(dict.fromkeys(texts)))


# ---- checking a task costs work proportional to its data -------------------------------------------
WORK_FLOOR = 1 << 24
"""Work (draws, stored fold indices) any task may plan, whatever its size: mteb's default clustering plans 163,840."""
WORK_PER_ITEM = 100
"""Beyond the floor, work allowed per data item (document, example): planning stays O(data) for every setting."""


def check_work(task: TaskSpec, field: str, work: int, items: int, what: str) -> None:
    """Refuse settings whose plan would cost more than ``max(WORK_FLOOR, WORK_PER_ITEM * items)`` (exit 2, before any model loads)."""
    limit = max(WORK_FLOOR, WORK_PER_ITEM * items)
    if work > limit:
        raise task.error(
            field,
            f"{what} come to {work:,}, more than the {limit:,} allowed for {items:,} data items "
            f"(at most {WORK_FLOOR:,}, or {WORK_PER_ITEM} per item): checking a task stays proportional to its data",
            hint="lower the setting",
        )


def finite(value: float) -> float | None:
    """JSON has no NaN: undefined metrics (e.g. a constant similarity) become None."""
    return None if value is None or not np.isfinite(value) else float(value)


def settings_model(adapter: object) -> type[Schema]:
    """The adapter's ``Settings`` schema (an adapter that declares none takes no settings)."""
    model = getattr(adapter, "Settings", NoSettings)
    return model if isinstance(model, type) and issubclass(model, Schema) else NoSettings


def reported_metrics(adapter: object, settings: Schema) -> frozenset[str] | None:
    """Every metric name the adapter reports with these settings; None when it does not say."""
    names_for = getattr(adapter, "metric_names", None)
    if callable(names_for):
        return frozenset(names_for(settings))
    declared = getattr(adapter, "metrics", None)
    return frozenset(declared) if declared is not None else None


# ---- data-quality warnings -----------------------------------------------------------------------
_SHOWN: set[str] = set()
_COLLECTING: list[list[str]] = []
NOTES_FILE = "notes/said.txt"  # under evalkit's cache: digests of the data notes already said


def _said_file() -> Path:
    from evalkit.catalogue import cache_dir

    return cache_dir() / NOTES_FILE


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _said_before() -> set[str]:
    try:
        with _said_file().open(encoding="ascii", errors="replace") as handle:
            return {entry.strip() for entry in handle.readlines(1 << 24)}
    except OSError:
        return set()


def emit(lines: Iterable[str]) -> None:
    """Say each data note once to stderr as ``evalkit: warning: FILE:LINE: ...``: once per process, and once per cache.

    A note is a fact about the data (duplicate pairs in STS-B, say), not about this run: printed on every run it
    drowns what is new. Each one is printed the first time it is met, its digest kept in evalkit's cache
    (``notes/said.txt``); later runs say nothing of it, while every result still stores its task's notes and
    ``evalkit describe TASK`` lists them. Inside :func:`collecting` notes are gathered instead of printed.
    """
    fresh = [line for line in dict.fromkeys(lines) if line not in _SHOWN]
    if _COLLECTING:
        _COLLECTING[-1].extend(fresh)
        return
    if not fresh:
        return
    _SHOWN.update(fresh)
    said = _said_before()
    new = [line for line in fresh if _digest(line) not in said]
    for line in new:
        print(f"evalkit: warning: {line}", file=sys.stderr, flush=True)
    if new:
        try:
            path = _said_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="ascii") as handle:  # one short append per note: concurrent runs interleave whole lines
                handle.write("".join(_digest(line) + "\n" for line in new))
        except OSError:
            pass  # a read-only cache: the notes are said again next time, nothing is lost


@contextlib.contextmanager
def collecting() -> Iterator[list[str]]:
    """Gather the notes emitted inside (for ``evalkit describe``) instead of printing them."""
    _COLLECTING.append([])
    try:
        yield _COLLECTING[-1]
    finally:
        _COLLECTING.pop()


def where(path: Path | str | None, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


class RowLike(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def line(self) -> int: ...


def quality_warnings(
    rows: Sequence[RowLike],
    texts: Mapping[str, Sequence[str]],
    key: Callable[[int], Hashable],
    target: Sequence[Hashable] | None,
    what: str = "text",
    target_name: str = "label",
) -> list[str]:
    """Data-quality notes on one split, one line per kind and file: blank texts, empty targets, duplicates, conflicts.

    ``texts`` maps each text column to its values; ``key(i)`` identifies row ``i``'s input
    (its text, or its pair); ``target`` is its label or score. A column in which every
    text is blank makes the score meaningless and is refused (DataError).
    """
    found: dict[tuple[Path, str], list[tuple[int, int | None]]] = defaultdict(list)
    for column, values in texts.items():
        blank = [i for i, value in enumerate(values) if not value.strip()]
        if blank and len(blank) == len(values):
            raise DataError(
                f"every text in column '{column}' is empty or whitespace; the score would be meaningless",
                path=rows[0].path,
                field=column,
            )
        for i in blank:
            found[(rows[i].path, f"empty or whitespace-only text in column '{column}'")].append((i, None))
    if target is not None:
        for i, value in enumerate(target):
            if isinstance(value, str) and not value.strip():
                found[(rows[i].path, f"empty {target_name}")].append((i, None))
    first: dict[Hashable, int] = {}
    for i in range(len(rows)):
        seen = first.setdefault(key(i), i)
        if seen == i:
            continue
        if target is None or target[i] == target[seen]:
            found[(rows[i].path, f"duplicate row (same {what} and {target_name} as an earlier row)")].append((i, seen))
        else:
            found[(rows[i].path, f"{what} repeated with a different {target_name}")].append((i, seen))
    out = []
    for (path, kind), items in found.items():
        shown = []
        for i, earlier_row in items[:3]:
            earlier = ""
            if earlier_row is not None:
                other = rows[earlier_row]
                earlier = f" (as line {other.line})" if other.path == path else f" (as {Path(other.path).name}:{other.line})"
            shown.append(f"line {rows[i].line}{earlier}")
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        count = f"{len(items)} rows" if len(items) > 1 else "1 row"
        out.append(f"{where(path, rows[items[0][0]].line)}: {kind}: {count}: {', '.join(shown)}{more}")
    return out
