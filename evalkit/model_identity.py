"""The identity of a model's files: a digest of everything a loader can read.

An embedding is reused only under a key that covers what made it, so the identity of
a local model folder is a sha256 over the relative path and content of **every**
regular file under it, recursively: weights, ``config.json``, ``modules.json``,
``sentence_bert_config.json``, ``1_Pooling/config.json``, ``2_Dense/*``, tokenizer
files, vocab/merges, sentencepiece models, remote code. Editing any of them in
place (mean → CLS pooling, a new Dense layer, a changed vocabulary) changes the key;
touching a file without changing its bytes does not.

Skipped: entries whose name starts with ``.`` (``.git``, ``.gitattributes``, hub
``.locks``, evalkit's own ``.complete`` marker and ``.name.*.tmp`` temporary files)
and ``__pycache__`` (derived). Symbolic links are followed (hub snapshots are links
into a blob store), each directory once. A non-regular file (FIFO, device) is never
opened (that could hang): its name and kind enter the digest instead.

File digests are memoised by (real path, device, inode, size, mtime_ns, ctime_ns), in
memory and in ``<evalkit cache>/file-digests`` so a fresh process does not re-read a
400 MB checkpoint. ``ctime`` changes on every write and cannot be set back by
``touch`` or ``cp -p``; a file changed within the last :data:`RACY_SECONDS` is never
memoised (a second write in the same timestamp tick could otherwise go unseen, as in
git's "racily clean" index entries). A folder that cannot be read completely, or
that changes while it is hashed, gets an ``unhashable:`` identity: its vectors are
never cached rather than keyed by a guess.

In-memory objects (``evalkit.evaluate`` on a model object) have no files: their identity
is :func:`object_digest`, a digest of every value reachable from the object (tensors,
buffers, attributes, configuration, tokenizer, code outside the numeric libraries), or
:class:`NoIdentity` when any of it cannot be digested canonically. A digest of what is
reachable cannot cover what arbitrary code reads when it runs (a weight drawn lazily, a
class or module attribute, an environment variable), so it is taken only of objects whose
whole encode path is library code that evalkit runs (:func:`evalkit.encoders.objects.unknown_code`
decides); every other object has no identity at all.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.io.atomic import write_memo

if TYPE_CHECKING:
    from evalkit.spec import EncoderSpec

RACY_SECONDS = 3.0
CHUNK = 1 << 22
UNHASHABLE = "unhashable:"
_HEX64 = re.compile(r"[0-9a-f]{64}")

_MEMO: dict[tuple[object, ...], str] = {}


class Unhashable(Exception):
    """A file that could not be read whole and unchanged."""


def weights_identity(source: str, revision: str | None) -> str:
    """``sha256:<digest>`` of a local model folder's files; ``hub:<id>@<revision>`` for a hub id.

    ``unhashable:<reason>`` when the folder could not be read completely and unchanged
    (the cache then refuses to key vectors on it).
    """
    folder = Path(source)
    if not folder.is_dir():
        return f"hub:{source}@{revision or 'main'}"
    try:
        return "sha256:" + folder_digest(folder)[:32]
    except (OSError, Unhashable) as exc:
        return f"{UNHASHABLE}{type(exc).__name__}: {exc}"


def folder_digest(folder: Path) -> str:
    """sha256 over (relative path, kind, content digest) of every file under ``folder`` (see module docstring)."""
    digest = hashlib.sha256()
    for relative, path, info in _walk(folder):
        if stat.S_ISREG(info.st_mode):
            entry = f"file\0{relative}\0{file_digest(path, info)}\n"
        else:
            entry = f"special\0{relative}\0{stat.S_IFMT(info.st_mode)}\n"
        digest.update(entry.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _walk(folder: Path) -> list[tuple[str, Path, os.stat_result]]:
    """(relative posix path, path, stat) of every non-skipped non-directory entry, sorted; links followed once."""
    found: list[tuple[str, Path, os.stat_result]] = []
    seen_dirs: set[tuple[int, int]] = set()
    pending = [(folder, "")]
    while pending:
        current, prefix = pending.pop()
        here = current.stat()
        if (here.st_dev, here.st_ino) in seen_dirs:
            continue
        seen_dirs.add((here.st_dev, here.st_ino))
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name == "__pycache__":
                    continue
                path = Path(entry.path)
                relative = prefix + entry.name
                try:
                    info = path.stat()  # follows links
                except FileNotFoundError:  # a dangling link: the loader cannot read it either
                    found.append((relative, path, path.lstat()))
                    continue
                if stat.S_ISDIR(info.st_mode):
                    pending.append((path, relative + "/"))
                else:
                    found.append((relative, path, info))
    return sorted(found, key=lambda item: item[0])


def file_digest(path: Path, info: os.stat_result | None = None) -> str:
    """sha256 of a regular file's bytes, memoised while the file is provably unchanged."""
    info = info or path.stat()
    key = _memo_key(path, info)
    if key in _MEMO:
        return _MEMO[key]
    stable = time.time() - max(info.st_mtime_ns, info.st_ctime_ns) / 1e9 > RACY_SECONDS
    memo_file = _memo_file(key)
    if stable and memo_file is not None:
        try:
            text = memo_file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeError):
            text = ""
        if _HEX64.fullmatch(text):
            _MEMO[key] = text
            return text
    value = _hash_file(path, info)
    if stable:
        _MEMO[key] = value
        if memo_file is not None:
            _store(memo_file, value)
    return value


def _hash_file(path: Path, info: os.stat_result) -> str:
    """Read at most the stat'ed size (+1 byte to notice growth); refuse a file that changed meanwhile."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise Unhashable(f"{path} was replaced while it was hashed")
        remaining = info.st_size + 1
        while remaining > 0:
            chunk = os.read(fd, min(CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if remaining != 1 or (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (info.st_size, info.st_mtime_ns, info.st_ctime_ns):
        raise Unhashable(f"{path} changed while it was hashed")
    return digest.hexdigest()


def _memo_key(path: Path, info: os.stat_result) -> tuple[object, ...]:
    return (os.path.realpath(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _memo_file(key: tuple[object, ...]) -> Path | None:
    """Where the on-disk memo of ``key`` lives (``<evalkit cache>/file-digests/xx/<sha256 of key>``)."""
    from evalkit.catalogue import cache_dir

    try:
        name = hashlib.sha256(repr(key).encode("utf-8", "surrogateescape")).hexdigest()
        return cache_dir() / "file-digests" / name[:2] / name
    except (OSError, RuntimeError):  # no home directory to put a cache in
        return None


def _store(memo_file: Path, value: str) -> None:
    """Best effort: a memo that cannot be written only costs a re-read next time (a torn one fails the check on read)."""
    write_memo(memo_file, value.encode("ascii"))


NO_MODEL_BACKENDS = frozenset({"tfidf", "obj"})  # a label, not a model folder (obj: see encoders.objects.config_identity)


def spec_model_identity(spec: EncoderSpec) -> str:
    """The identity of the model a spec names, without loading it: a local folder's content digest, else ''.

    It is part of every cell's configuration hash, so a result stored for a model folder
    that has since been edited in place is redone on resume instead of being reused.
    Hub ids are keyed by the spec itself (their revision option); a model that cannot be
    resolved here is left to fail when it loads.
    """
    if spec.backend in NO_MODEL_BACKENDS:
        return ""
    from evalkit.catalogue import resolve
    from evalkit.errors import EvalkitError

    try:
        source = resolve(spec.model)
    except (EvalkitError, OSError, ValueError):
        return ""
    folder = Path(source)
    if not folder.is_dir():
        return ""
    return weights_identity(str(folder), spec.opts.get("revision"))


# ---------------------------------------------------------------------------------------------------------------------
# In-memory objects (evalkit.encoders.objects): a digest of every value reachable from the object


class NoIdentity(Exception):
    """An in-memory object holds a value evalkit cannot digest canonically: it is never cached and never shared."""


# Values that cannot change a vector and vary with how the object was made (model card texts, training logs).
SKIPPED_ATTRIBUTES = frozenset({"model_card_data", "_model_card_vars", "_model_card_text"})
MAX_NODES = 2_000_000
HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class created at run time (class statement), not a static C type
# Modules whose code is covered by the library versions in the cache key; code from anywhere else is digested.
LIBRARY_PACKAGES = frozenset(
    {
        "abc",
        "builtins",
        "collections",
        "typing",
        "torch",
        "transformers",
        "sentence_transformers",
        "tokenizers",
        "numpy",
        "safetensors",
        "model2vec",
        "kernels",  # Hugging Face kernels: transformers decorates its layers with it
    }
)


def object_digest(value: object, *, skip: frozenset[str] = frozenset()) -> str:
    """sha256 over everything reachable from ``value`` that can change what it computes.

    Tensors and arrays by dtype, shape and bytes (parameters, persistent *and*
    non-persistent buffers alike); scalars, strings, containers, dtypes, devices and
    enums by value; a Hugging Face configuration by its full JSON; a tokenizer's Rust
    backend by its serialisation; functions (hooks, a class's methods outside the
    numeric libraries) by their code, constants and closures; any other object by its
    class and its attributes, recursively (cycles by position). Attribute names in
    ``skip`` are left out. A value of any other kind raises :class:`NoIdentity` naming
    where it sits: such an object has no identity evalkit can vouch for.

    The digest covers the object's *reachable state*, not what its code may read at run
    time: it is a sound identity only for objects whose encode path is known library code
    (:func:`evalkit.encoders.objects.unknown_code`), and is used only for those.
    """
    return _Digester(skip).run(value)


class _Digester:
    def __init__(self, skip: frozenset[str]) -> None:
        self.skip = skip | SKIPPED_ATTRIBUTES
        self.digest = hashlib.sha256()
        self.seen: dict[int, int] = {}
        self.keep: list[object] = []  # ids stay unique while the walk holds every visited object
        self.classes: set[int] = set()

    def run(self, value: object) -> str:
        self.visit(value, "object")
        return self.digest.hexdigest()

    def put(self, *parts: object) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode("utf-8", "surrogatepass")
            self.digest.update(len(data).to_bytes(8, "little"))
            self.digest.update(data)

    def visit(self, value: object, where: str) -> None:  # one dispatch over the kinds of value
        import enum
        import types

        if value is None or isinstance(value, bool | int | float | complex | str | bytes):
            self.put(type(value).__name__, repr(value) if not isinstance(value, bytes) else value)
            return
        if isinstance(value, enum.Enum):
            self.put("enum", _qualname(type(value)), repr(value.value))
            return
        key = id(value)
        if key in self.seen:
            self.put("ref", self.seen[key])
            return
        if len(self.seen) >= MAX_NODES:
            raise NoIdentity(f"{where}: more than {MAX_NODES} values to digest")
        self.seen[key] = len(self.seen)
        self.keep.append(value)
        torch = _module("torch")
        numpy = _module("numpy")
        if torch is not None and isinstance(value, torch.Tensor):
            self._tensor(value, torch)
            return
        if numpy is not None and isinstance(value, numpy.ndarray | numpy.generic):
            array = numpy.ascontiguousarray(value)
            if array.dtype.hasobject:
                raise NoIdentity(f"{where}: a NumPy array of Python objects")
            self.put("ndarray", array.dtype.str, array.shape, array.tobytes())
            return
        if torch is not None and isinstance(value, torch.dtype | torch.device | torch.Size):
            self.put(type(value).__name__, repr(value))
            return
        if isinstance(value, re.Pattern):  # a compiled pattern is its source and flags (transformers 5.0 keeps some on models)
            self.put("pattern", value.pattern, value.flags)
            return
        if isinstance(value, list | tuple | set | frozenset | dict):
            self._container(value, where)
            if type(value) not in (list, tuple, set, frozenset, dict):  # a subclass: its class and own attributes too
                self._instance(value, where, container=True)
            return
        if isinstance(value, functools.partial):
            self.put("partial")
            self.visit(value.func, where + ".func")
            self.visit(value.args, where + ".args")
            self.visit(value.keywords, where + ".keywords")
            return
        if isinstance(value, types.FunctionType | types.MethodType | types.BuiltinFunctionType | type | types.ModuleType):
            self._code_object(value, where)
            return
        if isinstance(value, types.CodeType):
            self._code(value, where)
            return
        tokenizers = _module("tokenizers")
        if tokenizers is not None and isinstance(value, tokenizers.Tokenizer):
            self.put("tokenizer", value.to_str())
            return
        to_json = getattr(value, "to_json_string", None)
        transformers = _module("transformers")
        if transformers is not None and isinstance(value, transformers.PretrainedConfig) and callable(to_json):
            self.put("config", _qualname(type(value)), to_json(use_diff=False))
            return
        import weakref

        if isinstance(value, weakref.ref):
            self.visit(value(), where + "()")
            return
        self._instance(value, where)

    def _tensor(self, tensor: Any, torch: Any) -> None:
        data = tensor.detach()
        if data.is_sparse or getattr(data, "is_quantized", False) or data.device.type == "meta":
            raise NoIdentity(f"a {data.layout} / quantised / meta tensor")
        data = data.cpu().contiguous()
        try:
            raw = bytes(data.view(-1).view(torch.uint8).numpy())
        except (RuntimeError, TypeError):
            raw = bytes(data.float().numpy())
        self.put("tensor", str(data.dtype), tuple(data.shape), raw)

    def _container(self, value: Any, where: str) -> None:
        self.put(type(value).__name__, len(value))
        if isinstance(value, dict):
            items = list(value.items())
            if type(value) is dict or not _ordered(value):
                items = sorted(items, key=lambda kv: self._sort_key(kv[0]))
            for k, v in items:
                self.visit(k, where)
                if not (isinstance(k, str) and k in self.skip):
                    self.visit(v, f"{where}[{k!r}]")
            return
        elements = sorted(value, key=self._sort_key) if isinstance(value, set | frozenset) else list(value)
        for i, element in enumerate(elements):
            self.visit(element, f"{where}[{i}]")

    def _sort_key(self, value: object) -> str:
        if value is None or isinstance(value, bool | int | float | str | bytes):
            return f"{type(value).__name__}:{value!r}"
        return type(value).__name__

    def _code_object(self, value: Any, where: str) -> None:
        import types

        if isinstance(value, types.MethodType):
            self.put("method")
            self._code_object(value.__func__, where)
            self.visit(value.__self__, where + ".__self__")
            return
        self.put(type(value).__name__, _qualname(value))
        if isinstance(value, type):
            if id(value) in self.classes or is_library(value):
                return
            self.classes.add(id(value))
            for klass in value.__mro__:  # the code of a class outside the libraries is part of what it computes
                if is_library(klass):
                    continue
                for name, member in sorted(vars(klass).items()):
                    if isinstance(member, types.FunctionType | staticmethod | classmethod | property):
                        self.put(name)
                        self._code_object(getattr(member, "__func__", None) or getattr(member, "fget", None) or member, where)
            return
        if isinstance(value, types.FunctionType) and not is_library(value):
            self._code(value.__code__, where)
            self.visit(value.__defaults__, where + ".__defaults__")
            self.visit(value.__kwdefaults__, where + ".__kwdefaults__")
            scope = value.__globals__
            for name in sorted(_names(value.__code__)):  # the module-level values and helpers its code reads
                if name in scope and not name.startswith("__"):
                    self.put("global", name)
                    self.visit(scope[name], f"{where}.<global {name}>")
            for cell in value.__closure__ or ():
                try:
                    contents = cell.cell_contents
                except ValueError:  # an empty cell
                    contents = None
                self.visit(contents, f"{where}.<closure>")

    def _code(self, code: Any, where: str) -> None:
        import types

        self.put("code", code.co_code, code.co_names, code.co_varnames)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self._code(const, where)
            else:
                self.visit(const, where)

    def _instance(self, value: object, where: str, container: bool = False) -> None:
        klass = type(value)
        if not container and not klass.__flags__ & HEAP_TYPE:  # a C type: its state is not in attributes evalkit can read
            raise NoIdentity(f"{where}: a {_qualname(klass)} (a type implemented in C) cannot be fingerprinted")
        state = getattr(value, "__dict__", None)
        slots = [s for k in klass.__mro__ for s in getattr(k, "__slots__", ()) if s != "__dict__" and s != "__weakref__"]
        if not isinstance(state, dict) and not slots:
            if container:
                return
            raise NoIdentity(f"{where}: a {_qualname(klass)} has no attributes evalkit can read")
        self.put("instance")
        self.visit(klass, where)
        if isinstance(state, dict):
            for name in sorted(state):
                if name in self.skip:
                    continue
                self.put(name)
                self.visit(state[name], f"{where}.{name}")
        for name in sorted(set(slots)):
            if name in self.skip or not hasattr(value, name):
                continue
            self.put(name)
            self.visit(getattr(value, name), f"{where}.{name}")


def _names(code: Any) -> set[str]:
    """The global names a code object (and the functions nested in it) reads."""
    import types

    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _module(name: str) -> Any:
    import sys

    return sys.modules.get(name)


def _ordered(value: object) -> bool:
    import collections

    return isinstance(value, collections.OrderedDict)


def _qualname(value: Any) -> str:
    return f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', None) or getattr(value, '__name__', '?')}"


def is_library(value: Any) -> bool:
    """Whether ``value`` (a class, a function, an instance) comes from one of :data:`LIBRARY_PACKAGES`."""
    module = getattr(value, "__module__", None)
    return isinstance(module, str) and module.partition(".")[0] in LIBRARY_PACKAGES
