"""The persistent embedding cache: a vector is reused only under the exact key that made it.

A *namespace* is one digest over everything that determines a vector except the
text: the encoder's fingerprint (weights hash, tokenizer, max length, pooling,
layer, prompts, dtype), the canonical spec, the role (query/document), the device
and the cache format. Inside a namespace, vectors are keyed by the sha256 of the
text. Layout::

    ROOT/<ns[:2]>/<ns>/key.json          the namespace payload (for ``evalkit cache info``)
    ROOT/<ns[:2]>/<ns>/shard-*.npz       digests (n, 32) uint8 + vectors (n, dim) float32

Shards are written whole (temporary file, fsync, rename) and never modified, so
concurrent writers (several processes, Ray workers) only ever add files; a shard
that cannot be read is ignored (a miss, never a wrong vector). Corpus-fitted
encoders (TF-IDF) and hub models without a pinned revision are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from evalkit.encoders.base import CorpusFitted, Encoder, EncoderWrapper, Role

FORMAT_VERSION = 1
COMPACT_AFTER = 32  # shards per namespace before they are merged into one


def default_root() -> Path:
    """``$EVALKIT_CACHE_DIR/embeddings`` (default ``~/.cache/evalkit/embeddings``)."""
    from evalkit.catalogue import cache_dir

    return cache_dir() / "embeddings"


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def innermost(encoder: Any) -> Any:
    """The encoder under any wrappers (MeteredEncoder, CachedEncoder) that expose ``inner``."""
    while hasattr(encoder, "inner"):
        encoder = encoder.inner
    return encoder


def uncacheable_reason(encoder: Encoder, fingerprint: dict[str, str]) -> str | None:
    """Why ``encoder``'s vectors cannot be keyed safely, or None if they can."""
    if isinstance(innermost(encoder), CorpusFitted) or fingerprint.get("corpus_fitted") == "true":
        return "corpus-fitted: its vectors depend on the task's whole text collection"
    weights = fingerprint.get("weights", "")
    if weights.startswith("hub:") and not re.fullmatch(r"[0-9a-f]{40}", weights.rpartition("@")[2]):
        return "hub model not pinned to a commit (revision=<40-hex sha>): its weights can change under the same name"
    return None


def namespace_payload(encoder: Encoder, role: Role | None, device: str) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "spec": str(encoder.spec),
        "fingerprint": dict(sorted(encoder.fingerprint().items())),
        "role": role.value if role is not None else "none",
        "device": device,
    }


def namespace_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class Namespace:
    """The vectors of one (encoder configuration, role): text digest -> vector."""

    def __init__(self, folder: Path, payload: dict[str, Any]) -> None:
        self.folder = folder
        self.payload = payload
        self._rows: dict[bytes, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._shards: set[Path] = set()  # the shard files whose vectors are held here
        self._load()

    def _load(self) -> None:
        digests: list[np.ndarray] = []
        blocks: list[np.ndarray] = []
        for shard in sorted(self.folder.glob("shard-*.npz")):
            loaded = _read_shard(shard)
            if loaded is None or (blocks and loaded[1].shape[1] != blocks[0].shape[1]):
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
        """Store new vectors as one new shard (atomic) and make them visible here."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not len(digests) or (self.dim is not None and vectors.shape[1] != self.dim):
            return
        keys = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), 32)
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "key.json"
        if not key_file.exists():
            _atomic_bytes(key_file, json.dumps(self.payload, indent=1, sort_keys=True).encode())
        shard = self.folder / f"shard-{uuid.uuid4().hex}.npz"
        _atomic_npz(shard, keys, vectors)
        self._shards.add(shard)
        start = len(self._vectors)
        self._vectors = vectors if not start else np.concatenate([self._vectors, vectors])
        for i, d in enumerate(digests):
            self._rows.setdefault(d, start + i)
        if len(self._shards) > COMPACT_AFTER:
            self._compact()

    def _compact(self) -> None:
        """Merge the shards this process has read into one; others' new shards stay untouched."""
        keys = np.frombuffer(b"".join(self._rows), dtype=np.uint8).reshape(len(self._rows), 32)
        merged = self.folder / f"shard-{uuid.uuid4().hex}.npz"
        _atomic_npz(merged, keys, self._vectors[list(self._rows.values())])
        for shard in self._shards:
            shard.unlink(missing_ok=True)
        self._shards = {merged}


class EmbeddingCache:
    """A folder of namespaces; ``evalkit cache info`` / ``clear`` operate on it."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self._open: dict[str, Namespace] = {}

    def namespace(self, encoder: Encoder, role: Role | None, device: str) -> Namespace:
        payload = namespace_payload(encoder, role, device)
        key = namespace_key(payload)
        if key not in self._open:
            self._open[key] = Namespace(self.root / key[:2] / key, payload)
        return self._open[key]

    def wrap(self, encoder: Encoder, device: str = "cpu") -> Encoder:
        """``encoder`` behind this cache, or ``encoder`` itself when it must not be cached."""
        if uncacheable_reason(encoder, encoder.fingerprint()) is not None:
            return encoder
        return CachedEncoder(encoder, self, device)

    def info(self) -> CacheInfo:
        namespaces, entries, size = 0, 0, 0
        for folder in self._folders():
            namespaces += 1
            for shard in folder.glob("shard-*.npz"):
                size += shard.stat().st_size
                loaded = _read_shard(shard)
                entries += 0 if loaded is None else len(loaded[0])
        return CacheInfo(self.root, namespaces, entries, size)

    def clear(self) -> int:
        """Delete every namespace; returns how many there were."""
        folders = list(self._folders())
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        self._open.clear()
        return len(folders)

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent for p in self.root.glob("??/*/key.json"))


@dataclass(frozen=True)
class CacheInfo:
    root: Path
    namespaces: int
    entries: int
    bytes: int


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
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if not missing:
            return found
        fresh = np.asarray(self.inner.encode([texts[i] for i in missing], role), dtype=np.float32)
        space.add([digests[i] for i in missing], fresh)
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


def _read_shard(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(digests, vectors) of a shard, or None if it is unreadable or inconsistent."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys, vectors = data["digests"], data["vectors"]
    except (OSError, ValueError, KeyError, EOFError):
        return None
    ok = keys.ndim == 2 and keys.shape[1] == 32 and vectors.ndim == 2 and len(keys) == len(vectors) and vectors.dtype == np.float32
    return (keys, vectors) if ok else None


def _atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file so that readers see the old one or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_npz(path: Path, digests: np.ndarray, vectors: np.ndarray) -> None:
    _atomic(path, lambda handle: np.savez(handle, digests=digests, vectors=vectors))


def _atomic_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda handle: handle.write(data))
