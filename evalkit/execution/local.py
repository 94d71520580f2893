"""The local executor: one process; each model loaded once for all its tasks.

Encoders that share a model (an ``hf`` pooling sweep, both ``hf-logits`` reductions)
are loaded together and run task by task, so each task's texts go through the
model once whatever the number of poolings.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator, Sequence

from evalkit import collector
from evalkit.cache import EmbeddingCache
from evalkit.encoders import Encoder, load_encoder, share_key
from evalkit.encoders.base import device_of
from evalkit.execution.cells import Cell, evaluate_cell, failed
from evalkit.faults import faultpoint
from evalkit.results.schema import CellResult
from evalkit.results.store import ResultStore
from evalkit.spec import EncoderSpec
from evalkit.throughput import MeteredEncoder


def pending(cells: Sequence[Cell], store: ResultStore, overwrite: bool = False) -> tuple[list[Cell], list[CellResult]]:
    """Split cells into those still to run and the finished results that match their configuration."""
    todo, done = [], []
    for cell in cells:
        existing = None if overwrite else store.get(str(cell.encoder), cell.task.name, cell.split)
        if existing is not None and existing.ok and existing.config_hash == cell.config_hash():
            done.append(existing)
            continue
        todo.append(cell)
        path = store.path_for(str(cell.encoder), cell.task.name, cell.split)
        if not overwrite and existing is None and path.exists():  # say so: a corrupt file is redone, not trusted
            print(f"evalkit: redoing {cell.label}: its result file {path} is unreadable or invalid", file=sys.stderr)
    return todo, done


def sharing_groups(cells: Sequence[Cell]) -> list[list[Cell]]:
    """Cells grouped by the model they run on, in first-seen order."""
    groups: dict[object, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(share_key(cell.encoder), []).append(cell)
    return list(groups.values())


def run_local(
    cells: Sequence[Cell], store: ResultStore, *, overwrite: bool = False, progress: bool = True, cache: EmbeddingCache | None = None
) -> list[CellResult]:
    """Run every cell not already done; write each result as soon as it exists (vectors via ``cache`` if given)."""
    from tqdm.auto import tqdm

    todo, results = pending(cells, store, overwrite)
    bar = tqdm(total=len(cells), initial=len(results), desc="cells", unit="cell", disable=not progress, file=sys.stderr)
    groups = sharing_groups(todo)
    for i, group in enumerate(groups):
        last = i == len(groups) - 1  # nothing loads after it: the caller's collector (or the exit) frees it
        for result in run_group(group, status=bar.set_postfix_str, cache=cache, release=not last):
            faultpoint("cell.evaluated")
            store.write(result)
            results.append(result)
            bar.update()
    bar.close()
    return results


def run_group(
    group: Sequence[Cell],
    status: Callable[[str], object] = lambda _: None,
    cache: EmbeddingCache | None = None,
    wrap: Callable[[Encoder], Encoder] | None = None,
    release: bool = True,
) -> Iterator[CellResult]:
    """Load the group's model(s) once, yield each cell's result as soon as it exists, then close them.

    The unit of work of every executor: the local one runs groups in turn, the Ray
    one runs each group as a Ray task on some worker (``wrap`` lets it shard large
    encode calls across other workers). ``release`` then collects the closed models
    at once (:func:`evalkit.collector.release`, a walk over the whole heap: 0.25 s
    with torch loaded), which matters only if another model loads after this one.
    """
    encoders: dict[EncoderSpec, MeteredEncoder] = {}
    try:
        for spec in dict.fromkeys(c.encoder for c in group):
            status(f"loading {spec}")
            try:
                loaded = load_encoder(spec)
                encoders[spec] = MeteredEncoder(wrap(loaded) if wrap else loaded, device=device_of(loaded), cache=cache)
                faultpoint("model.loaded")
            except Exception as exc:  # a model that will not load fails its cells, not the run
                for cell in (c for c in group if c.encoder == spec):
                    yield failed(cell, exc)
        order = _task_order(group)
        ready = sorted((c for c in group if c.encoder in encoders), key=lambda c: order[(c.task.name, c.split)])
        for _, siblings in itertools.groupby(ready, key=lambda c: (c.task.name, c.split)):
            done = []
            for cell in siblings:
                status(cell.label)
                done.append(evaluate_cell(encoders[cell.encoder], cell))
            yield from share_throughput(done)
    finally:
        for encoder in encoders.values():
            encoder.close()
        encoders.clear()
        if release:
            collector.release()


SHARED_FIELDS = ("encode_seconds", "sentences", "tokens", "padded_tokens", "sentences_per_second", "tokens_per_second")


def share_throughput(results: Sequence[CellResult]) -> list[CellResult]:
    """Give the cells served by a sibling's forward pass that pass's speed (it cost them the same), marked as shared.

    Without this the model's own recipe (mean pooling, read from the pass a sibling
    triggered) would have no throughput and drop out of the quality-vs-speed plot.
    """
    measured = next((r for r in results if r.ok and (r.throughput or {}).get("sentences_per_second")), None)
    if measured is None:
        return list(results)
    out = []
    for result in results:
        speed = dict(result.throughput or {})
        if result.ok and result is not measured and speed.get("shared_forward_pass") and not speed.get("sentences_per_second"):
            speed.update({key: measured.throughput.get(key) for key in SHARED_FIELDS})
            speed["shared_with"] = measured.encoder
            result = result.replace(throughput=speed)
        out.append(result)
    return out


def _task_order(group: Sequence[Cell]) -> dict[tuple[str, str], int]:
    """Task-major inside a sharing group, so siblings read each other's forward pass at once."""
    return {key: i for i, key in enumerate(dict.fromkeys((c.task.name, c.split) for c in group))}
