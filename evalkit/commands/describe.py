"""``evalkit describe TASK``: a task's settings (with defaults), files, record counts and columns.

Reads only the task file and the headers / first records of its data files, so it is
instant and loads no model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

MAX_PEEK_BYTES = 1 << 16


def register(sub: Any) -> None:
    desc = sub.add_parser("describe", help="show a task's settings, files, record counts and columns")
    desc.add_argument("task", nargs="+", help="task name or .toml file")
    desc.add_argument("--tasks-dir", action="append", default=[], type=Path, help="extra folder of task files")
    desc.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from evalkit.taskspec import TaskIndex

    index = TaskIndex(args.tasks_dir)
    for i, name in enumerate(args.task):
        if i:
            print()
        print(describe(index.get(name)))
    return 0


def describe(task: Any) -> str:
    """The text ``evalkit describe`` prints for one TaskSpec."""
    from evalkit.adapters import adapter_for

    adapter = adapter_for(task.type)
    lines = [f"{task.name}  ({task.type}; default split: {task.split})"]
    for label, value in (("description", task.description), ("reference", task.reference), ("license", task.license)):
        if value:
            lines.append(f"  {label}: {value}")
    if task.source is not None:
        lines.append(f"  task file: {task.source}")
    lines.append(f"  main score: {task.main_score or adapter.main_metric}")
    lines.append("  settings:")
    lines += [f"    {line}" for line in settings_lines(task, adapter)]
    lines.append("  files:")
    for group, paths in task.files.items():
        for path in paths:
            records, columns = peek(Path(path))
            lines.append(f"    {group:<8} {path}  ({records} records; columns: {', '.join(columns) or '?'})")
    lines += data_notes(task, adapter)
    return "\n".join(lines)


def data_notes(task: Any, adapter: Any) -> list[str]:
    """The data notes of the default split (duplicates, conflicts, blanks): what a run says once and stores in each result."""
    from evalkit.adapters.base import collecting
    from evalkit.errors import EvalkitError

    if not task.files:  # an mteb: task: its data comes from MTEB's loader, not read here
        return []
    try:
        with collecting() as notes:
            adapter.validate(task, task.split)
    except EvalkitError as exc:
        return [f"  data: cannot be read: {exc.render()}"]
    return [f"  data notes ({task.split}): none"] if not notes else [f"  data notes ({task.split}):", *(f"    {note}" for note in notes)]


def settings_lines(task: Any, adapter: Any) -> list[str]:
    """Every setting the task type knows: the task's value (marked 'set') or the default, with its help text."""
    model = getattr(adapter, "Settings", None)
    fields = getattr(model, "model_fields", {}) if model is not None else {}
    out = []
    for name, info in fields.items():
        key = info.alias or name
        if key in task.settings:
            value, mark = task.settings[key], "set"
        else:
            value, mark = (None if info.is_required() else info.get_default(call_default_factory=True)), "default"
        help_text = f"  — {info.description}" if info.description else ""
        out.append(f"{key} = {_show(value)}  ({mark}){help_text}")
    for key, value in task.settings.items():
        if key not in {f.alias or n for n, f in fields.items()}:
            out.append(f"{key} = {_show(value)}  (set)")
    return out or ["(none)"]


def _show(value: Any) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def peek(path: Path) -> tuple[str, list[str]]:
    """(record count, column names) of a data file, cheaply; '?' where it cannot be read."""
    try:
        if not path.is_file():
            return "?", []
        with path.open("rb") as handle:
            head = handle.read(MAX_PEEK_BYTES)
            newlines = head.count(b"\n") + sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        first = head.split(b"\n", 1)[0].decode("utf-8-sig", "replace").rstrip("\r")
    except OSError:
        return "?", []
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        try:
            columns = list(json.loads(first))
        except (ValueError, TypeError):
            columns = []
        return f"{newlines:,}", columns
    delimiter = "," if suffix == ".csv" else "\t"
    return f"{max(newlines - 1, 0):,}", [c.strip() for c in first.split(delimiter)]
