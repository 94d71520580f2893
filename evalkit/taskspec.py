"""Task files: a task is a few lines of TOML, not code.

    name = "STSBenchmark"          # unique, case-insensitive
    type = "sts"                   # which adapter scores it
    split = "test"                 # the split evaluated by default
    description = "..."
    [files]                        # named file groups, relative to this file
    test = ["data/sts/stsbenchmark/test.tsv"]
    dev = ["data/sts/stsbenchmark/dev.tsv"]
    [settings]                     # adapter-specific (score range, samples per label, ...)
    min_score = 0
    max_score = 5

Task files are found in evalkit's own ``tasks/`` folder, in every folder listed in
``EVALKIT_TASKS_PATH`` (os.pathsep-separated) and in folders passed with
``--tasks-dir``; ``-t path/to/file.toml`` also works directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from evalkit.data import read_toml
from evalkit.errors import DataError
from evalkit.registry import Registry, RegistryError

BUILTIN_TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"
TOP_LEVEL_KEYS = {"name", "type", "split", "description", "reference", "main_score", "files", "settings", "license"}


@dataclass(frozen=True)
class TaskSpec:
    """A task as declared in its file (immutable; adapters read ``settings``)."""

    name: str
    type: str
    split: str
    files: Mapping[str, tuple[Path, ...]]
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    reference: str = ""
    main_score: str | None = None
    source: Path | None = None

    def files_for(self, key: str) -> tuple[Path, ...]:
        if key not in self.files:
            raise DataError(
                f"task '{self.name}' declares no files for '{key}'; it has: {', '.join(self.files) or 'none'}",
                path=self.source,
                field=f"files.{key}",
            )
        return self.files[key]

    def setting(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


def load_task_file(path: Path) -> TaskSpec:
    """Parse and validate one task file; every error names the file and the field."""
    path = Path(path)
    raw = read_toml(path, "task")
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise DataError(f"unknown key; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}", path=path, field=unknown[0])
    for key in ("name", "type", "split"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise DataError("required text value is missing or empty", path=path, field=key)
    files_raw = raw.get("files")
    if not isinstance(files_raw, dict) or not files_raw:
        raise DataError("a [files] table naming the data files is required", path=path, field="files")
    files: dict[str, tuple[Path, ...]] = {}
    for key, value in files_raw.items():
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
            raise DataError("must be a path or a list of paths", path=path, field=f"files.{key}")
        files[key] = tuple((path.parent / v).resolve() for v in items)
    settings = raw.get("settings", {})
    if not isinstance(settings, dict):
        raise DataError("must be a table", path=path, field="settings")
    for key in ("description", "reference", "main_score"):
        if key in raw and not isinstance(raw[key], str):
            raise DataError("must be text", path=path, field=key)
    return TaskSpec(
        name=raw["name"].strip(),
        type=raw["type"].strip().lower(),
        split=raw["split"].strip(),
        files=MappingProxyType(files),
        settings=MappingProxyType(settings),
        description=raw.get("description", ""),
        reference=raw.get("reference", ""),
        main_score=raw.get("main_score"),
        source=path.resolve(),
    )


def task_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    dirs = [BUILTIN_TASKS_DIR]
    env = os.environ.get("EVALKIT_TASKS_PATH", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path(p) for p in extra]
    return dirs


class TaskIndex:
    """Task names → task files, from the task folders; names are case-insensitive."""

    def __init__(self, dirs: Iterable[Path] = ()) -> None:
        self._registry: Registry[Path] = Registry("task")
        for folder in task_dirs(dirs):
            if not folder.is_dir():
                if folder != BUILTIN_TASKS_DIR:
                    raise DataError("tasks folder does not exist", path=folder)
                continue
            for file in sorted(folder.glob("*.toml")):
                name = _peek_name(file)
                try:
                    self._registry.register(name, file.resolve())
                except RegistryError:
                    raise DataError(
                        f"task name '{name}' is declared twice (also in {self._registry.get(name)})", path=file, field="name"
                    ) from None

    def names(self) -> list[str]:
        return self._registry.names()

    def get(self, name_or_path: str) -> TaskSpec:
        candidate = Path(name_or_path)
        if candidate.suffix == ".toml" and (candidate.exists() or os.sep in name_or_path):
            return load_task_file(candidate)
        try:
            return load_task_file(self._registry.get(name_or_path))
        except RegistryError as exc:
            raise DataError(exc.message, hint="`evalkit list` shows the tasks; a path to a .toml task file also works") from None


def _peek_name(path: Path) -> str:
    name = read_toml(path, "task").get("name")
    if not isinstance(name, str) or not name.strip():
        raise DataError("required text value is missing or empty", path=path, field="name")
    return name.strip()
