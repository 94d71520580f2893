"""The local executor: one process; each model loaded once for all its tasks.

Encoders that share a model (an ``hf`` pooling sweep, both ``hf-logits`` reductions,
specs that differ only in post-pooling transforms) are loaded together and run task
by task, so each task's texts go through the model once whatever the number of
poolings and transforms.
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from evalkit import collector
from evalkit.cache import EmbeddingCache, innermost
from evalkit.encoders import Encoder, load_encoder, share_key
from evalkit.encoders.base import CorpusFitted, device_of
from evalkit.encoders.transforms import SharedPass, Transform, split_spec, uses_role
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
        existing = None if overwrite else store.get(str(cell.encoder), cell.task.name, cell.split, cell.task.limit)
        if existing is not None and existing.ok and existing.config_hash == cell.config_hash():
            done.append(existing)
            continue
        todo.append(cell)
        path = store.path_for(str(cell.encoder), cell.task.name, cell.split, cell.task.limit)
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
            result = store.commit(result)  # a failed rerun keeps the good result it was meant to replace
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
    stacks = Stacks(group, cache=cache, wrap=wrap)
    try:
        ready_specs: set[EncoderSpec] = set()
        for spec in dict.fromkeys(c.encoder for c in group):
            status(f"loading {spec}")
            try:
                stacks.open(spec)
                ready_specs.add(spec)
                faultpoint("model.loaded")
            except Exception as exc:  # a model that will not load fails its cells, not the run
                for cell in (c for c in group if c.encoder == spec):
                    yield failed(cell, exc)
        order = _task_order(group)
        ready = sorted((c for c in group if c.encoder in ready_specs), key=lambda c: order[(c.task.name, c.split)])
        for _, siblings in itertools.groupby(ready, key=lambda c: (c.task.name, c.split)):
            done = []
            for cell in sorted(siblings, key=lambda c: stacks.fitted(c.encoder)):  # a plain spec times the shared pass
                status(cell.label)
                done.append(evaluate_cell(stacks[cell.encoder], cell))
            stacks.end_task()
            for result in share_throughput(done):  # noqa: UP028  (not `yield from` a list: Ray drives this generator with send())
                yield result
    finally:
        stacks.close()
        if release:
            collector.release()


class Stacks:
    """The encoders of one sharing group: each model loaded once, one metered stack per spec. The one place stacks are built.

    A spec's model is loaded from its spec without the transform options
    (:func:`~evalkit.encoders.transforms.split_spec`), so ``hf:m?truncate_dim=64``,
    ``hf:m?precision=int8`` and ``hf:m`` run on one loaded ``hf:m``. Each spec gets
    ``MeteredEncoder(model, cache=..., transform=..., shared=...)``: its transform outside,
    the untransformed vectors inside (cache keyed by the model's spec), and, when several
    specs read one model or a transform is fitted on the task, a :class:`SharedPass` that
    hands every spec the vectors of the task's one forward pass.
    """

    def __init__(
        self, group: Sequence[Cell], cache: EmbeddingCache | None = None, wrap: Callable[[Encoder], Encoder] | None = None
    ) -> None:
        self.cache = cache
        self.wrap = wrap
        self.plan = {spec: _split(spec) for spec in dict.fromkeys(c.encoder for c in group)}
        readers = Counter(base for base, _ in self.plan.values())
        fitted = {base for base, transform in self.plan.values() if transform is not None and transform.fits_on_task}
        self.sharing = {base for base in readers if readers[base] > 1 or base in fitted}
        self.models: dict[EncoderSpec, Encoder] = {}
        self.errors: dict[EncoderSpec, BaseException] = {}
        self.shared: dict[EncoderSpec, SharedPass] = {}
        self.stacks: dict[EncoderSpec, MeteredEncoder] = {}

    def open(self, spec: EncoderSpec) -> MeteredEncoder:
        """The stack of ``spec``, loading its model unless a sibling already did (a model that failed fails again at once)."""
        base, transform = self.plan[spec]
        if base in self.errors:
            raise self.errors[base]
        model = self.models.get(base)
        if model is None:
            try:
                loaded = load_encoder(base)
            except Exception as exc:
                self.errors[base] = exc
                raise
            model = self.models[base] = self.wrap(loaded) if self.wrap else loaded
            if base in self.sharing and not isinstance(innermost(model), CorpusFitted):
                self.shared[base] = SharedPass(role_blind=not uses_role(model))
        stack = MeteredEncoder(
            model, device=device_of(model), cache=self.cache, transform=transform, shared=self.shared.get(base), spec=spec
        )
        self.stacks[spec] = stack
        return stack

    def fitted(self, spec: EncoderSpec) -> bool:
        """Whether the spec's transform is fitted on each task (whitening, int8 ranges from the task)."""
        transform = self.plan[spec][1]
        return transform is not None and transform.fits_on_task

    def __getitem__(self, spec: EncoderSpec) -> MeteredEncoder:
        return self.stacks[spec]

    def end_task(self) -> None:
        """A task's cells are done: drop its shared vectors."""
        for shared in self.shared.values():
            shared.clear()

    def close(self) -> None:
        """Close each model once, however many specs read it."""
        self.stacks.clear()
        self.shared.clear()
        for model in self.models.values():
            model.close()
        self.models.clear()


def _split(spec: EncoderSpec) -> tuple[EncoderSpec, Transform | None]:
    """The model's spec and the transform; a spec that cannot be split fails when its model loads, as one failed cell."""
    try:
        return split_spec(spec)
    except Exception:
        return spec, None


SHARED_FIELDS = ("encode_seconds", "sentences", "tokens", "padded_tokens", "sentences_per_second", "tokens_per_second")


def share_throughput(results: Sequence[CellResult]) -> list[CellResult]:
    """Give the cells served by a sibling's forward pass that pass's speed (it cost them the same), marked as shared.

    Without this the model's own recipe (mean pooling, read from the pass a sibling
    triggered) would have no throughput and drop out of the quality-vs-speed plot.
    """
    measured = next((r for r in results if (r.throughput or {}).get("sentences_per_second")), None)  # even a failed cell's pass
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
