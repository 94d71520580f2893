"""Data rows validated as schemas: one record model per task type, columns renamable per task.

A row read by :mod:`evalkit.data` carries its file and line; :func:`parse_record` checks it
against a :class:`~evalkit.schemas.Schema` (fields named by their canonical column) and,
when the task renames columns, reports the column name the user actually wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from evalkit.data import Row
from evalkit.errors import DataError
from evalkit.schemas import Schema, parse

R = TypeVar("R", bound=BaseModel)


class Record(Schema):
    """A data row: strict like every schema, but columns the type does not use (ids, extra ratings) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False, populate_by_name=True)


def parse_record(model: type[R], row: Row, columns: Mapping[str, str]) -> R:
    """``row`` as ``model``; ``columns`` maps each canonical field to the file's column name."""
    data = {name: row.values[column] for name, column in columns.items() if column in row.values}
    try:
        return parse(model, data, path=row.path, line=row.line)
    except DataError as exc:
        field = exc.field
        if field:
            head, _, rest = field.partition(".")
            field = columns.get(head, head) + (f".{rest}" if rest else "")
        raise DataError(exc.message, path=row.path, line=row.line, field=field, hint=exc.hint) from None
