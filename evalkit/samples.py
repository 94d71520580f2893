"""Text samples that ship with evalkit: the bench sample (STS-B sentences and SciFact abstracts), the parity pairs.

A module of its own, low in the layers: `evalkit bench` times encoders on it and int8
calibration (``calibration=bench``) takes its ranges from it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from evalkit.errors import EvalkitError

TEXTS_FILE = Path(str(resources.files("evalkit.tasks"))) / "data" / "bench" / "texts.jsonl"  # package data, as the tasks


def bench_texts(limit: int | None = None, path: Path = TEXTS_FILE) -> list[str]:
    """The shipped sample, in file order (the first ``limit`` lines)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalkitError(f"cannot read the bench text sample ({exc.strerror})", path=path) from None
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    return texts[:limit] if limit else texts


STSB_DEV = Path(str(resources.files("evalkit.tasks"))) / "data" / "sts" / "stsbenchmark" / "dev.tsv"


def stsb_dev_pairs(limit: int, path: Path = STSB_DEV) -> list[tuple[str, str]]:
    """The first ``limit`` (sentence1, sentence2) pairs of the shipped STS-B dev split, as the STS task reads them.

    The runtimes' parity sample; read here rather than through the STS adapter, so encoders import no task type.
    """
    from evalkit.data import read_rows

    rows = read_rows(path, ["sentence1", "sentence2"])[:limit]
    return [(row.text("sentence1"), row.text("sentence2")) for row in rows]
