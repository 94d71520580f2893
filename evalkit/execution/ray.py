"""The Ray executor: the same sharing groups as the local executor, run as Ray tasks.

Each sharing group (the cells that run on one loaded model) becomes one Ray task
that calls :func:`evalkit.execution.local.run_group`, so a model loads once per
task and a cell computes exactly what it computes locally. The task is a streaming
generator: each cell's result comes back to the driver as soon as it exists and the
driver writes it through the same :class:`ResultStore` (atomic, under the folder
lock), so workers need no access to the results folder and a run killed on the
driver resumes exactly as a local run does.

Workers do need the task files, the data and the models at the same paths as the
driver (a shared file system, or the same image on every node); see
docs/distributed.md. Ray is imported only here, only when this executor is chosen.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np

from evalkit.encoders import load_encoder
from evalkit.encoders.base import CorpusFitted, Encoder, EncoderWrapper, Role
from evalkit.errors import EvalkitError, SpecError
from evalkit.execution.cells import Cell, failed
from evalkit.execution.local import pending, run_group, sharing_groups
from evalkit.extras import optional_import
from evalkit.results.schema import CellResult
from evalkit.results.store import ResultStore
from evalkit.spec import EncoderSpec

# Backends that run torch models and so use a GPU when the worker has one.
TORCH_BACKENDS = frozenset({"hf", "hf-logits", "sbert"})


def wants_gpu(spec: EncoderSpec, cluster_gpus: float) -> bool:
    """A spec asks for a GPU when it says ``device=cuda``, or leaves ``device=auto`` on a cluster that has GPUs."""
    device = spec.opts.get("device", "auto")
    if device == "cuda":
        return True
    return device == "auto" and cluster_gpus > 0 and spec.backend in TORCH_BACKENDS


def resources_for(group: Sequence[Cell], cluster_gpus: float) -> dict[str, float]:
    """What one group's Ray task requests: a CPU, plus a whole GPU when its model runs on one."""
    gpu = any(wants_gpu(c.encoder, cluster_gpus) for c in group)
    if gpu and cluster_gpus <= 0:
        spec = next(c.encoder for c in group if wants_gpu(c.encoder, cluster_gpus))
        raise SpecError(f"spec {str(spec)!r} asks for device=cuda but the Ray cluster has no GPU", hint="drop device=cuda or add GPU nodes")
    return {"num_cpus": 1, "num_gpus": 1 if gpu else 0}


DEFAULT_SHARD_SIZE = 20_000
MIN_PATIENCE_S = 0.5  # shortest wait for a remote shard before encoding one here instead


def _group_task(group: list[Cell], shard_size: int, resources: dict[str, float], cache_dir: str | None) -> Iterator[CellResult]:
    """Runs on a Ray worker: one model, its cells, one result at a time.

    ``cache_dir`` is the embedding cache on the worker's node ("" = the default folder,
    None = no cache); each node keeps its own.
    """
    from evalkit.cache import EmbeddingCache

    cache = None if cache_dir is None else EmbeddingCache(cache_dir or None)

    def wrap(encoder: Encoder) -> Encoder:
        if shard_size <= 0 or isinstance(encoder, CorpusFitted):  # a fitted TF-IDF lives in this worker only
            return encoder
        return ShardedEncoder(encoder, shard_size, resources)

    yield from run_group(group, wrap=wrap, cache=cache)


class ShardedEncoder(EncoderWrapper):
    """Encodes a large batch (a retrieval corpus chunk) in shards on other Ray workers, then merges them in order.

    Shards 1..n-1 go to Ray tasks that load the same spec (once per worker process);
    meanwhile this worker encodes shard 0 itself, then collects results; whenever none
    arrives within the time it takes to encode a shard here, it *steals* the last
    outstanding shard (cancelling its Ray task) and encodes it itself. So it never
    waits long on a shard no worker has picked up: on a busy cluster (or one whose only
    GPU this task holds) it encodes everything itself, with no deadlock.
    Vectors are the inner encoder's, row for row; the adapter merges the shard outputs
    like any other chunk (``retrieval.search`` keeps a running top-k).
    """

    def __init__(self, inner: Encoder, shard_size: int, resources: dict[str, Any], patience_s: float = MIN_PATIENCE_S) -> None:
        super().__init__(inner)
        self.shard_size = shard_size
        self.resources = resources
        self.patience_s = patience_s
        self.remote_shards = 0
        self.local_shards = 0

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        texts = list(texts)
        if len(texts) <= self.shard_size:
            return self.inner.encode(texts, role)
        ray: Any = optional_import("ray")

        bounds = [(start, min(start + self.shard_size, len(texts))) for start in range(0, len(texts), self.shard_size)]
        remote = _shard_function().options(max_retries=0, **self.resources)
        refs = {i: remote.remote(str(self.spec), texts[a:b], role) for i, (a, b) in enumerate(bounds) if i > 0}
        start = time.perf_counter()
        out = {0: self._local(texts, bounds[0], role)}
        patience = max(self.patience_s, time.perf_counter() - start)  # how long one shard takes here
        while refs:
            if not ray.wait(list(refs.values()), num_returns=1, timeout=patience)[0]:
                last = max(refs)  # nothing arrived in the time this worker encodes a shard: steal one
                ray.cancel(refs.pop(last))
                out[last] = self._local(texts, bounds[last], role)
                continue
            done = set(ray.wait(list(refs.values()), num_returns=len(refs), timeout=0)[0])
            for i, ref in list(refs.items()):
                if ref in done:
                    del refs[i]
                    try:
                        out[i] = ray.get(ref)
                        self.remote_shards += 1
                    except ray.exceptions.RayError:  # that worker failed: do the shard here
                        out[i] = self._local(texts, bounds[i], role)
        return np.concatenate([out[i] for i in range(len(bounds))])

    def _local(self, texts: list[str], bounds: tuple[int, int], role: Role | None) -> np.ndarray:
        self.local_shards += 1
        return np.asarray(self.inner.encode(texts[bounds[0] : bounds[1]], role), dtype=np.float32)


_WORKER_ENCODER: dict[str, Encoder] = {}
_SHARD_FUNCTION: Any = None


def _encode_shard(spec: str, texts: list[str], role: Role | None) -> np.ndarray:
    """Runs on a Ray worker: the shard's vectors; the worker keeps one model loaded between shards."""
    if spec not in _WORKER_ENCODER:
        for old in _WORKER_ENCODER.values():
            old.close()
        _WORKER_ENCODER.clear()
        _WORKER_ENCODER[spec] = load_encoder(spec)
    return np.asarray(_WORKER_ENCODER[spec].encode(texts, role), dtype=np.float32)


def _shard_function() -> Any:
    global _SHARD_FUNCTION
    if _SHARD_FUNCTION is None:
        ray: Any = optional_import("ray")

        _SHARD_FUNCTION = ray.remote(_encode_shard)
    return _SHARD_FUNCTION


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join (``address``) or start a Ray cluster; True when this call started it and so must shut it down."""
    ray: Any = optional_import("ray")  # missing: one line naming evalkit[ray]
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            num_cpus=None if address else num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
        )
    except ConnectionError as exc:
        raise EvalkitError(f"cannot connect to the Ray cluster at {address!r}: {exc}", hint="check `ray status` on the head node") from None
    from evalkit import signals

    signals.install()  # ray.init replaces the SIGTERM handler with sys.exit
    return True


def run_ray(
    cells: Sequence[Cell],
    store: ResultStore,
    *,
    overwrite: bool = False,
    progress: bool = True,
    address: str | None = None,
    num_cpus: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    cache_dir: str | None = "",
) -> list[CellResult]:
    """Run every cell not already done on a Ray cluster; the driver writes each result as it arrives.

    Encode calls of more than ``shard_size`` texts (retrieval corpus chunks) are split
    across workers (:class:`ShardedEncoder`); 0 turns that off.
    """
    from tqdm.auto import tqdm

    todo, results = pending(cells, store, overwrite)
    if not todo:
        return results
    started = connect(address, num_cpus)
    ray: Any = optional_import("ray")

    bar = tqdm(total=len(cells), initial=len(results), desc="cells", unit="cell", disable=not progress, file=sys.stderr)

    def finish(result: CellResult) -> None:
        results.append(store.commit(result))  # a failed rerun keeps the good result it was meant to replace
        bar.update()

    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        task: Any = ray.remote(_group_task)
        running: dict[Any, list[Cell]] = {}
        for group in sharing_groups(todo):
            options = resources_for(group, gpus)
            generator = task.options(num_returns="streaming", max_retries=0, **options).remote(list(group), shard_size, options, cache_dir)
            running[generator] = list(group)
        while running:
            ready: list[Any] = ray.wait(list(running), num_returns=1)[0]
            for generator in ready:
                left = running[generator]
                try:
                    result = cast(CellResult, ray.get(next(generator)))
                except StopIteration:
                    del running[generator]
                    for cell in left:  # cannot happen unless run_group skipped a cell; never lose one silently
                        finish(failed(cell, RuntimeError("the Ray task ended without a result for this cell")))
                    continue
                except ray.exceptions.RayError as exc:  # worker killed (OOM), node lost, task error
                    del running[generator]
                    for cell in left:
                        finish(failed(cell, RuntimeError(f"Ray task failed: {_first_line(exc)}: {_last_line(exc)}")))
                    continue
                left[:] = [c for c in left if not _same_cell(c, result)]
                finish(result)
    finally:
        bar.close()
        if started:
            ray.shutdown()
    return results


def _same_cell(cell: Cell, result: CellResult) -> bool:
    return (str(cell.encoder), cell.task.name, cell.split) == (result.encoder, result.task, result.split)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _last_line(exc: BaseException) -> str:
    """The worker's own error (the last line of Ray's remote traceback), so a failed cell says what went wrong."""
    text = [line for line in str(exc).strip().splitlines() if line.strip()]
    return text[-1].strip()[:300] if len(text) > 1 else ""
