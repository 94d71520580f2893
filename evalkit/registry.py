"""One generic registry for every pluggable kind (encoder backends, task adapters).

Ideas from lm-evaluation-harness: decorator registration, lazy entries
("module:attr" strings resolved on first use, so listing names imports nothing
heavy), entry-point discovery for third parties, an error on name collisions,
and "did you mean" suggestions for typos.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar, cast

from evalkit.errors import EvalkitError

T = TypeVar("T")

Check = Callable[[object], str | None]
"""What a registry asks of an entry: None if it is usable, else what is wrong with it ("must ...")."""


class RegistryError(EvalkitError):
    """Unknown or colliding registry name."""


class Registry(Generic[T]):
    """Maps case-insensitive names to objects, or to lazy "module:attr" references.

    ``check`` (optional) vets every entry when it is registered, or, for lazy and
    entry-point entries, when it is first imported: a wrong kind of object is a
    RegistryError naming the entry, never a TypeError deep inside a run.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None, check: Check | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.check = check
        self._entries: dict[str, T | str] = {}
        self._display: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T]:
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``."""

        def add(target: T) -> T:
            self._vet(name, target, _qualname(target) if hasattr(target, "__qualname__") else f"a {type(target).__name__}")
            self._add(name, target)
            return target

        if obj is not None:
            add(obj)
        return add

    def register_lazy(self, name: str, reference: str) -> None:
        """Register ``"package.module:attr"``, imported only when first looked up."""
        if ":" not in reference:
            raise ValueError(f"lazy reference must be 'module:attr', got {reference!r}")
        self._add(name, reference)

    def _add(self, name: str, target: T | str) -> None:
        key = name.lower()
        existing = self._entries.get(key)
        # A lazy entry being replaced by the object it points to is not a collision.
        same = existing is target or (isinstance(existing, str) and _qualname(target) == existing)
        if existing is not None and not same:
            raise RegistryError(
                f"{self.kind} '{name}' is already registered",
                hint=f"pick another name; existing entry is {_describe(existing)}",
            )
        self._entries[key] = target
        self._display.setdefault(key, name)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or self.entry_point_group is None:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name.lower() not in self._entries:
                self._add(ep.name, ep.value)

    def get(self, name: str) -> T:
        """Return the entry for ``name``, importing it if lazy."""
        key = name.lower()
        if key not in self._entries:
            self._load_entry_points()
        if key not in self._entries:
            raise RegistryError(self._unknown_message(name))
        entry = self._entries[key]
        if isinstance(entry, str):
            resolved = cast(T, _resolve(entry, self.kind, name))
            self._vet(name, resolved, entry)
            self._entries[key] = entry = resolved
        return entry

    def _vet(self, name: str, target: object, where: str) -> None:
        problem = self.check(target) if self.check is not None else None
        if problem:
            raise RegistryError(f"{self.kind} '{name}' ({where}) is not usable: it {problem}")

    def _unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=3)
        lookup = {n.lower(): n for n in names}
        if close:
            return f"unknown {self.kind} '{name}'; did you mean {', '.join(repr(lookup[c]) for c in close)}?"
        return f"unknown {self.kind} '{name}'; known: {', '.join(names) or '(none)'}"

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        self._load_entry_points()
        return name.lower() in self._entries

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._display[k] for k in self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def takes_arguments(n: int) -> Check:
    """A check: the entry is callable with ``n`` positional arguments (e.g. a backend factory taking a spec)."""

    def check(obj: object) -> str | None:
        if not callable(obj):
            return f"must be callable with {n} argument(s), but is a {type(obj).__name__}"
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            return None  # builtins without a signature: trust them
        try:
            signature.bind(*([None] * n))
        except TypeError as exc:
            return f"must be callable with {n} argument(s): {exc}"
        return None

    return check


def provides(*methods: str, arguments: int = 0) -> Check:
    """A check: the entry is callable with ``arguments`` arguments and has these callable attributes."""
    callable_check = takes_arguments(arguments)

    def check(obj: object) -> str | None:
        missing = [m for m in methods if not callable(getattr(obj, m, None))]
        if missing:
            return "must provide " + ", ".join(f"{m}()" for m in missing)
        return callable_check(obj)

    return check


def _resolve(reference: str, kind: str, name: str) -> object:
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
        obj: object = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"{kind} '{name}' points to {reference!r}, which cannot be imported: {exc}") from exc
    return obj


def _qualname(obj: object) -> str:
    module = getattr(obj, "__module__", "")
    qual = getattr(obj, "__qualname__", "")
    return f"{module}:{qual}"


def _describe(entry: object) -> str:
    return entry if isinstance(entry, str) else _qualname(entry)
