"""Numeric command-line flags, checked by the one validation layer before any work.

argparse only knows "an int"; these models add the ranges, so ``--n-boot 5``,
``--shard-size -1`` or ``--repeats 10**9`` is one line naming the flag (exit 2) instead
of a hang, a numpy error or a silently different protocol. Field aliases are the flag
names, so the error says ``field '--n-boot'``.
"""

from __future__ import annotations

import argparse
from typing import Annotated, TypeVar

from pydantic import BaseModel, Field

from evalkit.schemas.base import Finite, LaxSchema, Seed, parse
from evalkit.schemas.bootstrap import ALPHA_MAX, Level, NBoot

M = TypeVar("M", bound=BaseModel)

SHARD_SIZE_MAX = 10_000_000
"""Texts per Ray encode shard; 0 turns sharding off."""
BENCH_TEXTS_MAX = 100_000
BENCH_PASSES_MAX = 1_000
"""Warm-up batches and timed passes of ``evalkit bench``."""
BATCH_SIZE_MAX = 65_536


class ReportFlags(LaxSchema):
    """``evalkit report``: the same ranges as a rules file's ``[bootstrap]``."""

    level: Level = Field(0.95, alias="--level")
    n_boot: NBoot = Field(1000, alias="--n-boot")
    seed: Seed = Field(0, alias="--seed")
    alpha: Annotated[Finite, Field(gt=0, le=ALPHA_MAX)] = Field(0.05, alias="--alpha")


class RunFlags(LaxSchema):
    """``evalkit run``."""

    shard_size: Annotated[int, Field(ge=0, le=SHARD_SIZE_MAX)] = Field(20_000, alias="--shard-size")


class BenchFlags(LaxSchema):
    """``evalkit bench``."""

    texts: Annotated[int, Field(ge=1, le=BENCH_TEXTS_MAX)] = Field(256, alias="--texts")
    warmup: Annotated[int, Field(ge=0, le=BENCH_PASSES_MAX)] = Field(2, alias="--warmup")
    repeats: Annotated[int, Field(ge=1, le=BENCH_PASSES_MAX)] = Field(3, alias="--repeats")
    batch_size: list[Annotated[int, Field(ge=1, le=BATCH_SIZE_MAX)]] = Field([32], alias="--batch-size")


COMPARE_ROUNDS_MIN = 4
"""Fewer rounds leave a speed interval resting on two or three paired ratios."""
THREADS_MAX = 4096


class CompareFlags(LaxSchema):
    """``evalkit bench --compare``: rounds, the interval, the thread budget, memory probes."""

    rounds: Annotated[int, Field(ge=COMPARE_ROUNDS_MIN, le=BENCH_PASSES_MAX)] = Field(8, alias="--rounds")
    level: Level = Field(0.95, alias="--level")
    n_boot: NBoot = Field(10_000, alias="--n-boot")
    seed: Seed = Field(0, alias="--seed")
    threads: Annotated[int, Field(ge=1, le=THREADS_MAX)] | None = Field(None, alias="--threads")
    memory_probes: Annotated[int, Field(ge=0, le=100)] = Field(1, alias="--memory-probes")


def check_flags(model: type[M], args: argparse.Namespace) -> M:
    """``model`` validated from the parsed flags (attribute ``n_boot`` ↔ flag ``--n-boot``); one DataError naming the flag."""
    data = {}
    for name, info in model.model_fields.items():
        if hasattr(args, name):
            data[info.alias or name] = getattr(args, name)
    return parse(model, data)
