"""Encoder options: each backend's ``?key=value`` options described once, as a typed model.

Values arrive as text from the spec string and are coerced here (``"5"`` → 5; a flag is
``true/false/yes/no/on/off/1/0``, any case; anything else is an error). Every backend
declares one :class:`BackendOptions` subclass; ``check_spec`` validates it before any model
loads and the backend reads the typed values from the same (memoised) model, so options are
parsed exactly once. A failure is one :class:`~evalkit.errors.SpecError` naming the spec and
the option (``field``), with "did you mean" for unknown options and misspelt choices.

The canonical spec keeps option values as written, so ``hf:m`` and ``hf:m?pooling=mean`` are
two encoder identities with the same numbers (a duplicate row, never a wrong one); only the
share keys that decide which encoders run on one loaded model compare typed values.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator

from evalkit.errors import SpecError
from evalkit.schemas.base import LaxSchema, Name, Text, did_you_mean, error_from

if TYPE_CHECKING:
    from evalkit.spec import EncoderSpec

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})

BIG = 2**24  # upper bound of sizes and lengths: far above any real model, far below an overflow in Rust or C


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in TRUE:
            return True
        if lowered in FALSE:
            return False
        raise ValueError("must be true or false (also yes/no, on/off, 1/0)")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
"""A boolean option: ``true/false``, ``yes/no``, ``on/off``, ``1/0`` in any case; nothing else."""
Positive = Annotated[int, Field(ge=1, le=BIG)]


class BackendOptions(LaxSchema):
    """Base of every backend's options model: no fields, so a backend that adds none takes no options."""

    @classmethod
    def choices(cls, name: str) -> Sequence[str] | None:
        """The allowed values of option ``name`` when they form a closed set (for "did you mean")."""
        info = cls.model_fields.get(name)
        if info is None:
            return None
        return _literal_values(info.annotation)

    @classmethod
    def of(cls, spec: EncoderSpec, text: str | None = None) -> Self:
        """The validated options of ``spec`` (an EncoderSpec), or one SpecError naming the spec and the option.

        Memoised per (model, options), so the up-front check and the backend share one parse.
        ``text`` is the spec as the user wrote it, for the message.
        """
        options = tuple(sorted(spec.opts.items()))
        for key, _ in options:
            if not _is_text(key):  # pydantic would report it with no location
                raise _error(spec, text, key, "unknown option (its name is not valid UTF-8 text)", None)
        try:
            return _validated(cls, options)  # type: ignore[return-value]
        except ValidationError as exc:
            raise _spec_error(exc, cls, spec, text) from None


@functools.lru_cache(maxsize=1024)
def _validated(model: type[BackendOptions], options: tuple[tuple[str, str], ...]) -> BackendOptions:
    return model.model_validate(dict(options))


def _literal_values(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is Literal:
        return [str(v) for v in typing.get_args(annotation)]
    for arg in typing.get_args(annotation):
        found = _literal_values(arg)
        if found:
            return found
    return None


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """``text`` on one line, with control characters and lone surrogates escaped."""
    return text if text.isprintable() else repr(text)[1:-1]


def _spec_error(exc: ValidationError, model: type[BackendOptions], spec: EncoderSpec, text: str | None) -> SpecError:
    first = exc.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    error = error_from(exc, model)
    message, hint = error.message, error.hint
    choices = model.choices(name)
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        allowed = list(model.model_fields)
        message = "unknown option"
        hint = did_you_mean(name, allowed) if allowed else "this backend takes no options"
    elif choices is not None and isinstance(value, str) and value not in choices:  # a valid choice failed a cross-field check
        message = f"cannot be {repr(value) if len(value) <= 60 else 'that value'}"
        hint = did_you_mean(value, choices)
    return _error(spec, text, name, message, hint)


def _error(spec: EncoderSpec, text: str | None, option: str, message: str, hint: str | None) -> SpecError:
    """One SpecError naming the spec (as the user wrote it, bounded, on one line) and the option as ``field``."""
    where = text if text is not None else str(spec)
    shown = repr(where[:120]) + ("…" if len(where) > 120 else "")
    return SpecError(f"encoder spec {shown}: {message}", field=_printable(option) or None, hint=hint)


PRECISIONS = ("float32", "float16", "int8", "uint8", "binary", "ubinary")
"""Storage precisions of a vector (``evalkit.encoders.transforms.PRECISIONS`` says what each does)."""
SCALAR = frozenset({"int8", "uint8"})


class TransformOptions(BackendOptions):
    """Post-pooling transforms every dense backend takes: whiten → truncate → quantise, on the pooled vectors.

    They change no forward pass, so specs that differ only in these share one model load
    and one pass (``evalkit.encoders.transforms``). Combinations that mean nothing
    (``whiten_dim`` without ``whiten``, ``calibration`` without an integer precision, a
    truncation wider than the whitened vector) are refused here, before any model loads.
    """

    whiten: Flag = Field(False, description="BERT-whitening (Su et al. 2021): mean and covariance fitted on the task's texts")
    whiten_dim: Positive | None = Field(None, description="keep the first K whitened components (needs whiten=true)")
    truncate_dim: Positive | None = Field(None, description="keep the first N dimensions (Matryoshka truncation)")
    precision: Literal["float32", "float16", "int8", "uint8", "binary", "ubinary"] = Field(
        "float32", description="stored precision, as sentence_transformers.quantize_embeddings (float16: a cast)"
    )
    calibration: Literal["task", "bench"] = Field(
        "task", description="int8/uint8 ranges from the task's own vectors, or from the shipped bench sample"
    )

    @field_validator("whiten_dim")
    @classmethod
    def _needs_whiten(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("whiten") is False:
            raise ValueError("needs whiten=true")
        return value

    @field_validator("truncate_dim")
    @classmethod
    def _within_whitened(cls, value: int | None, info: ValidationInfo) -> int | None:
        kept = info.data.get("whiten_dim")
        if value is not None and kept is not None and value > kept:
            raise ValueError(f"is larger than whiten_dim={kept}, the whitened vector's size")
        return value

    @field_validator("calibration")
    @classmethod
    def _scalar_only(cls, value: str, info: ValidationInfo) -> str:
        precision = info.data.get("precision")
        if value != "task" and precision is not None and precision not in SCALAR:
            raise ValueError(f"applies only to precision=int8 or uint8 (this spec has precision={precision})")
        return value

    def transform_options(self) -> dict[str, Any]:
        """The transform fields and their typed values."""
        return {name: getattr(self, name) for name in TRANSFORM_FIELDS}


TRANSFORM_FIELDS: tuple[str, ...] = tuple(TransformOptions.model_fields)


class TransformerOptions(TransformOptions):
    """Options every transformer backend shares (``hf``, ``hf-logits``, ``sbert``), the transforms included."""

    max_length: Positive | None = Field(None, description="truncate texts to this many tokens (default: the model's limit, at most 512)")
    batch_size: Positive = Field(32, description="texts per forward pass")
    token_budget: Annotated[int, Field(ge=1, le=2**40)] | None = Field(
        None, description="most padded tokens in flight (default batch_size × 128; CPU streams share it): long texts go in smaller batches"
    )
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="weights / autocast dtype")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="where the model runs")
    threads: Annotated[int, Field(ge=1, le=4096)] | None = Field(
        None,
        description="intra-op threads of this encoder's forward passes (default: the run's budget); a deliberate "
        "per-encoder budget, recorded as such by `evalkit bench --compare`",
    )
    revision: Name | None = Field(None, description="hub revision (branch, tag or commit)")
    trust_remote_code: Flag = Field(False, description="run model code from the hub (off unless set)")
    allow_pickle: Flag = Field(False, description="allow .bin/.pt (pickle) weights; safetensors are preferred")
    prompt: Text | None = Field(None, description="text prepended to every input")
    query_prompt: Text | None = Field(None, description="text prepended to queries (retrieval)")
    document_prompt: Text | None = Field(None, description="text prepended to documents (retrieval)")

    PROMPTS: typing.ClassVar[tuple[str, ...]] = ("prompt", "query_prompt", "document_prompt")

    def prompt_for(self, role: str | None) -> str:
        """The prompt for ``role`` ("query" / "document" / None): the role's own if set, else ``prompt``, else ""."""
        if role == "query" and self.query_prompt is not None:
            return self.query_prompt
        if role == "document" and self.document_prompt is not None:
            return self.document_prompt
        return self.prompt or ""

    def prompts(self) -> tuple[tuple[str, str], ...]:
        """The prompts that are set, by option name (part of what determines the vectors)."""
        return tuple((name, value) for name in sorted(self.PROMPTS) if (value := getattr(self, name)) is not None)

    def load_key(self, exclude: Sequence[str] = ()) -> tuple[tuple[str, Any], ...]:
        """The typed values, less ``exclude`` and the prompts: equal keys can share one loaded model."""
        skip = {*exclude, *self.PROMPTS, *TRANSFORM_FIELDS}  # transforms run after the model: any share it
        return tuple(sorted((k, v) for k, v in self.model_dump().items() if k not in skip))
