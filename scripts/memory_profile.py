#!/usr/bin/env python
"""Memory of a long matrix: does RSS stay flat as encoder groups come and go?

Runs 6 encoders × 4 tasks (STS, STS, pair classification, retrieval: slices of real
data, so it takes minutes, not hours) group by group exactly as ``evalkit run`` does
(``run_group``: load a model, run its tasks, close it), and prints the process RSS
before the first group, the peak RSS while each group ran (sampled every 10 ms), and
the RSS after each group was released, as the executor leaves it and after one more
``malloc_trim`` (glibc keeps freed memory in its arenas; ``run_group`` trims them since
this script showed RSS climbing 659 → 1208 MiB over the 6 groups without it).

    python scripts/memory_profile.py [--pairs 100] [--json out.json]

Flat means: the RSS after group k does not grow with k, and each peak is the
baseline plus that group's own model, not the sum of the models before it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evalkit.execution.cells import plan  # noqa: E402
from evalkit.execution.local import run_group, sharing_groups  # noqa: E402
from evalkit.spec import EncoderSpec  # noqa: E402
from evalkit.taskspec import load_task_file  # noqa: E402
from evalkit.throughput import current_rss  # noqa: E402

ENCODERS = (
    "sbert:all-MiniLM-L6-v2",
    "sbert:all-mpnet-base-v2",
    "hf:all-MiniLM-L6-v2?pooling=cls",
    "hf:all-mpnet-base-v2?pooling=mean",
    "hf-logits:all-MiniLM-L6-v2",
    "static:tokenlearn-static",
)
DATA = REPO / "tasks" / "data"
MIB = 1 << 20


def trim() -> None:
    """Give freed heap pages back to the OS (glibc only), so RSS shows what is really held."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def make_tasks(folder: Path, pairs: int) -> list[Path]:
    """Four small real tasks: STS-B and SICK-R slices, an MRPC slice, a SciFact slice."""
    for name, source in (("MemSTSB", "sts/stsbenchmark/test.tsv"), ("MemSICK", "sts/sickr/test.tsv")):
        lines = (DATA / source).read_text(encoding="utf-8").splitlines()
        (folder / f"{name}.tsv").write_text("\n".join(lines[: pairs + 1]) + "\n", encoding="utf-8")
        low = 1 if "sick" in source else 0
        (folder / f"{name}.toml").write_text(
            f'name = "{name}"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "{name}.tsv"\n[settings]\nmin_score = {low}\nmax_score = 5\n'
        )
    mrpc = (DATA / "pair_classification/mrpc/test.jsonl").read_text(encoding="utf-8").splitlines(True)[:pairs]
    (folder / "mrpc.jsonl").write_text("".join(mrpc), encoding="utf-8")
    (folder / "MemMRPC.toml").write_text('name = "MemMRPC"\ntype = "pair_classification"\nsplit = "test"\n[files]\ntest = "mrpc.jsonl"\n')
    sci = DATA / "retrieval/scifact"
    qrels = sci.joinpath("qrels/test.tsv").read_text().splitlines()[:21]
    wanted = {row.split("\t")[1] for row in qrels[1:]}
    queries = {row.split("\t")[0] for row in qrels[1:]}
    docs = [
        d for i, d in enumerate(sci.joinpath("corpus.jsonl").read_text().splitlines(True)) if i < pairs or json.loads(d)["_id"] in wanted
    ]
    (folder / "corpus.jsonl").write_text("".join(docs))
    (folder / "queries.jsonl").write_text(
        "".join(q for q in sci.joinpath("queries.jsonl").read_text().splitlines(True) if json.loads(q)["_id"] in queries)
    )
    (folder / "qrels.tsv").write_text("\n".join(qrels) + "\n")
    (folder / "MemSciFact.toml").write_text(
        'name = "MemSciFact"\ntype = "retrieval"\nsplit = "test"\n'
        '[files]\ncorpus = "corpus.jsonl"\nqueries = "queries.jsonl"\ntest = "qrels.tsv"\n[settings]\nk_values = [1, 10]\n'
    )
    return [folder / f"{n}.toml" for n in ("MemSTSB", "MemSICK", "MemMRPC", "MemSciFact")]


class Sampler:
    """Peak RSS of this process over a block, sampled in a thread."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss())

    def __enter__(self) -> Sampler:
        self.peak = current_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100, help="pairs / documents per task slice (default 100)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()

    import torch  # noqa: F401  imported up front so the baseline includes the libraries, not just evalkit

    with tempfile.TemporaryDirectory() as tmp:
        tasks = [load_task_file(p) for p in make_tasks(Path(tmp), args.pairs)]
        cells = plan([EncoderSpec.parse(e) for e in ENCODERS], tasks)
        gc.collect()
        trim()
        baseline = current_rss()
        rows = []
        print(f"baseline RSS (libraries imported, no model): {baseline / MIB:.0f} MiB", flush=True)
        print(
            f"{'#':>2}  {'encoder group':<40} {'cells':>5} {'ok':>3} {'seconds':>8} {'peak MiB':>9} {'after MiB':>10} {'trimmed MiB':>12}"
        )
        for number, group in enumerate(sharing_groups(cells), start=1):
            start = time.perf_counter()
            with Sampler() as sampler:
                results = list(run_group(group))
            seconds = time.perf_counter() - start
            gc.collect()
            after = current_rss()
            trim()
            trimmed = current_rss()
            label = ", ".join(dict.fromkeys(str(c.encoder) for c in group))
            row = {
                "group": label,
                "cells": len(results),
                "ok": sum(r.ok for r in results),
                "seconds": round(seconds, 1),
                "peak_mib": round(sampler.peak / MIB),
                "after_mib": round(after / MIB),
                "after_trim_mib": round(trimmed / MIB),
            }
            rows.append(row)
            print(
                f"{number:>2}  {label[:40]:<40} {row['cells']:>5} {row['ok']:>3} {row['seconds']:>8} "
                f"{row['peak_mib']:>9} {row['after_mib']:>10} {row['after_trim_mib']:>8}",
                flush=True,
            )
            for result in results:
                if not result.ok:
                    print(f"    failed: {result.task}: {result.error}", flush=True)
        growth = rows[-1]["after_trim_mib"] - rows[0]["after_trim_mib"]
        print(f"RSS after the last group minus after the first (trimmed): {growth:+d} MiB")
        if args.json:
            args.json.write_text(json.dumps({"baseline_mib": round(baseline / MIB), "groups": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
