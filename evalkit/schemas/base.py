"""The one validation layer: every user file and option is a pydantic model checked here.

Task files, rule files, result files and encoder options are each described once, as a
:class:`Schema` subclass, and validated through :func:`parse`. A failure becomes one
:class:`~evalkit.errors.DataError` naming the file, the line (where the source text is
known), the dotted field and a hint ("did you mean ..." for unknown keys), so the CLI
can print one line and exit 2 before any model loads.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from evalkit.errors import DataError, EvalkitError

M = TypeVar("M", bound=BaseModel)

SEED_MAX = 2**32 - 1  # numpy's RandomState and scikit-learn accept 0 .. 2**32 - 1


class Schema(BaseModel):
    """Strict, frozen, closed: unknown keys are errors, ``"5"`` is not 5, NaN and ±inf are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False, populate_by_name=True)


class LaxSchema(Schema):
    """For values that arrive as text (spec options): ``"5"`` → 5, ``"true"`` → True; still closed and finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False, populate_by_name=True)


def _encodable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate or bytes that are not UTF-8") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Text = Annotated[str, AfterValidator(_encodable)]
"""Any text that can be written as UTF-8 (no lone surrogates)."""
Name = Annotated[str, AfterValidator(_encodable), AfterValidator(_not_blank)]
"""Non-empty text that can be written as UTF-8."""
Finite = Annotated[float, AfterValidator(_finite)]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]


def parse(
    model: type[M],
    data: Any,
    *,
    path: str | Path | None = None,
    prefix: str = "",
    source: str | None = None,
    line: int | None = None,
) -> M:
    """``model`` validated from ``data``, or one DataError naming file, line, field and a hint.

    ``prefix`` is the dotted place of ``data`` in its file (``settings``, ``task.STSB``);
    ``source`` is the file's text, used to find the line of a TOML key.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error_from(exc, model, path=path, prefix=prefix, source=source, line=line) from None


def error_from(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    path: str | Path | None = None,
    prefix: str = "",
    source: str | None = None,
    line: int | None = None,
) -> EvalkitError:
    """The first error of ``exc`` as a DataError (pydantic's wording, evalkit's one-line format)."""
    first = exc.errors(include_url=False)[0]
    raw = [str(part) for part in first["loc"]]
    last = len(raw) - 1  # an unknown key is the last part, whatever it looks like: it came from the user's file
    loc = [p for i, p in enumerate(raw) if not (_is_tag(p) and not (first["type"] == "extra_forbidden" and i == last))] or raw
    dotted = ".".join([prefix, *loc] if prefix else loc)
    hint = None
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = fields_at(model, loc[:-1])
        message = "unknown key"
        hint = did_you_mean(loc[-1], allowed)
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = _message(first)
    if line is None and source is not None:
        line = toml_line(source, dotted)
    return DataError(message, path=path, line=line, field=dotted or None, hint=hint)


def _is_tag(part: object) -> bool:
    """A union member or validator tag pydantic puts in ``loc`` (``function-after[...]``, ``list[str]``): not a field."""
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool", "list", "dict", "none"})


def _message(error: Mapping[str, Any]) -> str:
    text = str(error["msg"])
    text = re.sub(r"^Value error, ", "", text)
    value = error.get("input")
    if isinstance(value, bool):
        return f"{text}, got {str(value).lower()}"
    if isinstance(value, int | float) or (isinstance(value, str) and len(value) <= 60):
        return f"{text}, got {_safe(repr(value))}"
    return text


def _safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def did_you_mean(key: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "allowed: " + (", ".join(sorted(allowed)) or "none")


def fields_at(model: type[BaseModel], loc: Sequence[str]) -> list[str]:
    """The field names (aliases where set) of the sub-model at ``loc`` inside ``model``."""
    current: Any = model
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(part) or next((f for f in current.model_fields.values() if f.alias == part), None)
        if info is None:
            return []
        if parts and _is_mapping(info.annotation):
            parts.pop(0)  # a key of the mapping (``task.<name>``), not a field
        current = _model_in(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _is_mapping(annotation: Any) -> bool:
    """``dict[str, X]``, ``list[X]`` and the like, possibly ``| None``: the next part of a loc is a key or index."""
    import collections.abc
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (dict, list, tuple, collections.abc.Mapping, collections.abc.Sequence):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return False


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside ``X | None``, ``dict[str, X]`` and the like, or ``annotation`` itself."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(getattr(annotation, "__args__", ()) or ()):
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


_HEADER = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def toml_line(source: str, dotted: str) -> int | None:
    """Best-effort 1-based line of ``dotted`` (``a.b.c``) in TOML text: the key's line, else its table's."""
    parts = dotted.split(".")
    table: list[str] = []
    best: int | None = None
    for number, text in enumerate(source.splitlines(), start=1):
        header = _HEADER.match(text)
        if header:
            table = [p.strip().strip("\"'") for p in header.group(1).split(".")]
            if table == parts[: len(table)] and best is None and len(table) == len(parts):
                best = number
            continue
        key = _KEY.match(text)
        matches = key is not None and [*table, key.group(1).strip("\"'")] == parts[: len(table) + 1]
        if matches and (len(table) + 1 == len(parts) or best is None):
            return number
    return best
