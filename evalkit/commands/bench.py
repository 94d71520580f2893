"""``evalkit bench``: encoder throughput on the shipped text sample, stored as result rows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DTYPES = ("float32", "float16", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")


def _csv(kind: type, choices: tuple[str, ...] | None = None) -> Any:
    def parse(text: str) -> list[Any]:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        bad = [v for v in values if (choices and v not in choices) or (kind is int and v < 1)]
        if not values or bad:
            hint = f"; choose from {', '.join(choices)}" if choices else ""
            raise argparse.ArgumentTypeError(f"invalid value(s) {bad or text!r}{hint}")
        return values

    return parse


def register(sub: Any) -> None:
    bench = sub.add_parser("bench", help="measure encoder throughput (sentences/s, tokens/s, latency, memory)")
    bench.add_argument("-e", "--encoder", action="append", metavar="SPEC", help="BACKEND:MODEL[?k=v&...]; repeat")
    bench.add_argument(
        "--compare",
        nargs=2,
        metavar=("BASE_SPEC", "CAND_SPEC"),
        help="paired speed comparison: alternate the two in one process, ratio candidate/baseline with an interval",
    )
    bench.add_argument("--rounds", type=int, default=8, help="--compare: alternated rounds (ABBA, BAAB, ...; default 8)")
    bench.add_argument("--threads", type=int, default=None, help="--compare: torch thread budget of both sides (default: torch's)")
    bench.add_argument("--level", type=float, default=0.95, help="--compare: confidence level of the ratio's interval (default 0.95)")
    bench.add_argument("--n-boot", type=int, default=10_000, help="--compare: bootstrap resamples of rounds (default 10000)")
    bench.add_argument("--seed", type=int, default=0, help="--compare: resampling seed (default 0)")
    bench.add_argument(
        "--memory-probes", type=int, default=1, help="--compare: fresh processes per side measuring memory (0 = none; default 1)"
    )
    bench.add_argument("--device", type=_csv(str, DEVICES), default=["auto"], help="comma list of auto | cpu | cuda (default auto)")
    bench.add_argument("--dtype", type=_csv(str, DTYPES), default=["float32"], help="comma list, e.g. float32,float16,bfloat16")
    bench.add_argument("--batch-size", type=_csv(int), default=[32], help="comma list of texts per call, e.g. 8,32,128 (default 32)")
    bench.add_argument("--texts", type=int, default=256, help="texts from the shipped sample (default 256 of 512)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed batches first (default 2)")
    bench.add_argument("--repeats", type=int, default=3, help="timed passes over the texts (default 3; --compare: per slot)")
    bench.add_argument(
        "-o", "--output", type=Path, default=Path("out/bench"), help="results folder, the same store as `evalkit run` (default out/bench)"
    )
    bench.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from evalkit.bench import BenchConfig, bench_result
    from evalkit.encoders import check_spec, streams
    from evalkit.errors import EvalkitError
    from evalkit.results import ResultStore

    streams.configured()  # a malformed EVALKIT_CPU_STREAMS is exit 2 before any model loads
    from evalkit.schemas.cli import BenchFlags, check_flags

    check_flags(BenchFlags, args)  # numeric flags within their ranges, before any model loads
    if args.compare:
        return compare_main(args)
    if not args.encoder:
        raise EvalkitError("give encoders to measure (-e SPEC, repeatable) or a pair to compare (--compare BASE_SPEC CAND_SPEC)")
    specs = list(dict.fromkeys(check_spec(s) for s in args.encoder))
    devices = list(dict.fromkeys(_resolve(d) for d in args.device))  # rows name the device that ran, never "auto"
    texts = sample(args.texts)
    store = ResultStore(args.output)
    rows = []
    for spec in specs:
        for device in devices:
            for dtype in args.dtype:
                for batch_size in args.batch_size:
                    config = BenchConfig(device, dtype, batch_size, args.warmup, args.repeats)
                    print(f"bench: {spec} {config.label} ...", file=sys.stderr, flush=True)
                    result = bench_result(spec, config, texts)
                    store.write(result)
                    rows.append(result)
                    if not result.ok:
                        print(f"evalkit: bench failed: {spec} {config.label}: {result.error}", file=sys.stderr)
    print(render(rows))
    failures = sum(not r.ok for r in rows)
    print(f"results: {args.output}/ ({len(rows) - failures} ok, {failures} failed)", file=sys.stderr)
    return 1 if failures else 0


def compare_main(args: argparse.Namespace) -> int:
    """``--compare BASE CAND``: every input checked before either model loads; one comparison file into ``-o``."""
    from evalkit.encoders import check_spec
    from evalkit.errors import EvalkitError
    from evalkit.schemas.cli import CompareFlags, check_flags
    from evalkit.speed import CompareConfig, compare, describe, write_comparison

    flags = check_flags(CompareFlags, args)
    if args.encoder:
        raise EvalkitError("--compare takes its two specs itself; drop -e", field="-e")
    for name in ("device", "dtype", "batch_size"):
        if getattr(args, name) != {"device": ["auto"], "dtype": ["float32"], "batch_size": [32]}[name]:
            flag = "--" + name.replace("_", "-")
            raise EvalkitError(f"{flag} does not apply to --compare", field=flag, hint="put device, dtype or batch_size in the specs")
    baseline, candidate = (check_spec(s) for s in args.compare)
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise EvalkitError("output folder is not a folder", path=output, field="-o")
    if output.is_dir() and holds_cells(output):
        raise EvalkitError(
            "is an encoder's folder inside a results folder; the comparison belongs at the top of the results folder",
            path=output,
            field="-o",
            hint=f"use -o {output.parent}",
        )
    try:  # an unwritable folder is found now, not after the measurement
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvalkitError(f"cannot create the output folder ({exc.strerror or exc})", path=output, field="-o") from None
    texts = sample(args.texts)
    config = CompareConfig(
        rounds=flags.rounds,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=flags.threads,
        level=flags.level,
        n_boot=flags.n_boot,
        seed=flags.seed,
        memory_probes=flags.memory_probes,
    )
    result = compare(baseline, candidate, texts, config, progress=lambda line: print(line, file=sys.stderr, flush=True))
    path = write_comparison(output, result)
    print(render_comparison(result))
    print(f"speed comparison: {path} ({describe(result)})", file=sys.stderr)
    return 0


def holds_cells(folder: Path) -> bool:
    """Whether ``folder`` holds result files (an encoder's folder, ``ROOT/<encoder>/``), where readers take every .json for a cell."""
    from evalkit.results import CellResult

    for path in folder.glob("*.json"):
        try:
            CellResult.read(path)
        except Exception:  # not a result file: anything else may sit beside one
            continue
        return True
    return False


def sample(requested: int) -> list[str]:
    """The shipped bench texts; asking for more than it holds uses all of them, and says so."""
    from evalkit.bench import bench_texts

    texts = bench_texts(requested)
    if requested > len(texts):
        print(f"evalkit: warning: --texts {requested}: the shipped sample holds {len(texts)}; timing all of them", file=sys.stderr)
    return texts


def render_comparison(comparison: Any) -> str:
    """Both sides' median sentences/s and memory, then the ratio and the growth."""
    import statistics

    from tabulate import tabulate

    memory = comparison.memory

    def mb(values: list[int] | None) -> str:
        return "–" if not values else f"{statistics.median(values) / 2**20:,.0f}"

    rows = [
        ["baseline", comparison.baseline, f"{statistics.median(comparison.baseline_sentences_per_second):,.1f}"],
        ["candidate", comparison.candidate, f"{statistics.median(comparison.candidate_sentences_per_second):,.1f}"],
    ]
    rows[0].append(mb(memory.baseline_bytes if memory else None))
    rows[1].append(mb(memory.candidate_bytes if memory else None))
    headers = ["side", "encoder", "sent/s (median)", "memory MB"]
    table = str(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    from evalkit.speed import describe

    lines = [
        table,
        "",
        f"speed ratio candidate/baseline: {describe(comparison)}, {comparison.threads} threads, {comparison.texts} texts",
    ]
    if memory is not None:
        lines.append(f"memory growth: {100 * memory.growth:+.1f} % ({memory.kind})")
    for side, threads in sorted(comparison.declared_threads.items()):
        budget = comparison.threads
        lines.append(f"note: the {side}'s spec runs its forward passes at {threads} thread(s) (threads={threads}), not {budget}")
    return "\n".join(lines)


def _resolve(device: str) -> str:
    """``auto`` becomes the device that will run; an explicit one is kept, so an unusable one is a failed row."""
    if device != "auto":
        return device
    from evalkit.encoders.transformer import pick_device

    return pick_device(device)


def render(rows: list[Any]) -> str:
    """One line per bench row: the numbers a reader compares."""
    from tabulate import tabulate

    def num(value: Any, digits: int = 1) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    table = [
        [
            r.encoder,
            r.split,
            num(r.scores.get("sentences_per_second")),
            num(r.scores.get("tokens_per_second"), 0),
            num(r.scores.get("padded_tokens_per_second"), 0),
            num(r.scores.get("padding_efficiency"), 3),
            num(r.scores.get("latency_p50_ms")),
            num(r.scores.get("latency_p95_ms")),
            num(r.scores.get("peak_memory_mb"), 0),
        ]
        for r in rows
        if r.ok
    ]
    headers = ["encoder", "device-dtype-batch", "sent/s", "tok/s", "padded tok/s", "pad eff", "p50 ms", "p95 ms", "peak MB"]
    return str(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
