"""Task files: a task is a few lines of TOML, not code.

    name = "STSBenchmark"          # unique, case-insensitive
    type = "sts"                   # which adapter scores it
    split = "test"                 # the split evaluated by default (a file group)
    description = "..."
    [files]                        # named file groups, relative to this file
    test = ["data/sts/stsbenchmark/test.tsv"]
    dev = ["data/sts/stsbenchmark/dev.tsv"]
    [settings]                     # adapter-specific (score range, samples per label, ...)
    min_score = 0
    max_score = 5

The file is one :class:`evalkit.schemas.task.TaskFile`; its ``[settings]`` table is the
adapter's ``Settings`` model, and ``main_score`` must be a metric the adapter reports.
All of it is checked when the file is loaded, so a bad task file is one error naming
the file, line and field before anything else happens.

A top-level ``protocol = "mteb:NAME"`` inherits MTEB's protocol settings and main score
for the MTEB task NAME; what the file itself says wins, and each difference is reported
as a warning (:func:`evalkit.mteb_tasks.inherit`).

Task files are found in evalkit's own ``tasks/`` folder, in every folder listed in
``EVALKIT_TASKS_PATH`` (os.pathsep-separated) and in folders passed with
``--tasks-dir``; ``-t path/to/file.toml`` also works directly, and ``-t mteb:NAME``
runs MTEB's task NAME on its own data (:func:`evalkit.mteb_tasks.materialize`).
"""

from __future__ import annotations

import builtins
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from evalkit.errors import DataError
from evalkit.registry import Registry, RegistryError
from evalkit.schemas.base import Schema, did_you_mean, error_from, parse, toml_line
from evalkit.schemas.task import TaskFile, TaskName

BUILTIN_TASKS_DIR = Path(str(resources.files("evalkit.tasks")))  # tasks/ in a checkout, package data in a wheel
MAX_TASK_FILE_BYTES = 1 << 20  # a task file is a few lines; anything bigger is not one
S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class TaskSpec:
    """A task as declared in its (validated) file; adapters read typed settings with :meth:`settings_as`."""

    name: str
    type: str
    split: str
    files: Mapping[str, tuple[Path, ...]]
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    reference: str = ""
    main_score: str | None = None
    source: Path | None = None
    license: str = ""
    text: str = field(default="", repr=False, compare=False)  # the task file's text: errors find their TOML line in it
    protocol: str | None = None  # ``protocol = "mteb:NAME"``: the settings it inherited from MTEB's task metadata
    limit: int | None = None  # ``--limit N``: a seeded subset of at most N units (evalkit.subset); part of the cell's identity

    def files_for(self, key: str) -> tuple[Path, ...]:
        if key not in self.files:
            raise DataError(
                f"task '{self.name}' declares no files for '{key}'; it has: {', '.join(self.files) or 'none'}",
                path=self.source,
                field=f"files.{key}",
                hint=did_you_mean(key, list(self.files)) if self.files else None,
            )
        return self.files[key]

    def setting(self, key: str, default: Any = None) -> Any:
        """The raw value of one setting as written (typed access: :meth:`settings_as`)."""
        return self.settings.get(key, default)

    def settings_as(self, model: builtins.type[S]) -> S:
        """The ``[settings]`` table validated as ``model`` (the adapter's ``Settings``), file groups as context."""
        return validated(model, dict(self.settings), path=self.source, prefix="settings", text=self.text, groups=tuple(self.files))

    def error(self, dotted: str, message: str, hint: str | None = None) -> DataError:
        """A DataError about ``dotted`` (``settings.k_folds``) in this task file, with its TOML line."""
        line = toml_line(self.text, dotted) if self.text else None
        return DataError(message, path=self.source, line=line, field=dotted, hint=hint)


def validated(
    model: type[S], data: Any, *, path: Path | None, prefix: str = "", text: str = "", groups: tuple[str, ...] | None = None
) -> S:
    """``model`` from ``data``, or one DataError; an unknown key is reported before the errors it may cause (a typo'd key)."""
    try:
        return model.model_validate(data, context={"groups": groups} if groups is not None else None)
    except ValidationError as exc:
        unknown = next((e for e in exc.errors(include_url=False) if e["type"] == "extra_forbidden"), None)
        if unknown is not None:
            exc = ValidationError.from_exception_data(
                exc.title, [{"type": "extra_forbidden", "loc": unknown["loc"], "input": unknown["input"]}]
            )
        error = error_from(exc, model, path=path, prefix=prefix, source=text or None)
        loc = [str(part) for part in exc.errors(include_url=False)[0]["loc"]]
        if loc and not all(loc):  # an empty key (`"" = 1`) would leave the field blank: name it as TOML writes it
            error = DataError(
                error.message, path=path, line=error.line, field=".".join(p or '""' for p in [*([prefix] if prefix else []), *loc])
            )
            error.hint = error_from(exc, model).hint
        raise error from None


def read_task_text(path: Path, kind: str = "task") -> tuple[str, dict[str, Any]]:
    """The text and parsed TOML of a task file: a regular file of at most 1 MiB, UTF-8 (a BOM is dropped).

    Opened non-blocking and checked with fstat, so a FIFO or a device never hangs the run.
    """
    import tomllib

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise DataError(f"{kind} file does not exist", path=path) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot open the {kind} file ({getattr(exc, 'strerror', None) or exc})", path=path) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"{kind} file is not a regular file", path=path)
        if info.st_size > MAX_TASK_FILE_BYTES:
            raise DataError(f"{kind} file is larger than {MAX_TASK_FILE_BYTES >> 20} MiB", path=path)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_TASK_FILE_BYTES + 1)
    except OSError as exc:
        raise DataError(f"cannot read the {kind} file ({exc.strerror or exc})", path=path) from None
    finally:
        os.close(fd)
    if len(data) > MAX_TASK_FILE_BYTES:
        raise DataError(f"{kind} file is larger than {MAX_TASK_FILE_BYTES >> 20} MiB", path=path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{kind} file is not UTF-8 text", path=path, line=line) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))  # Python 3.11 keeps the line only in the message
        raise DataError(f"{kind} file is not valid TOML: {exc}", path=path, line=int(match.group(1)) if match else None) from None
    except RecursionError:
        raise DataError(f"{kind} file nests arrays or tables too deeply", path=path) from None


def load_task_file(path: Path) -> TaskSpec:
    """Parse and validate one task file; every error names the file, the line and the field."""
    path = Path(path)
    text, raw = read_task_text(path)
    return task_from_data(raw, path=path, text=text)


def task_from_data(raw: Any, *, path: Path, text: str = "") -> TaskSpec:
    """A TaskSpec from a task file's parsed content: the whole file, its settings and its main score validated."""
    from evalkit.adapters import ADAPTERS
    from evalkit.adapters.base import reported_metrics, settings_model

    spec = validated(TaskFile, raw, path=path, text=text)
    try:
        adapter_class = ADAPTERS.get(spec.type)
    except RegistryError as exc:
        line = toml_line(text, "type") if text else None
        raise DataError(exc.message, path=path, line=line, field="type", hint="`evalkit list` shows the task types") from None
    settings, main_score = dict(spec.settings), spec.main_score
    if isinstance(settings.get("protocol"), str) and settings["protocol"][:5].lower() == "mteb:":
        raise DataError(
            "an MTEB protocol is a top-level key, not a setting",
            path=path,
            line=toml_line(text, "settings.protocol") if text else None,
            field="settings.protocol",
            hint=f"move protocol = {settings['protocol']!r} above [files] ([settings].protocol is train_test / cross_validation)",
        )
    if spec.protocol is not None:  # MTEB's settings underneath the file's own (evalkit.mteb_tasks.inherit)
        from evalkit import mteb_tasks

        settings, main_score = mteb_tasks.inherit(
            spec.protocol, spec.type.strip().lower(), settings, main_score, path=path.resolve(), source=text
        )
    files: dict[str, tuple[Path, ...]] = {}
    for key, value in spec.files.items():
        try:
            files[key] = tuple((path.parent / v).resolve() for v in value)
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a name the OS refuses
            line = toml_line(text, f"files.{key}") if text else None
            raise DataError(f"cannot resolve the path ({exc})", path=path, line=line, field=f"files.{key}") from None
    task = TaskSpec(
        name=spec.name.strip(),
        type=spec.type.strip().lower(),
        split=spec.split,
        files=MappingProxyType(files),
        settings=MappingProxyType(settings),
        description=spec.description,
        reference=spec.reference,
        main_score=main_score,
        source=path.resolve(),
        license=spec.license,
        text=text,
        protocol=spec.protocol,
    )
    adapter = adapter_class()
    metrics = reported_metrics(adapter, task.settings_as(settings_model(adapter)))
    if task.main_score is not None and metrics is not None and task.main_score not in metrics:
        raise task.error(
            "main_score",
            f"'{task.main_score}' is not a metric a '{task.type}' task reports",
            hint=did_you_mean(task.main_score, sorted(metrics)),
        )
    return task


def task_dirs(extra: Iterable[Path | str] | Path | str = ()) -> list[Path]:
    """The task folders: evalkit's, ``EVALKIT_TASKS_PATH``'s, then ``extra`` (one folder, as a string or path, or several)."""
    dirs = [BUILTIN_TASKS_DIR]
    env = os.environ.get("EVALKIT_TASKS_PATH", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path(extra)] if isinstance(extra, str | os.PathLike) else [Path(p) for p in extra]  # "/path" is one folder
    return dirs


class TaskIndex:
    """Task names → task files, from the task folders; names are case-insensitive."""

    def __init__(self, dirs: Iterable[Path | str] | Path | str = ()) -> None:
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
        from evalkit import mteb_tasks

        if mteb_tasks.is_mteb(name_or_path):  # MTEB's catalogue: mteb:NAME[:SUBSET], its data written as a task file
            return load_task_file(mteb_tasks.materialize(name_or_path))
        candidate = Path(name_or_path)
        if candidate.suffix == ".toml" and (candidate.exists() or os.sep in name_or_path):
            return load_task_file(candidate)
        try:
            return load_task_file(self._registry.get(name_or_path))
        except RegistryError as exc:
            raise DataError(exc.message, hint="`evalkit list` shows the tasks; a path to a .toml task file also works") from None


def _peek_name(path: Path) -> str:
    """Only the name of a task file (the rest is validated when the task is used)."""
    text, raw = read_task_text(path)
    value = raw.get("name")
    parse(_NameOnly, {"name": value} if value is not None else {}, path=path, source=text)
    return str(value).strip()


class _NameOnly(Schema):
    name: TaskName
