"""Paired speed comparison: two encoders alternated in one process, their throughput ratio with an interval.

Absolute sentences/s from one machine says little about another (or about the same
runner an hour later). What does transfer is a ratio measured side by side: both
encoders are loaded in one process, warmed up, then timed in ``rounds`` rounds on the
same texts at the same torch thread budget. Within a round the slots run ABBA (baseline,
candidate, candidate, baseline), the next round BAAB, so a slow drift of the machine's
speed (another job starting, a CPU warming up) falls on both sides alike. Each round
gives one paired ratio candidate / baseline; the point estimate is their geometric
mean, the interval a bootstrap over rounds.

The bootstrap over a handful of rounds is the *expanded* percentile interval
(Hesterberg 2015, "What teachers should know about the bootstrap", §4.3): the plain
percentile interval of a mean is too narrow for small n (it behaves like z·s/√n with
the biased s), so its tails are taken at ``Φ(−√(n/(n−1))·t_{α/2, n−1})`` instead of
α/2. With 8 rounds a 95 % interval uses the 0.6 % and 99.4 % percentiles.

Memory is measured apart: peak RSS only grows, so in one process the second encoder
would inherit the first's peak. Each side is loaded and run once more in a fresh child
process (``probe_main``), which reports how far its peak rose above its start after the
common imports (RSS growth over load + one encode pass; on CUDA the allocator's peak).
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.errors import DataError, EvalkitError
from evalkit.schemas.speed import MemoryComparison, RatioInterval, SpeedComparison
from evalkit.spec import EncoderSpec

FILE_PREFIX = "speed-compare."
"""Comparison files live at the top of a results folder, beside (never inside) the encoder folders."""
METHOD = "expanded percentile bootstrap over rounds (Hesterberg 2015)"
ORDER = "ABBA, BAAB alternating (A = baseline)"
PROBE_TIMEOUT_S = 1800  # one fresh load + one pass; a first ONNX export happens in the parent, before the probes
MEMORY_KIND_RSS = "peak RSS growth over load + one encode pass, fresh process per probe"
MEMORY_KIND_CUDA = "torch.cuda.max_memory_allocated over load + one encode pass, fresh process per probe"


@dataclass(frozen=True)
class CompareConfig:
    """How a comparison is run and summarised."""

    rounds: int = 8
    warmup: int = 2
    repeats: int = 1
    threads: int | None = None  # None: torch's current budget
    level: float = 0.95
    n_boot: int = 10_000
    seed: int = 0
    memory_probes: int = 1


def file_name(baseline: str, candidate: str) -> str:
    """``speed-compare.<digest>.json``: one file per ordered pair; no encoder folder ends in ``.json``."""
    import hashlib

    digest = hashlib.sha256(f"{baseline}\0{candidate}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{FILE_PREFIX}{digest}.json"


def comparison_files(root: Path) -> list[Path]:
    """Every comparison file at the top of ``root`` (sorted)."""
    return sorted(p for p in Path(root).glob(f"{FILE_PREFIX}*.json") if not p.name.startswith("."))


def read_comparison(path: Path) -> SpeedComparison:
    """One comparison file, schema-valid; else one DataError naming the file and field."""
    from evalkit.data import read_json_file
    from evalkit.schemas.base import parse

    comparison = parse(SpeedComparison, read_json_file(path, "speed comparison"), path=path)
    check_interval(comparison, path)
    return comparison


def write_comparison(root: Path, comparison: SpeedComparison) -> Path:
    """Write atomically to ``root/speed-compare.<digest>.json``; an earlier comparison of the same pair is replaced."""
    from evalkit.results.store import atomic_write

    path = Path(root) / file_name(comparison.baseline, comparison.candidate)
    if path.exists() and not path.is_file():
        raise EvalkitError("cannot write the speed comparison: something that is not a file is in its place", path=path)
    try:
        atomic_write(path, comparison.model_dump_json(indent=2) + "\n")
    except OSError as exc:
        raise EvalkitError(f"cannot write the speed comparison ({exc.strerror or exc})", path=path) from None
    return path


# --- statistics --------------------------------------------------------------------------------------


def expanded_level(level: float, n: int) -> float:
    """The percentile level that gives a mean of ``n`` values about ``level`` coverage (Hesterberg's expansion)."""
    from scipy import stats as st

    if n < 2:
        raise EvalkitError("a speed interval needs at least 2 rounds", field="--rounds")
    t = float(st.t.ppf(1 - (1 - level) / 2, n - 1))
    tail = float(st.norm.cdf(-math.sqrt(n / (n - 1)) * t))
    return 1 - 2 * tail


def ratio_interval(baseline: Sequence[float], candidate: Sequence[float], level: float, n_boot: int, seed: int) -> RatioInterval:
    """Geometric mean of the paired per-round ratios candidate / baseline, with its bootstrap interval over rounds."""
    from evalkit.stats import percentile_interval

    logs = np.log(np.asarray(candidate, dtype=np.float64)) - np.log(np.asarray(baseline, dtype=np.float64))
    n = logs.size
    rng = np.random.default_rng([seed, n])
    reps = logs[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    low, high, _ = percentile_interval(reps, expanded_level(level, n))
    estimate = float(np.exp(logs.mean()))
    assert low is not None and high is not None  # every replicate of finite logs is finite
    return RatioInterval(
        estimate=_sig(estimate),
        low=_sig(min(math.exp(low), estimate)),
        high=_sig(max(math.exp(high), estimate)),
        level=level,
        n_boot=n_boot,
        seed=seed,
        method=METHOD,
    )


def _sig(value: float) -> float:
    return float(f"{value:.9g}")


def check_interval(comparison: SpeedComparison, path: Path | None = None) -> None:
    """Refuse a comparison whose interval is not the one its own rounds, seed and n_boot give (edited or corrupt)."""
    ratio = comparison.ratio
    redrawn = ratio_interval(
        comparison.baseline_sentences_per_second, comparison.candidate_sentences_per_second, ratio.level, ratio.n_boot, ratio.seed
    )
    for name in ("low", "high"):
        if not math.isclose(getattr(ratio, name), getattr(redrawn, name), rel_tol=1e-6):
            raise DataError(
                f"ratio.{name} {getattr(ratio, name):g} is not what the stored rounds give ({getattr(redrawn, name):g})",
                path=path,
                field=f"ratio.{name}",
                hint="the file was edited or is corrupt; re-run evalkit bench --compare",
            )


def memory_comparison(baseline: Sequence[int], candidate: Sequence[int], kind: str) -> MemoryComparison:
    return MemoryComparison(
        kind=kind,
        baseline_bytes=list(baseline),
        candidate_bytes=list(candidate),
        growth=statistics.median(candidate) / statistics.median(baseline) - 1,
        growth_low=min(candidate) / max(baseline) - 1,
        growth_high=max(candidate) / min(baseline) - 1,
    )


# --- measurement -------------------------------------------------------------------------------------


def round_order(index: int) -> str:
    """``ABBA`` for even rounds, ``BAAB`` for odd ones (A = baseline)."""
    return "ABBA" if index % 2 == 0 else "BAAB"


def thread_budget(requested: int | None) -> int:
    """Set torch's intra-op threads to ``requested`` (None: keep them) and return the budget both sides will run at."""
    import torch

    if requested is not None:
        torch.set_num_threads(requested)
    return int(torch.get_num_threads())


def check_budget(budget: int, who: str, encoder: object) -> None:
    """Refuse to time a side that does not run at ``budget``: a backend that kept or left another thread count."""
    import torch

    now = int(torch.get_num_threads())
    own = getattr(encoder, "threads", None)  # the runtimes backends fix their session threads at load
    if now != budget or (isinstance(own, int) and own != budget):
        seen = own if isinstance(own, int) and own != budget else now
        raise EvalkitError(f"the {who} runs at {seen} threads, not the comparison's budget of {budget}; the ratio would not be fair")


def alternate(
    encoders: tuple[Any, Any],
    texts: Sequence[str],
    config: CompareConfig,
    budget: int,
    devices: tuple[str, str],
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[float], list[float]]:
    """Warm both up, then time ``config.rounds`` ABBA/BAAB rounds; each side's sentences/s per round."""
    from evalkit.throughput import synchronize

    batch = list(texts)
    names = ("baseline", "candidate")

    def encode(side: int) -> None:
        with side_failure(names[side], "encoding"):
            encoders[side].encode(batch)

    def timed(side: int) -> float:
        check_budget(budget, names[side], encoders[side])
        synchronize(devices[side])
        start = time.perf_counter()
        for _ in range(config.repeats):
            encode(side)
        synchronize(devices[side])
        return time.perf_counter() - start

    for _ in range(config.warmup):
        for side in (0, 1):
            encode(side)
    rates: tuple[list[float], list[float]] = ([], [])
    for index in range(config.rounds):
        seconds = [0.0, 0.0]
        for slot in round_order(index):
            side = 0 if slot == "A" else 1
            seconds[side] += timed(side)
        for side in (0, 1):
            rates[side].append(2 * config.repeats * len(batch) / max(seconds[side], 1e-9))
        progress(
            f"bench: round {index + 1}/{config.rounds} ({round_order(index)}): baseline {rates[0][-1]:,.1f}/s, "
            f"candidate {rates[1][-1]:,.1f}/s, ratio {rates[1][-1] / rates[0][-1]:.3f}"
        )
    return rates


@contextlib.contextmanager
def side_failure(who: str, doing: str, spec: object = None) -> Iterator[None]:
    """A side that fails to load or encode is one EvalkitError line naming it (``evalkit run`` fails its cells alike), never a traceback."""
    try:
        yield
    except EvalkitError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        name = f"{who} {spec}" if spec is not None else who
        raise EvalkitError(
            f"the {name} failed while {doing}: {type(exc).__name__}: {first}",
            hint="the same spec under `evalkit run` fails its cells with the full traceback in the result file",
        ) from exc


def probe_memory(spec: EncoderSpec, texts: Sequence[str], threads: int) -> tuple[int, str]:
    """Load ``spec`` in a fresh process, encode ``texts`` once; its memory (bytes) and what was measured."""
    request = json.dumps({"spec": str(spec), "texts": list(texts), "threads": threads})
    code = "from evalkit.speed import probe_main; probe_main()"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], input=request, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise EvalkitError(f"memory probe of {spec} did not finish within {PROBE_TIMEOUT_S} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EvalkitError(f"memory probe of {spec} failed (exit {done.returncode}): {last}")
    answer = json.loads(lines[-1])
    return max(1, int(answer["bytes"])), str(answer["kind"])


def probe_main() -> None:
    """Child process of :func:`probe_memory`: request JSON on stdin, one JSON line on stdout."""
    import resource

    request = json.loads(sys.stdin.read())
    import torch

    from evalkit.encoders import load_encoder
    from evalkit.encoders.base import device_of
    from evalkit.throughput import cuda_in_use, current_rss, peak_memory

    torch.set_num_threads(int(request["threads"]))
    texts = list(request["texts"])
    start_rss = current_rss()
    start_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with peak_memory("cpu") as sampled:
        encoder = load_encoder(EncoderSpec.parse(request["spec"]))
        device = device_of(encoder)
        if cuda_in_use(device):
            torch.cuda.reset_peak_memory_stats()
        encoder.encode(texts)
    if cuda_in_use(device):
        answer = {"bytes": int(torch.cuda.max_memory_allocated()), "kind": MEMORY_KIND_CUDA}
    else:
        end_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = max(sampled["peak"], end_max if end_max > start_max else 0)  # a new maximum was reached inside the block
        answer = {"bytes": peak - start_rss, "kind": MEMORY_KIND_RSS}
    encoder.close()
    print(json.dumps(answer), flush=True)


def compare(
    baseline: EncoderSpec,
    candidate: EncoderSpec,
    texts: Sequence[str],
    config: CompareConfig = CompareConfig(),
    progress: Callable[[str], None] = lambda _: None,
) -> SpeedComparison:
    """Run one paired comparison (specs already checked); the torch thread count is restored afterwards."""
    import torch

    from evalkit import __version__
    from evalkit.bench import _sample_digest
    from evalkit.encoders import load_encoder
    from evalkit.encoders.base import device_of
    from evalkit.encoders.streams import stream_count
    from evalkit.environment import environment

    before = int(torch.get_num_threads())
    loaded: list[Any] = []
    try:
        budget = thread_budget(config.threads)
        for name, spec in (("baseline", baseline), ("candidate", candidate)):
            progress(f"bench: loading {name} {spec} ...")
            with side_failure(name, "loading", spec):
                loaded.append(load_encoder(spec))
            check_budget(budget, name, loaded[-1])
        devices = (device_of(loaded[0]), device_of(loaded[1]))
        declared = {
            name: threads
            for name, encoder in zip(("baseline", "candidate"), loaded, strict=True)
            if isinstance(threads := getattr(encoder, "declared_threads", None), int)
        }
        base_rates, cand_rates = alternate((loaded[0], loaded[1]), texts, config, budget, devices, progress)
        env = environment()
    finally:
        for encoder in reversed(loaded):
            encoder.close()
        torch.set_num_threads(before)
    memory = None
    if config.memory_probes:
        sides: list[list[int]] = [[], []]
        kinds = set()
        for probe in range(config.memory_probes):
            for side, spec in enumerate((baseline, candidate)):
                progress(f"bench: memory probe {probe + 1}/{config.memory_probes}: {spec} in a fresh process ...")
                size, kind = probe_memory(spec, texts, budget)
                sides[side].append(size)
                kinds.add(kind)
        memory = memory_comparison(sides[0], sides[1], " / ".join(sorted(kinds)))
    return SpeedComparison(
        baseline=str(baseline),
        candidate=str(candidate),
        rounds=config.rounds,
        order=ORDER,
        baseline_sentences_per_second=[_sig(r) for r in base_rates],
        candidate_sentences_per_second=[_sig(r) for r in cand_rates],
        ratio=ratio_interval([_sig(r) for r in base_rates], [_sig(r) for r in cand_rates], config.level, config.n_boot, config.seed),
        memory=memory,
        threads=budget,
        declared_threads=declared,
        streams=stream_count(budget),
        devices={"baseline": devices[0], "candidate": devices[1]},
        texts=len(texts),
        texts_digest=_sample_digest(texts),
        warmup=config.warmup,
        repeats=config.repeats,
        environment=env,
        evalkit_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def describe(comparison: SpeedComparison) -> str:
    """``2.61× [2.40, 2.83] (95 %, 8 rounds)``: the ratio as people quote it."""
    r = comparison.ratio
    return f"{r.estimate:.2f}× [{r.low:.2f}, {r.high:.2f}] ({100 * r.level:g} %, {comparison.rounds} rounds)"
