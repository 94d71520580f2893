#!/usr/bin/env python
"""Build evalkit's clustering tasks from classification test sets the project already vendors.

    .venv/bin/python scripts/build_clustering_tasks.py [--check]

Each task is the test split of a vendored classification set, read line by line in
file order: keep ``text`` and ``label`` unchanged, drop a line whose text already
appeared (keeping the first, as mteb's ``_convert_to_fast`` does), and write
``tasks/data/clustering/<name>/test.jsonl`` (UTF-8, LF, ``ensure_ascii=False``). No
randomness is involved, so the output is byte-for-byte reproducible; ``--check``
rebuilds in memory and fails if a committed file differs. These are evalkit tasks,
not MTEB tasks: MTEB has no Banking77 or Emotion clustering task.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tasks" / "data"
SOURCES = {  # clustering task folder -> vendored classification test file
    "banking77": DATA / "classification" / "banking77" / "test.jsonl",
    "emotion": DATA / "classification" / "emotion" / "test.jsonl",
}


def build(source: Path) -> tuple[bytes, int, int]:
    """The clustering file's bytes, the number of lines read and the number of duplicates dropped."""
    seen: set[str] = set()
    lines: list[str] = []
    read = 0
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            read += 1
            record = json.loads(line)
            text, label = record["text"], record["label"]
            if text in seen:
                continue
            seen.add(text)
            lines.append(json.dumps({"text": text, "label": label}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8"), read, read - len(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file differs from a rebuild")
    args = parser.parse_args()
    stale = 0
    for name, source in SOURCES.items():
        data, read, dropped = build(source)
        target = DATA / "clustering" / name / "test.jsonl"
        digest = hashlib.sha256(data).hexdigest()
        if args.check:
            same = target.is_file() and target.read_bytes() == data
            stale += not same
            print(f"{target.relative_to(REPO)}: {'up to date' if same else 'DIFFERS from a rebuild'}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"{target.relative_to(REPO)}: {read - dropped} lines ({dropped} duplicate texts dropped of {read}), sha256 {digest}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
