"""A task file (``tasks/*.toml``) as one typed model; each task type's ``[settings]`` is its adapter's ``Settings``.

The task file is validated here in one pass, before any model loads: closed keys
("did you mean" for typos), text that can be written as UTF-8, file groups whose names
are safe in a result file's name, a default split that names one of them. The
``[settings]`` table is left as data here and validated by the adapter's own
``Settings`` model (``evalkit.taskspec.load_task_file`` does both), with the file
groups passed as validation context so a setting that names a group (``train_split``)
is checked against them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from evalkit.schemas.base import Name, Schema, Text

GROUP_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
GROUP_RULE = "1-64 letters, digits, '_' or '-', starting with a letter or digit"


def _no_controls(value: str) -> str:
    """Names reach terminals, file names and spreadsheets: no control characters (newlines, ANSI escapes, NUL)."""
    bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise ValueError(f"contains the control character {bad!r}")
    return value


def _group_name(value: str) -> str:
    if not GROUP_PATTERN.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a valid file group name ({GROUP_RULE})")
    return value


TaskName = Annotated[Name, AfterValidator(_no_controls), Field(max_length=200)]
"""A task's name: shown in tables and part of result file names."""
GroupName = Annotated[str, AfterValidator(_group_name)]
"""A file group (a split, ``corpus``, ``queries``): part of result file names, so a plain word."""
FilePath = Annotated[Name, AfterValidator(_no_controls), Field(max_length=4096)]
"""A data file path, relative to the task file (NUL and other control characters refused)."""


def _mteb_protocol(value: str) -> str:
    """``protocol = "mteb:NAME"``: inherit MTEB's protocol settings for the task NAME (evalkit.mteb_tasks.inherit)."""
    if value[:5].lower() != "mteb:" or not value[5:].strip():
        raise ValueError(f"{value[:60]!r} is not a protocol evalkit knows; write 'mteb:TASKNAME' to inherit MTEB's settings")
    return value


def _one_or_many(value: object) -> object:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError("must be a path or a list of paths")
    return value


FileList = Annotated[list[FilePath], BeforeValidator(_one_or_many), Field(min_length=1)]
"""``"a.tsv"`` or ``["a.tsv", "b.tsv"]`` (several files of one group are concatenated)."""


class TaskFile(Schema):
    """The top level of a task file. ``files`` comes before ``split`` so the split can be checked against it."""

    name: TaskName
    type: Annotated[Name, Field(max_length=100)]
    description: Text = ""
    reference: Text = ""
    license: Text = ""
    main_score: Annotated[Name, Field(max_length=200)] | None = None
    protocol: Annotated[Name, Field(max_length=300), AfterValidator(_mteb_protocol)] | None = None
    files: Annotated[dict[str, FileList], Field(min_length=1)]
    split: GroupName
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("files")
    @classmethod
    def _safe_groups(cls, files: dict[str, Any]) -> dict[str, Any]:
        for key in files:
            _group_name(key)
        return files

    @field_validator("split")
    @classmethod
    def _split_is_a_group(cls, split: str, info: ValidationInfo) -> str:
        files = info.data.get("files")
        if files is not None and split not in files:
            raise ValueError(f"names no file group ([files] has: {', '.join(files)})")
        return split


class NoSettings(Schema):
    """The settings of a task type that declares none: the ``[settings]`` table must be empty."""


def groups_in(info: ValidationInfo) -> tuple[str, ...] | None:
    """The task's file groups, when the settings are validated with them as context (``TaskSpec.settings_as``)."""
    context = info.context if isinstance(info.context, dict) else {}
    groups = context.get("groups")
    return tuple(groups) if groups is not None else None


Column = Annotated[Name, AfterValidator(_no_controls), Field(max_length=200)]
"""A column name in a data file (``settings.columns`` values)."""


def distinct_columns(columns: Schema) -> None:
    """Two roles read from one column (``sentence1`` and ``sentence2`` both ``"text"``) would score a task against itself."""
    values = list(columns.model_dump().values())
    if len(set(values)) != len(values):
        raise ValueError("two roles name the same column: " + ", ".join(f"{k} = {v!r}" for k, v in columns.model_dump().items()))
