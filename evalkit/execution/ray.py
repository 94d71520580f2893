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
from collections.abc import Iterator, Sequence
from typing import Any

from evalkit.errors import EvalkitError, SpecError
from evalkit.execution.cells import Cell, failed
from evalkit.execution.local import pending, run_group, sharing_groups
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


def _group_task(group: list[Cell]) -> Iterator[CellResult]:
    """Runs on a Ray worker: one model, its cells, one result at a time."""
    yield from run_group(group)


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join (``address``) or start a Ray cluster; True when this call started it and so must shut it down."""
    try:
        import ray
    except ImportError:
        raise EvalkitError("the Ray executor needs Ray", hint="pip install 'evalkit[ray]', or use --executor local") from None
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
) -> list[CellResult]:
    """Run every cell not already done on a Ray cluster; the driver writes each result as it arrives."""
    from tqdm.auto import tqdm

    todo, results = pending(cells, store, overwrite)
    if not todo:
        return results
    started = connect(address, num_cpus)
    import ray

    bar = tqdm(total=len(cells), initial=len(results), desc="cells", unit="cell", disable=not progress, file=sys.stderr)

    def finish(result: CellResult) -> None:
        store.write(result)
        results.append(result)
        bar.update()

    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        task = ray.remote(_group_task)
        running: dict[Any, list[Cell]] = {}
        for group in sharing_groups(todo):
            options = resources_for(group, gpus)
            generator = task.options(num_returns="streaming", max_retries=0, **options).remote(list(group))
            running[generator] = list(group)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for generator in ready:
                left = running[generator]
                try:
                    result = ray.get(next(generator))
                except StopIteration:
                    del running[generator]
                    for cell in left:  # cannot happen unless run_group skipped a cell; never lose one silently
                        finish(failed(cell, RuntimeError("the Ray task ended without a result for this cell")))
                    continue
                except ray.exceptions.RayError as exc:  # worker killed (OOM), node lost, task error
                    del running[generator]
                    for cell in left:
                        finish(failed(cell, RuntimeError(f"Ray task failed: {_first_line(exc)}")))
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
