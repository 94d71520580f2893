"""The persistent embedding cache: a vector is reused only under the exact key that made it.

A *namespace* is one digest over everything that determines a vector except the
text: the encoder's fingerprint (a digest of every file of a local model folder —
see :mod:`evalkit.model_identity` — tokenizer, max length, pooling, layer, prompts,
dtype), the canonical spec, the role (query/document), the device, the versions of
the libraries that compute the numbers and the cache format. Inside a namespace,
vectors are keyed by the sha256 of the text. Layout::

    ROOT/<ns[:2]>/<ns>/key.json          the namespace payload (informational, for people)
    ROOT/<ns[:2]>/<ns>/shard-*.npz       digests (n, 32) uint8 + vectors (n, dim) float32 + checksum

Shards are written whole (temporary file, fsync, rename) and never modified, so
concurrent writers (several processes, Ray workers) only ever add files; compaction
writes the merged shard before it removes the ones it merged. Each shard carries a
sha256 over its namespace key and both arrays, so a truncated, corrupted or
misplaced shard (or a directory, link or device in its place) is a miss with one
``evalkit: warning:`` line, never a wrong vector and never a failed cell. A cache
folder that cannot be written (read-only, a file in the way, disk full) is read but
no longer written for the rest of the process, again with one warning line.
Corpus-fitted encoders (TF-IDF), hub models without a pinned revision, folders that
could not be hashed, encoders whose fingerprint names no weights and those that say they have
no identity (``weights = none:…``, :func:`evalkit.encoders.base.no_identity`: an in-memory object
evalkit cannot fingerprint) are never cached.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from evalkit.encoders.base import CorpusFitted, Encoder, EncoderWrapper, Role
from evalkit.faults import faultpoint
from evalkit.io.atomic import atomic_write

FORMAT_VERSION = 2
COMPACT_AFTER = 32  # shards per namespace before they are merged into one
# Libraries whose version can change a vector's bits (kernels, tokenisation, pooling code, weight loading).
NUMERIC_LIBRARIES = ("numpy", "torch", "transformers", "tokenizers", "sentence-transformers", "model2vec", "safetensors")
MEMBERS: dict[str, np.dtype[Any]] = {
    "digests.npy": np.dtype(np.uint8),
    "vectors.npy": np.dtype(np.float32),
    "checksum.npy": np.dtype(np.uint8),
}
_NAMESPACE = re.compile(r"[0-9a-f]{64}")
_WARNED: set[tuple[str, str]] = set()


def default_root() -> Path:
    """``$EVALKIT_CACHE_DIR/embeddings`` (default ``~/.cache/evalkit/embeddings``)."""
    from evalkit.catalogue import cache_dir

    return cache_dir() / "embeddings"


def warn_once(kind: str, subject: str, message: str) -> None:
    """One ``evalkit: warning:`` line on stderr per (kind, subject) per process (above a progress bar, if one is drawn)."""
    if (kind, subject) in _WARNED:
        return
    _WARNED.add((kind, subject))
    line = f"evalkit: warning: {message}"
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:
        tqdm.tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def innermost(encoder: Any) -> Any:
    """The encoder under any wrappers (MeteredEncoder, CachedEncoder) that expose ``inner``."""
    while hasattr(encoder, "inner"):
        encoder = encoder.inner
    return encoder


def uncacheable_reason(encoder: Encoder, fingerprint: dict[str, str]) -> str | None:
    """Why ``encoder``'s vectors cannot be keyed safely, or None if they can."""
    from evalkit.model_identity import UNHASHABLE

    if isinstance(innermost(encoder), CorpusFitted) or fingerprint.get("corpus_fitted") == "true":
        return "corpus-fitted: its vectors depend on the task's whole text collection"
    from evalkit.encoders.base import NO_IDENTITY

    weights = fingerprint.get("weights", "")
    if not weights:  # a third-party factory's fingerprint (a Backend's is checked when it loads)
        return "its fingerprint names no weights identity, so a changed model could not be told apart"
    if weights.startswith(NO_IDENTITY):
        return f"it has no identity ({weights.removeprefix(NO_IDENTITY)})"
    if getattr(innermost(encoder), "cacheable", True) is False:
        return "its encoder says its vectors must not be cached"
    if weights.startswith(UNHASHABLE):
        return f"its model folder could not be hashed ({weights.removeprefix(UNHASHABLE)})"
    if weights.startswith("hub:") and not re.fullmatch(r"[0-9a-f]{40}", weights.rpartition("@")[2]):
        return "hub model not pinned to a commit (revision=<40-hex sha>): its weights can change under the same name"
    return None


@functools.cache
def library_versions() -> dict[str, str]:
    """Installed versions of :data:`NUMERIC_LIBRARIES` ("-" where absent); read from metadata, nothing imported."""
    from importlib import metadata

    versions = {}
    for name in NUMERIC_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    return versions


def namespace_payload(encoder: Encoder, role: Role | None, device: str) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "spec": str(encoder.spec),
        "fingerprint": dict(sorted(encoder.fingerprint().items())),
        "role": role.value if role is not None else "none",
        "device": device,
        "libraries": library_versions(),
    }


def namespace_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def shard_checksum(key: str, digests: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """sha256 over the namespace key, the shapes and both arrays' bytes (a shard vouches for where it belongs)."""
    digest = hashlib.sha256(f"{key}\0{digests.shape}\0{vectors.shape}\0".encode())
    digest.update(np.ascontiguousarray(digests).tobytes())
    digest.update(np.ascontiguousarray(vectors).tobytes())
    return np.frombuffer(digest.digest(), dtype=np.uint8)


class Namespace:
    """The vectors of one (encoder configuration, role): text digest -> vector."""

    def __init__(self, folder: Path, payload: dict[str, Any], key: str | None = None) -> None:
        self.folder = folder
        self.payload = payload
        self.key = key or namespace_key(payload)
        self._rows: dict[bytes, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._shards: set[Path] = set()  # the shard files whose vectors are held here
        self._load()

    def _load(self) -> None:
        digests: list[np.ndarray] = []
        blocks: list[np.ndarray] = []
        for shard in _shard_files(self.folder):
            loaded = _read_shard(shard, self.key)
            if loaded is None:  # removed meanwhile (another process compacted): nothing to say
                continue
            if isinstance(loaded, str):
                _warn_unreadable(shard, loaded)
                continue
            if blocks and loaded[1].shape[1] != blocks[0].shape[1]:
                _warn_unreadable(shard, f"{loaded[1].shape[1]}-dimensional vectors among {blocks[0].shape[1]}-dimensional ones")
                continue
            digests.append(loaded[0])
            blocks.append(loaded[1])
            self._shards.add(shard)
        if blocks:
            self._vectors = np.concatenate(blocks)
            keys = np.concatenate(digests)
            self._rows = {bytes(k): i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, digests: Sequence[bytes]) -> tuple[list[int], np.ndarray]:
        """Positions of ``digests`` that are missing, and the stored vectors of the others (in order)."""
        rows = [self._rows.get(d, -1) for d in digests]
        missing = [i for i, r in enumerate(rows) if r < 0]
        found = np.asarray([r for r in rows if r >= 0], dtype=np.int64)
        return missing, self._vectors[found] if len(found) else np.zeros((0, self._vectors.shape[1]), dtype=np.float32)

    @property
    def dim(self) -> int | None:
        return int(self._vectors.shape[1]) if len(self._rows) else None

    def add(self, digests: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store new vectors as one new shard (atomic) and make them visible here; OSError if the folder cannot take it."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not len(digests) or vectors.ndim != 2 or len(vectors) != len(digests) or (self.dim is not None and vectors.shape[1] != self.dim):
            return
        keys = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), 32)
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "key.json"
        if not key_file.is_file():
            _atomic_bytes(key_file, json.dumps(self.payload, indent=1, sort_keys=True).encode())
        shard = self.folder / f"shard-{uuid.uuid4().hex}.npz"
        _atomic_npz(shard, self.key, keys, vectors)
        self._shards.add(shard)
        start = len(self._vectors)
        self._vectors = vectors if not start else np.concatenate([self._vectors, vectors])
        for i, d in enumerate(digests):
            self._rows.setdefault(d, start + i)
        if len(self._shards) > COMPACT_AFTER:
            self._compact()

    def _compact(self) -> None:
        """Merge the shards this process has read or written into one; others' new shards stay untouched.

        The merged shard is complete on disk before any shard is removed, so a crash or a
        full disk in between leaves duplicates (harmless), never a lost vector; two
        processes compacting at once each write their own merged shard.
        """
        keys = np.frombuffer(b"".join(self._rows), dtype=np.uint8).reshape(len(self._rows), 32)
        merged = self.folder / f"shard-{uuid.uuid4().hex}.npz"
        _atomic_npz(merged, self.key, keys, self._vectors[list(self._rows.values())])
        for shard in self._shards:
            shard.unlink(missing_ok=True)
        self._shards = {merged}


class EmbeddingCache:
    """A folder of namespaces; ``evalkit cache info`` / ``clear`` operate on it."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self._open: dict[str, Namespace] = {}
        self.write_error: str | None = None  # set once a write failed: the cache is then only read

    def namespace(self, encoder: Encoder, role: Role | None, device: str) -> Namespace:
        payload = namespace_payload(encoder, role, device)
        key = namespace_key(payload)
        if key not in self._open:
            self._open[key] = Namespace(self.root / key[:2] / key, payload, key)
        return self._open[key]

    def wrap(self, encoder: Encoder, device: str = "cpu") -> Encoder:
        """``encoder`` behind this cache, or ``encoder`` itself when it must not be cached."""
        if uncacheable_reason(encoder, encoder.fingerprint()) is not None:
            return encoder
        return CachedEncoder(encoder, self, device)

    def store(self, space: Namespace, digests: Sequence[bytes], vectors: np.ndarray) -> None:
        """Add vectors to ``space`` unless writing has failed before; a failure warns once and stops further writes."""
        if self.write_error is not None:
            return
        try:
            space.add(digests, vectors)
        except OSError as exc:
            self.write_error = exc.strerror or str(exc)
            warn_once(
                "unwritable",
                str(self.root),
                f"embedding cache folder {self.root} cannot be written ({self.write_error}); continuing without "
                "storing vectors in it (pass --no-cache to skip the cache, or --cache-dir to use another folder)",
            )

    def info(self) -> CacheInfo:
        namespaces, entries, size, unreadable = 0, 0, 0, 0
        for folder in self._folders():
            namespaces += 1
            for shard in _shard_files(folder):
                with contextlib.suppress(OSError):
                    size += shard.lstat().st_size
                loaded = _read_shard(shard, folder.name)
                if isinstance(loaded, str):
                    unreadable += 1
                elif loaded is not None:
                    entries += len(loaded[0])
        return CacheInfo(self.root, namespaces, entries, size, unreadable)

    def clear(self) -> int:
        """Delete every namespace folder (only folders named like one: a wrong ``--cache-dir`` loses nothing else)."""
        folders = self._folders()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        self._open.clear()
        return len(folders)

    def _folders(self) -> list[Path]:
        """Real directories ``ROOT/xx/<64 hex starting with xx>`` (links are not followed, so never deleted through)."""
        found = []
        for prefix in _entries(self.root):
            if len(prefix.name) != 2 or not _is_real_dir(prefix):
                continue
            found += [p for p in _entries(prefix) if _NAMESPACE.fullmatch(p.name) and p.name[:2] == prefix.name and _is_real_dir(p)]
        return sorted(found)


@dataclass(frozen=True)
class CacheInfo:
    root: Path
    namespaces: int
    entries: int
    bytes: int
    unreadable: int = 0  # shard files that are ignored (corrupt, truncated, not a regular file)


STORED_RANGE = (2.0**-16, 2.0**32)
"""Largest magnitudes of the vectors stored: those the scorer reads unscaled (``evalkit.adapters.base.RESCALE_BELOW..ABOVE``).

A vector stored is cast to float32; one outside this range would be rescaled in float64 by the scorer
before its cast (1e-310 is 0 in float32, 1e40 is infinite), so its cached copy would not be what the
scorer reads: such a result is handed on uncached, as the encoder returned it."""


def storable(raw: object) -> np.ndarray | None:
    """``raw`` as the float32 (n, dim) array to cache, or None when float32 would not hold what the scorer reads from it.

    Stored: real numbers (float, int), finite, each vector all zero or with its largest magnitude in
    :data:`STORED_RANGE`; their float32 copy is what the vector check (``evalkit.adapters.base.VectorCheck``)
    makes of the original, so a cached run scores exactly as an uncached one. Anything else (complex,
    objects, NaN, values beyond float32, vectors that need rescaling) is passed through for the check to
    rescale or refuse.
    """
    try:
        array = np.asarray(raw)
    except Exception:
        return None
    if array.dtype.kind not in "fiu" or array.ndim != 2 or 0 in array.shape or array.dtype.itemsize > 8:
        return None
    wide = np.asarray(array, dtype=np.float64)
    if not np.isfinite(wide).all():
        return None
    peaks = np.max(np.abs(wide), axis=1)
    low, high = STORED_RANGE
    if not ((peaks == 0) | ((peaks >= low) & (peaks <= high))).all():
        return None
    return np.asarray(array, dtype=np.float32)


def _merged(raw: object, found: np.ndarray, missing: list[int], n: int, again: Callable[[], np.ndarray]) -> np.ndarray:
    """Cached rows and ``raw`` fresh ones in text order, in ``raw``'s own dtype (float64 at least); ``again()`` if they cannot merge."""
    try:
        fresh = np.asarray(raw)
    except Exception:
        return again()
    if fresh.dtype.kind not in "fiu" or fresh.ndim != 2 or fresh.shape != (len(missing), found.shape[1]):
        return again()  # not numbers to merge: the whole call afresh, for the scorer to judge
    out = np.empty((n, fresh.shape[1]), dtype=np.result_type(fresh.dtype, np.float64))
    is_missing = np.zeros(n, dtype=bool)
    is_missing[missing] = True
    out[is_missing] = fresh
    out[~is_missing] = found
    return out


class CachedEncoder(EncoderWrapper):
    """An Encoder that answers from the cache and sends only the missing texts to ``inner``.

    ``hits`` / ``misses`` count texts since the last ``reset_counts``, so the throughput
    section can say which share of the vectors came from the model.
    """

    def __init__(self, inner: Encoder, cache: EmbeddingCache, device: str = "cpu") -> None:
        super().__init__(inner)
        self.cache = cache
        self.device = device
        self.hits = 0
        self.misses = 0

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        space = self.cache.namespace(self.inner, role, self.device)
        digests = [text_digest(t) for t in texts]
        missing, found = space.lookup(digests)
        if not missing:
            self.hits += len(texts)
            return found
        raw = self.inner.encode([texts[i] for i in missing], role)
        fresh = storable(raw)
        if fresh is None:  # not what float32 holds as the scorer would read it: handed on as it is, never stored
            self.misses += len(missing)
            if len(missing) == len(texts):
                return raw
            self.hits += len(texts) - len(missing)
            return _merged(raw, found, missing, len(texts), lambda: self.inner.encode(texts, role))
        if len(missing) < len(texts) and fresh.shape[1] != found.shape[1]:
            warn_once("dimension", space.key, f"the model's vectors no longer match the cached ones in {space.folder}; encoding afresh")
            self.misses += len(texts)
            return self.inner.encode(texts, role)
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        self.cache.store(space, [digests[i] for i in missing], fresh)
        if len(missing) == len(texts):
            return fresh
        out = np.empty((len(texts), fresh.shape[1]), dtype=np.float32)
        is_missing = np.zeros(len(texts), dtype=bool)
        is_missing[missing] = True
        out[is_missing] = fresh
        out[~is_missing] = found
        return out

    def reset_counts(self) -> dict[str, float | int]:
        """Hits and misses so far (then zeroed), as throughput fields."""
        total = self.hits + self.misses
        counts: dict[str, float | int] = {
            "cached_sentences": self.hits,
            "cached_fraction": round(self.hits / total, 6) if total else 0.0,
        }
        self.hits = self.misses = 0
        return counts


def _warn_unreadable(shard: Path, reason: str) -> None:
    warn_once(
        "shard",
        str(shard),
        f"embedding cache shard {shard} is unreadable ({reason}); ignored, its vectors are computed again (evalkit cache clear removes it)",
    )


def _entries(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries]
    except OSError:  # missing, not a folder, unreadable: nothing cached there
        return []


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _shard_files(folder: Path) -> list[Path]:
    return sorted(p for p in _entries(folder) if p.name.startswith("shard-") and p.name.endswith(".npz"))


def _read_shard(path: Path, key: str) -> tuple[np.ndarray, np.ndarray] | str | None:
    """(digests, vectors) of a shard; a reason (str) if it is unusable; None if it vanished meanwhile.

    Only a regular file is opened (never through a link: no FIFO that blocks, no
    ``/dev/zero``), as an uncompressed zip of exactly the three arrays evalkit writes,
    each no larger than the file; then the checksum must match this namespace.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return "a symbolic link" if path.is_symlink() else f"cannot open: {exc.strerror or exc}"
    try:
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return "not a regular file"
            arrays = _read_members(handle, info.st_size)
    except Exception as exc:  # any failure to parse a cache file is a miss, whatever the library raises
        return f"{type(exc).__name__}: {exc}"[:200]
    if isinstance(arrays, str):
        return arrays
    digests, vectors, checksum = arrays["digests.npy"], arrays["vectors.npy"], arrays["checksum.npy"]
    if digests.ndim != 2 or digests.shape[1] != 32 or vectors.ndim != 2 or len(digests) != len(vectors) or vectors.shape[1] < 1:
        return f"inconsistent shapes {digests.shape} and {vectors.shape}"
    if checksum.shape != (32,) or not np.array_equal(checksum, shard_checksum(key, digests, vectors)):
        return "checksum mismatch: corrupted, or written for another namespace"
    return digests, vectors


def _read_members(handle: BinaryIO, size: int) -> dict[str, np.ndarray] | str:
    with zipfile.ZipFile(handle) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        if set(infos) != set(MEMBERS):
            return f"unexpected members {sorted(infos)[:5]}"
        arrays = {}
        for name, dtype in MEMBERS.items():
            entry = infos[name]
            if entry.compress_type != zipfile.ZIP_STORED or entry.file_size > size:
                return f"{name} is compressed or larger than the file"
            with archive.open(entry) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, fortran, found = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, fortran, found = np.lib.format.read_array_header_2_0(member)
                count = int(np.prod(shape, dtype=np.int64)) if shape else 1
                if found != dtype or fortran or count * dtype.itemsize > entry.file_size:
                    return f"{name}: dtype {found}, shape {shape}"
                data = member.read(count * dtype.itemsize)
                if len(data) != count * dtype.itemsize:
                    return f"{name} is truncated"
                arrays[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
        return arrays


def _atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file so that readers see the old one or the whole new one, never a part."""

    def written(handle: BinaryIO) -> None:
        write(handle)
        handle.flush()
        faultpoint("cache.write")

    atomic_write(path, written)


def _atomic_npz(path: Path, key: str, digests: np.ndarray, vectors: np.ndarray) -> None:
    checksum = shard_checksum(key, digests, vectors)
    _atomic(path, lambda handle: np.savez(handle, digests=digests, vectors=vectors, checksum=checksum))


def _atomic_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda handle: handle.write(data))
