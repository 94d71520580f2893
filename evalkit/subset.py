"""Quick subsets (``evalkit run --limit N``): a seeded, deterministic sample of each task's units.

A smoke run on a CPU runner scores at most ``N`` units per task, chosen the same way by
every encoder, every run and every machine:

* STS, summarization: ``N`` pairs / texts, a uniform sample;
* pair classification: ``N`` pairs, stratified by label (both labels stay when N ≥ 2);
* classification: ``N`` examples of the *evaluated* split, stratified by label. The
  training split is untouched: the classifiers are the full run's, so the limited
  score is the full run's classifiers scored on a sample of the test set (with
  ``mode = "full"`` all of train is still embedded). Cross-validation samples the
  evaluated split, then folds it as usual;
* retrieval: ``N`` judged queries, every document judged for them, and a sample of
  ``CORPUS_PER_QUERY × N`` other documents of the corpus;
* clustering: at most ``N`` documents are embedded and clustered, stratified by label
  (v2: a sample of the documents the protocol would embed; legacy: by set and label);
* a task type whose adapter declares no ``limit_unit`` is refused (exit 2), never run
  in full under a subset's name.

A unit's fate depends only on the seed and its position in the data
(:func:`keys`: SplitMix64 of the position, pure integer arithmetic, so no library
upgrade changes a sample), never on the encoder. Subset results carry
``subset = {limit, seed, unit}`` in the result file, live in their own result file
(``<task>.<split>@limit<N>.json``), are marked in every report, are left out of the
means of full results, and the gate refuses to compare them with a full run or with
another subset.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import Field

from evalkit.schemas.base import Schema, parse
from evalkit.schemas.result import Subset

if TYPE_CHECKING:
    from evalkit.taskspec import TaskSpec

SEED = 0
"""Seed of every subset draw (recorded in the result's ``subset.seed``)."""
LIMIT_MAX = 10**9
CORPUS_PER_QUERY = 100
"""Retrieval: documents drawn from the rest of the corpus per selected query."""

Limit = Annotated[int, Field(ge=1, le=LIMIT_MAX)]


class LimitOption(Schema):
    """``--limit`` / ``limit=``: a positive whole number of units per task, or None for the full tasks."""

    limit: Limit | None = Field(default=None, alias="--limit")


def check_limit(value: Any) -> int | None:
    """``value`` as a limit (None: no limit); a bool, text, zero or a negative number is one DataError naming ``--limit``."""
    return parse(LimitOption, {"--limit": value}).limit


def keys(n: int, salt: int = 0, seed: int = SEED) -> np.ndarray:
    """One pseudo-random uint64 per position ``0..n-1`` (SplitMix64): the smallest ``k`` keys are a uniform sample of ``k``."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        state = np.uint64((seed * 0x100000001B3 + salt) & 0xFFFFFFFFFFFFFFFF) + (np.arange(1, n + 1, dtype=np.uint64) * golden)
        z = state
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return np.asarray(z ^ (z >> np.uint64(31)))


def sample(n: int, limit: int | None, salt: int = 0, seed: int = SEED) -> list[int] | None:
    """Positions of a uniform sample of ``min(n, limit)`` of ``n`` units, in their original order; None without a limit."""
    if limit is None:
        return None
    if limit >= n:
        return list(range(n))
    chosen = np.argsort(keys(n, salt, seed), kind="stable")[:limit]
    return sorted(int(i) for i in chosen)


def allocate(counts: Sequence[int], limit: int) -> list[int]:
    """How many of each stratum a stratified sample of ``limit`` takes (largest remainder, exact integers).

    With ``limit`` at least the number of strata every stratum keeps one unit and the
    rest is shared in proportion to what each has left; below that, the largest strata
    get one each. Ties go to the stratum seen first. The shares never exceed the counts.
    """
    total = sum(counts)
    if limit >= total:
        return list(counts)
    k = len(counts)
    if limit < k:  # fewer units than strata: one each for the largest (a proportional share could give one stratum two)
        largest = set(sorted(range(k), key=lambda i: (-counts[i], i))[:limit])
        return [1 if i in largest else 0 for i in range(k)]
    base = [1] * k
    rest = [c - b for c, b in zip(counts, base, strict=True)]
    remaining, pool = limit - sum(base), sum(rest)
    shares = [remaining * r // pool for r in rest]
    order = sorted(range(k), key=lambda i: (-(remaining * rest[i] % pool), -rest[i], i))
    for i in order[: remaining - sum(shares)]:
        shares[i] += 1
    return [b + s for b, s in zip(base, shares, strict=True)]


def stratified(labels: Sequence[Hashable], limit: int | None, salt: int = 0, seed: int = SEED) -> list[int] | None:
    """Positions of a sample of ``min(len(labels), limit)`` stratified by label, in their original order; None without a limit."""
    if limit is None:
        return None
    n = len(labels)
    if limit >= n:
        return list(range(n))
    members: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(label, []).append(i)
    groups = list(members.values())
    rank = keys(n, salt, seed)
    chosen: list[int] = []
    for group, take in zip(groups, allocate([len(g) for g in groups], limit), strict=True):
        if take:
            order = np.argsort(rank[group], kind="stable")[:take]
            chosen.extend(group[int(j)] for j in order)
    return sorted(chosen)


def retrieval(
    queries: dict[str, str], qrels: dict[str, dict[str, int]], documents: Sequence[str], limit: int | None
) -> tuple[dict[str, str], dict[str, dict[str, int]], frozenset[str]] | None:
    """``limit`` judged queries, every document judged for them, and ``CORPUS_PER_QUERY × limit`` other documents.

    ``documents`` are the corpus ids in file order. Returns (queries, qrels, documents
    kept), or None without a limit.
    """
    if limit is None:
        return None
    ids = list(queries)
    chosen = [ids[i] for i in sample(len(ids), limit) or []]
    kept_qrels = {q: qrels[q] for q in chosen}
    judged = {d for q in chosen for d in qrels[q]}
    rest = [d for d in documents if d not in judged]
    extra = sample(len(rest), CORPUS_PER_QUERY * limit, salt=1) or []
    kept = frozenset(judged.intersection(documents)) | frozenset(rest[i] for i in extra)
    return {q: queries[q] for q in chosen}, kept_qrels, kept


def pick(items: Sequence[Any], positions: Sequence[int] | None) -> list[Any]:
    """``items`` at ``positions`` (all of them when ``positions`` is None)."""
    return list(items) if positions is None else [items[i] for i in positions]


def limit_of(task: TaskSpec) -> int | None:
    """The task's ``--limit`` (None: the full task)."""
    return getattr(task, "limit", None)


def record(task: TaskSpec, unit: str) -> dict[str, Any] | None:
    """The result file's ``subset`` field for a limited task (None for a full one)."""
    limit = limit_of(task)
    return None if limit is None else Subset(limit=limit, seed=SEED, unit=unit).model_dump()


def label(limit: int | None) -> str:
    """How a subset is named in tables and messages: ``--limit 100`` (empty for a full run)."""
    return "" if limit is None else f"--limit {limit}"
