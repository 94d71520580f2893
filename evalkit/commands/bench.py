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
    bench.add_argument("-e", "--encoder", action="append", required=True, metavar="SPEC", help="BACKEND:MODEL[?k=v&...]; repeat")
    bench.add_argument("--device", type=_csv(str, DEVICES), default=["auto"], help="comma list of auto | cpu | cuda (default auto)")
    bench.add_argument("--dtype", type=_csv(str, DTYPES), default=["float32"], help="comma list, e.g. float32,float16,bfloat16")
    bench.add_argument("--batch-size", type=_csv(int), default=[32], help="comma list of texts per call, e.g. 8,32,128 (default 32)")
    bench.add_argument("--texts", type=int, default=256, help="texts from the shipped sample (default 256 of 512)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed batches first (default 2)")
    bench.add_argument("--repeats", type=int, default=3, help="timed passes over the texts (default 3)")
    bench.add_argument(
        "-o", "--output", type=Path, default=Path("out/bench"), help="results folder, the same store as `evalkit run` (default out/bench)"
    )
    bench.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from evalkit.bench import BenchConfig, bench_result, bench_texts
    from evalkit.encoders import check_spec, streams
    from evalkit.results import ResultStore

    streams.configured()  # a malformed EVALKIT_CPU_STREAMS is exit 2 before any model loads
    from evalkit.schemas.cli import BenchFlags, check_flags

    check_flags(BenchFlags, args)  # numeric flags within their ranges, before any model loads
    specs = list(dict.fromkeys(check_spec(s) for s in args.encoder))
    devices = list(dict.fromkeys(_resolve(d) for d in args.device))  # rows name the device that ran, never "auto"
    texts = bench_texts(args.texts)
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
