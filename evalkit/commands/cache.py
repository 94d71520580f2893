"""``evalkit cache info | clear``: the persistent embedding cache."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    cache = sub.add_parser("cache", help="show or clear the embedding cache")
    cache.add_argument("action", choices=("info", "clear"), help="info: where and how big; clear: delete every cached vector")
    cache.add_argument("--cache-dir", type=Path, help="embedding cache folder (default ~/.cache/evalkit/embeddings)")
    cache.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from evalkit.cache import EmbeddingCache

    cache = EmbeddingCache(args.cache_dir)
    if args.action == "clear":
        removed = cache.clear()
        print(f"cleared {removed} namespace(s) from {cache.root}")
        return 0
    info = cache.info()  # never raises on a damaged cache: unreadable shards are counted, not fatal
    print(f"embedding cache: {info.root}")
    print(f"  namespaces (encoder configuration × role): {info.namespaces}")
    print(f"  vectors: {info.entries:,}")
    print(f"  size: {info.bytes / 2**20:,.1f} MiB")
    if info.unreadable:
        print(f"  unreadable shards: {info.unreadable:,} (ignored: their vectors are computed again; `evalkit cache clear` removes them)")
    return 0
