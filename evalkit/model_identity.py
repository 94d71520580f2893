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
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

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
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{memo_file.name}.", suffix=".tmp", dir=memo_file.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(value)
        os.replace(tmp, memo_file)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


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
