"""evalkit as a library: ``evaluate(encoders, tasks) -> Results``; the CLI is a thin face on this.

    import evalkit
    results = evalkit.evaluate(["hf:all-MiniLM-L6-v2?pooling=mean", my_sentence_transformer], ["STSBenchmark"])
    results.leaderboard()             # the table `evalkit run` prints, as a DataFrame
    results.to_pandas()               # one row per cell
    results.compare("results/baseline", rules="rules/ci.toml")   # the gate's report
    results.save("out/mine")          # result files that `evalkit report` / `evalkit gate` read

Encoders may mix spec strings and objects (see :mod:`evalkit.encoders.objects`); tasks
may mix names, task-file paths and :class:`~evalkit.taskspec.TaskSpec` objects. Every
input is validated before any model loads. The call runs inside a
:class:`~evalkit.context.RunContext`, so it leaves the process as it found it.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.context import RunContext
from evalkit.errors import EvalkitError
from evalkit.results.schema import CellResult
from evalkit.spec import EncoderSpec
from evalkit.taskspec import TaskSpec

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.gate.check import GateReport

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Plan:
    """What a run will do, every input validated: encoder specs, tasks, and the objects behind ``obj:`` specs."""

    specs: tuple[EncoderSpec, ...]
    tasks: tuple[TaskSpec, ...]
    split: str | None
    objects: tuple[EncoderSpec, ...] = ()


def prepare(
    encoders: Sequence[Any] | Mapping[str, Any] | str | Any,
    tasks: Sequence[str | Path | TaskSpec] | str | Path | TaskSpec,
    *,
    split: str | None = None,
    tasks_dir: Iterable[Path] = (),
    cache: bool = True,
    executor: str = "local",
    limit: int | None = None,
) -> Plan:
    """Parse and validate everything a run needs — specs, objects, task files, their data — before any model loads.

    ``limit``: score a seeded subset of at most ``limit`` units per task (``--limit``,
    :mod:`evalkit.subset`); its results are separate cells, marked as subsets everywhere.
    """
    import dataclasses

    from evalkit import subset
    from evalkit.encoders import check_spec, streams
    from evalkit.encoders import objects as objs
    from evalkit.execution.cells import check_task
    from evalkit.taskspec import TaskIndex

    if executor not in EXECUTORS:
        raise EvalkitError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}", field="executor")
    if executor == "ray":  # before any data is read: a missing extra is one line naming it
        from evalkit.extras import optional_import

        optional_import("ray")
    streams.configured()  # a malformed EVALKIT_CPU_STREAMS is exit 2 before any model loads
    limit = subset.check_limit(limit)
    specs: list[EncoderSpec] = []
    registered: list[EncoderSpec] = []
    try:  # every object registered here is unregistered again if anything below raises (the Plan owns them otherwise)
        for name, value in _named(encoders):
            if isinstance(value, str | EncoderSpec):
                specs.append(check_spec(value))
                continue
            spec, why = objs.register(value, name)
            registered.append(spec)
            specs.append(spec)
            if why:  # once per object and call, one line: it is never cached, never resumed, never shared
                print(
                    f"evalkit: {spec}: embedding cache off for this encoder (its vectors are never cached, reused on "
                    f"resume or shared): {why}",
                    file=sys.stderr,
                )
        if registered and executor != "local":
            raise EvalkitError(
                "in-memory models run on the local executor only", field="executor", hint="save the model and pass its folder"
            )
        index = TaskIndex(tasks_dir)
        task_list = [t if isinstance(t, TaskSpec) else index.get(str(t)) for t in _as_list(tasks)]
        if not task_list or not specs:
            raise EvalkitError("nothing to evaluate: give at least one encoder and one task", field="tasks" if specs else "encoders")
        if limit is not None:
            task_list = [dataclasses.replace(t, limit=limit) for t in task_list]
        for task in task_list:
            check_task(task, split or task.split)
    except BaseException:
        for spec in registered:
            objs.unregister(spec)
        raise
    return Plan(tuple(dict.fromkeys(specs)), tuple(task_list), split, tuple(registered))


def evaluate(
    encoders: Sequence[Any] | Mapping[str, Any] | str | Any,
    tasks: Sequence[str | Path | TaskSpec] | str | Path | TaskSpec,
    *,
    output: str | Path | None = None,
    split: str | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    executor: str = "local",
    progress: bool = True,
    overwrite: bool = False,
    tasks_dir: Iterable[Path] = (),
    address: str | None = None,
    shard_size: int = 20_000,
    limit: int | None = None,
) -> Results:
    """Score every encoder on every task; write one result file per cell into ``output`` (a temporary folder if None).

    ``encoders``: spec strings (``"hf:all-MiniLM-L6-v2?pooling=cls"``), objects with
    ``encode(list[str])`` (a ``SentenceTransformer`` included), ``from_transformers(model,
    tokenizer, pooling=...)`` descriptions, or a ``{name: object}`` mapping to name them.
    Cells already in ``output`` with the same configuration are reused (resume) unless
    ``overwrite``. ``limit`` scores a seeded subset of at most that many units per task
    (``--limit``). Raises :class:`~evalkit.errors.EvalkitError` for any bad input, before
    any model loads; a cell that fails at run time is a failed result, not an exception.
    """
    with RunContext(signals=False, progress=progress):
        plan = prepare(encoders, tasks, split=split, tasks_dir=tasks_dir, cache=cache, executor=executor, limit=limit)
        try:
            return execute(
                plan,
                output=output,
                cache=cache,
                cache_dir=cache_dir,
                executor=executor,
                progress=progress,
                overwrite=overwrite,
                address=address,
                shard_size=shard_size,
            )
        finally:
            from evalkit.encoders import objects as objs

            for spec in plan.objects:
                objs.unregister(spec)


def execute(
    plan: Plan,
    *,
    output: str | Path | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    executor: str = "local",
    progress: bool = True,
    overwrite: bool = False,
    address: str | None = None,
    shard_size: int = 20_000,
) -> Results:
    """Run a validated :class:`Plan` into ``output`` (resumable, locked); the one runner of the API and the CLI."""
    from evalkit.execution import plan as plan_cells
    from evalkit.execution.lock import ResultsLock
    from evalkit.faults import faultpoint
    from evalkit.results import ResultStore

    scratch = None
    if output is None:
        scratch = tempfile.TemporaryDirectory(prefix="evalkit-results-")
        folder = Path(scratch.name)
    else:
        folder = Path(output)
    try:
        store = ResultStore(folder)
        cells = store.check_identities(plan_cells(plan.specs, plan.tasks, plan.split))  # no two cells share a file
        with ResultsLock(folder):
            store.sweep_temporary()  # left by a run that was killed mid-write
            faultpoint("run.locked")
            if executor == "ray":
                from evalkit.execution.ray import run_ray

                results = run_ray(
                    cells,
                    store,
                    overwrite=overwrite,
                    progress=progress,
                    address=address,
                    shard_size=shard_size,
                    cache_dir=None if not cache else str(cache_dir or ""),
                )
            else:
                from evalkit.cache import EmbeddingCache
                from evalkit.execution import run_local

                embedding_cache = EmbeddingCache(cache_dir) if cache else None
                results = run_local(cells, store, overwrite=overwrite, progress=progress, cache=embedding_cache)
        return Results(tuple(results), None if scratch else folder)
    finally:
        if scratch is not None:
            scratch.cleanup()


@dataclass(frozen=True)
class Results:
    """The cells of a run: tables, the gate, and the result files ``report`` and ``gate`` read."""

    cells: tuple[CellResult, ...]
    folder: Path | None = None

    def __iter__(self) -> Iterator[CellResult]:
        return iter(self.cells)

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def ok(self) -> tuple[CellResult, ...]:
        return tuple(c for c in self.cells if c.ok)

    @property
    def failed(self) -> tuple[CellResult, ...]:
        return tuple(c for c in self.cells if not c.ok)

    @property
    def kept(self) -> tuple[CellResult, ...]:
        """Failed reruns whose earlier good result stayed in the folder (``details["kept"]`` names it; see ``warnings``)."""
        return tuple(c for c in self.failed if isinstance(c.details.get("kept"), dict))

    def to_pandas(self) -> pd.DataFrame:
        """One row per cell: encoder, task, split, subset limit, main metric and score (× 1, as stored), interval, throughput, status."""
        import pandas as pd

        rows = []
        for cell in self.cells:
            speed = cell.throughput or {}
            rows.append(
                {
                    "encoder": cell.encoder,
                    "task": cell.task,
                    "task_type": cell.task_type,
                    "split": cell.split,
                    "limit": cell.subset.limit if cell.subset is not None else None,  # --limit: a subset, not the full task
                    "main_metric": cell.main_metric,
                    "main_score": cell.main_score,
                    "ci_low": (cell.ci or {}).get("low"),
                    "ci_high": (cell.ci or {}).get("high"),
                    "ci_level": (cell.ci or {}).get("level"),
                    "n_units": cell.n_units,
                    "sentences_per_second": speed.get("sentences_per_second"),
                    "tokens_per_second": speed.get("tokens_per_second"),
                    "peak_memory_bytes": speed.get("peak_memory_bytes"),
                    "device": speed.get("device"),
                    "status": cell.status,
                    "error": cell.error,
                    "kept": (cell.details.get("kept") or {}).get("path") if not cell.ok else None,  # a failed rerun kept this file
                }
            )
        return pd.DataFrame(rows)

    def board(self) -> Any:
        """The :class:`~evalkit.report.table.Leaderboard` every rendering uses: ``evalkit report``'s, tie-aware ranks included."""
        from evalkit.report.table import report_board

        return report_board(list(self.ok))

    def leaderboard(self) -> pd.DataFrame:
        """The table ``evalkit report`` prints for these results, as a DataFrame (one row per encoder, ranked, best first)."""
        import pandas as pd

        from evalkit.report.formats import headers, rows

        board = self.board()
        if board.empty:
            return pd.DataFrame()
        return pd.DataFrame(rows(board, "pm"), columns=headers(board)).set_index("encoder")

    def table(self) -> str:
        """The terminal rendering of :meth:`leaderboard`."""
        from evalkit.report.formats import render_terminal

        return render_terminal(self.board())

    def compare(self, baseline: Results | str | Path, *, rules: str | Path | Any = None, match: Sequence[str] = ()) -> GateReport:
        """The gate: this run as the candidate against ``baseline`` (a Results or a results folder) under ``rules``."""
        from evalkit.gate.judge import run_gate
        from evalkit.gate.rules import Rules, load_rules
        from evalkit.reading import load_results

        loaded = rules if isinstance(rules, Rules) else load_rules(None if rules is None else Path(rules))
        base = list(baseline.cells) if isinstance(baseline, Results) else load_results(Path(baseline), what="baseline")
        base_root = baseline.folder if isinstance(baseline, Results) else Path(baseline)
        return run_gate(base, list(self.cells), loaded, match, base_root or Path("baseline"), self.folder or Path("candidate"))

    def save(self, folder: str | Path) -> Path:
        """Write every cell as a result file under ``folder`` (the format ``evalkit report`` / ``gate`` read).

        Holds the folder's lock while writing, as a run does: a folder a running ``evalkit run``
        holds is refused with one line naming that run (:class:`~evalkit.execution.lock.ResultsBusyError`).
        """
        from evalkit.execution.lock import ResultsLock
        from evalkit.results import ResultStore

        store = ResultStore(Path(folder))
        with ResultsLock(folder):
            for cell in self.cells:
                store.commit(cell)  # a failed attempt never replaces a good result of its cell
        return Path(folder)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str | Path | TaskSpec | EncoderSpec) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _named(encoders: Any) -> list[tuple[str | None, Any]]:
    """(name, encoder) pairs: a mapping names its objects; a bare object or spec is a list of one."""
    if isinstance(encoders, Mapping):
        return [(str(k), v) for k, v in encoders.items()]
    if isinstance(encoders, str | EncoderSpec) or not isinstance(encoders, Iterable) or _is_object(encoders):
        return [(None, encoders)]
    return [(None, e) for e in encoders]


def _is_object(value: Any) -> bool:
    from evalkit.encoders.objects import is_encoder_object

    return is_encoder_object(value)
