"""The report's figures, as PNG bytes (matplotlib, no pyplot state, no display needed).

* quality vs throughput, with the Pareto front (no other encoder is both faster and better) marked;
* quality vs bytes per stored vector, with its Pareto front (nothing else is both smaller and better);
* per-task bars with interval whiskers;
* the pooling comparison as a heat map (pooling × layer) when an ``hf`` model was run with several;
* the compression comparison as a heat map (dimensions × precision) when a model was run with several.

Each returns None when the leaderboard has nothing to draw, so the page simply
leaves the figure out. Labels come from specs, so ``$`` is escaped (matplotlib
would otherwise read it as maths).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from evalkit.extras import optional_import
from evalkit.report.table import MEAN, Leaderboard
from evalkit.schemas.options import PRECISIONS, TRANSFORM_FIELDS
from evalkit.spec import EncoderSpec

TRANSFORMS = frozenset(TRANSFORM_FIELDS)
PRECISION_ORDER: list[str] = list(PRECISIONS)

DPI = 110
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")


def _text(value: object) -> str:
    return str(value).replace("$", r"\$")


def _png(fig: object) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")  # type: ignore[attr-defined]
    return buffer.getvalue()


def _figure(width: float, height: float) -> object:
    figure = optional_import("matplotlib.figure")  # the report extra: one line naming it when missing

    return figure.Figure(figsize=(width, height))  # savefig(bbox_inches="tight") makes room for long labels


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[int]:
    """Indices of points no other point beats on both axes (higher is better on both), by x."""
    front = []
    for i in range(len(x)):
        dominated = any(x[j] >= x[i] and y[j] >= y[i] and (x[j] > x[i] or y[j] > y[i]) for j in range(len(x)))
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: x[i])


def _errors(board: Leaderboard, encoders: Sequence[str], column: str) -> np.ndarray:
    """Asymmetric whiskers (2 × n) from the intervals; zero where there is none."""
    err = np.zeros((2, len(encoders)))
    for k, encoder in enumerate(encoders):
        low, high = board.interval(encoder, column)
        value = float(board.score.at[encoder, column])
        if low is not None and high is not None:
            err[:, k] = (max(value - low, 0.0), max(high - value, 0.0))
    return err


def point_labels(encoders: Sequence[str], x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> list[tuple[int, str]]:
    """(point drawn at, label) per place: encoders at one place (same x, same score to the 0.01 shown) share one stacked label.

    One label per encoder printed the names of points with equal coordinates on top of each other.
    """
    places: dict[tuple[float, float], list[int]] = {}
    for i in range(len(encoders)):
        places.setdefault((float(x[i]), round(float(y[i]), 2)), []).append(i)
    return [(members[0], "\n".join(_text(encoders[k]) for k in members)) for members in places.values()]


def _label(ax: object, encoders: Sequence[str], x: np.ndarray, y: np.ndarray) -> None:
    for i, text in point_labels(encoders, x, y):
        ax.annotate(text, (x[i], y[i]), textcoords="offset points", xytext=(6, 5), fontsize=7.5, va="bottom")  # type: ignore[attr-defined]


def plotted(board: Leaderboard, axis: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The encoders a quality-vs-``axis`` plot draws (``axis``: a throughput column), with their x and y."""
    data = pd.DataFrame({"quality": board.score[MEAN], "x": board.throughput[axis]}).dropna()
    return list(data.index), data["x"].to_numpy(float), data["quality"].to_numpy(float)


def left_out_of_throughput(board: Leaderboard) -> str:
    """The encoders the quality-vs-throughput plot cannot show, and why ('' when it shows them all)."""
    if board.empty:
        return ""
    speed = board.throughput["sentences_per_second"]
    quality = board.score[MEAN]
    untimed = [e for e in board.encoders if pd.isna(speed[e]) and not pd.isna(quality[e]) and board.origin[e] == "evalkit"]
    imported = [e for e in board.encoders if pd.isna(speed[e]) and not pd.isna(quality[e]) and board.origin[e] != "evalkit"]
    no_mean = [e for e in board.encoders if pd.isna(quality[e])]
    parts = []
    if untimed:
        parts.append(
            f"{', '.join(untimed)}: no throughput measured (nothing was encoded: the vectors came from the embedding cache; "
            "`evalkit run --no-cache` times them)"
        )
    if imported:
        parts.append(f"{', '.join(imported)}: imported results carry no throughput")
    if no_mean:
        parts.append(f"{', '.join(no_mean)}: no {MEAN} (not scored on every task)")
    return ("Not in this plot — " + "; ".join(parts) + ".") if parts else ""


def quality_vs_throughput(board: Leaderboard) -> bytes | None:
    encoders, x, y = plotted(board, "sentences_per_second")
    if not encoders:
        return None
    front = pareto_front(list(x), list(y))
    fig = _figure(7.5, 4.6)
    ax = fig.add_subplot()  # type: ignore[attr-defined]
    err = _errors(board, encoders, MEAN)
    ax.errorbar(x, y, yerr=err, fmt="o", color="#8C8C8C", ecolor="#BBBBBB", capsize=3, label="encoder", zorder=2)
    # the best quality at ≥ t sentences/s, a staircase that drops just past each front point
    ax.plot(x[front], y[front], "-o", color="#C44E52", drawstyle="steps-pre", lw=1.5, ms=8, label="Pareto front", zorder=3)
    _label(ax, encoders, x, y)
    if x.max() / max(x.min(), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("throughput (sentences / second, encoding)")
    ax.set_ylabel(f"{MEAN} main score × 100")
    ax.set_title("Quality vs throughput")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def quality_vs_bytes(board: Leaderboard) -> bytes | None:
    """Quality against the stored size of one vector (log scale); drawn when the encoders differ in size."""
    encoders, x, y = plotted(board, "bytes_per_vector")
    if len(encoders) < 2 or len(set(x)) < 2:
        return None
    front = sorted(pareto_front(list(-x), list(y)), key=lambda i: x[i])  # fewer bytes is better
    fig = _figure(7.5, 4.6)
    ax = fig.add_subplot()  # type: ignore[attr-defined]
    err = _errors(board, encoders, MEAN)
    ax.errorbar(x, y, yerr=err, fmt="o", color="#8C8C8C", ecolor="#BBBBBB", capsize=3, label="encoder", zorder=2)
    # the best quality within ≤ b bytes, a staircase that rises only at the next front point
    ax.plot(x[front], y[front], "-o", color="#C44E52", drawstyle="steps-post", lw=1.5, ms=8, label="Pareto front", zorder=3)
    _label(ax, encoders, x, y)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per stored vector (log scale)")
    ax.set_ylabel(f"{MEAN} main score × 100")
    ax.set_title("Quality vs size")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def task_bars(board: Leaderboard) -> bytes | None:
    columns = [*board.tasks, *([MEAN] if len(board.tasks) > 1 else [])]
    encoders = [e for e in board.encoders if not board.score.loc[e, columns].isna().all()]
    if not encoders or not columns:
        return None
    fig = _figure(max(6.0, 1.2 + 0.45 * len(columns) * len(encoders)), 4.6)
    ax = fig.add_subplot()  # type: ignore[attr-defined]
    width = 0.8 / len(encoders)
    positions = np.arange(len(columns))
    for k, encoder in enumerate(encoders):
        values = board.score.loc[encoder, columns].to_numpy(float)
        err = np.zeros((2, len(columns)))
        for c, column in enumerate(columns):
            low, high = board.interval(encoder, column)
            if low is not None and high is not None and not np.isnan(values[c]):
                err[:, c] = (max(values[c] - low, 0.0), max(high - values[c], 0.0))
        ax.bar(
            positions + (k - (len(encoders) - 1) / 2) * width,
            np.nan_to_num(values),
            width,
            yerr=err,
            capsize=2,
            color=COLORS[k % len(COLORS)],
            label=_text(encoder),
            error_kw={"elinewidth": 1, "ecolor": "#333333"},
        )
    ax.set_xticks(positions, [_text(c) for c in columns], rotation=20, ha="right")
    ax.set_ylabel("main score × 100")
    ax.set_title(f"Per task, with {board.config.level:.0%} intervals")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def pooling_grid(board: Leaderboard) -> tuple[str, pd.DataFrame, list[str]] | None:
    """The ``hf`` model with the most (pooling, layer) variants (≥ 2): mean score by pooling × layer.

    The mean is over the tasks every variant of that model was scored on, so a
    variant run on fewer tasks does not empty the grid.
    """
    groups: dict[str, dict[tuple[str, int], str]] = {}
    for encoder in board.encoders:
        try:
            spec = EncoderSpec.parse(encoder)
            layer = int(spec.opts.get("layer", "-1"))
        except Exception:  # imported or odd specs are simply not part of the grid
            continue
        if spec.backend == "hf" and not TRANSFORMS & set(spec.opts):  # compressed variants have their own grid
            groups.setdefault(str(spec.without("pooling", "layer")), {})[(spec.opts.get("pooling", "mean"), layer)] = encoder
    if not groups:
        return None
    model, variants = max(groups.items(), key=lambda kv: len(kv[1]))
    tasks = [t for t in board.tasks if not board.score.loc[list(variants.values()), t].isna().any()]
    if len(variants) < 2 or not tasks:
        return None
    cells = {key: float(board.score.loc[encoder, tasks].mean()) for key, encoder in variants.items()}
    poolings = sorted({p for p, _ in cells})
    layers = sorted({layer for _, layer in cells}, key=lambda v: (v < 0, v))
    grid = pd.DataFrame(np.nan, index=poolings, columns=layers)
    for (pooling, layer), value in cells.items():
        grid.at[pooling, layer] = value
    return model, grid, tasks


def pooling_heatmap(board: Leaderboard) -> bytes | None:
    found = pooling_grid(board)
    if found is None:
        return None
    model, grid, tasks = found
    grid = grid.rename(columns=lambda c: "last" if c == -1 else str(c))
    over = tasks[0] if len(tasks) == 1 else f"mean of {len(tasks)} tasks"
    return _heatmap(grid, "layer", "pooling", f"Pooling × layer: {model} ({over}, × 100)")


def precision_grid(board: Leaderboard) -> tuple[str, pd.DataFrame, list[str]] | None:
    """The model with the most (truncate_dim, precision) variants (≥ 2): mean score by precision × dimensions.

    A model is the spec less ``truncate_dim`` and ``precision`` (whitened and plain vectors,
    or int8 ranges from another calibration, are other models here); "full" is the untruncated vector.
    """
    groups: dict[str, dict[tuple[str, int | None], str]] = {}
    for encoder in board.encoders:
        try:
            spec = EncoderSpec.parse(encoder)
            dim = int(spec.opts["truncate_dim"]) if "truncate_dim" in spec.opts else None
        except Exception:  # imported or odd specs are simply not part of the grid
            continue
        precision = spec.opts.get("precision", "float32")
        if precision not in PRECISION_ORDER:
            continue
        groups.setdefault(str(spec.without("truncate_dim", "precision")), {})[(precision, dim)] = encoder
    if not groups:
        return None
    model, variants = max(groups.items(), key=lambda kv: len(kv[1]))
    tasks = [t for t in board.tasks if not board.score.loc[list(variants.values()), t].isna().any()]
    if len(variants) < 2 or not tasks:
        return None
    cells = {key: float(board.score.loc[encoder, tasks].mean()) for key, encoder in variants.items()}
    precisions = sorted({p for p, _ in cells}, key=PRECISION_ORDER.index)
    dims = sorted({d for _, d in cells}, key=lambda d: (d is None, d or 0))
    grid = pd.DataFrame(np.nan, index=precisions, columns=["full" if d is None else str(d) for d in dims])
    for (precision, dim), value in cells.items():
        grid.at[precision, "full" if dim is None else str(dim)] = value
    return model, grid, tasks


def precision_heatmap(board: Leaderboard) -> bytes | None:
    found = precision_grid(board)
    if found is None:
        return None
    model, grid, tasks = found
    over = tasks[0] if len(tasks) == 1 else f"mean of {len(tasks)} tasks"
    return _heatmap(grid, "dimensions (truncate_dim)", "precision", f"Dimensions × precision: {model} ({over}, × 100)")


def _heatmap(grid: pd.DataFrame, xlabel: str, ylabel: str, title: str) -> bytes:
    fig = _figure(max(4.5, 1.6 + 0.9 * grid.shape[1]), max(2.6, 1.0 + 0.55 * grid.shape[0]))
    ax = fig.add_subplot()  # type: ignore[attr-defined]
    values = np.ma.masked_invalid(grid.to_numpy(float))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    for (row, col), value in np.ndenumerate(grid.to_numpy(float)):
        if not np.isnan(value):
            ax.text(col, row, f"{value:.1f}", ha="center", va="center", color="white" if value < values.mean() else "black", fontsize=9)
    ax.set_xticks(range(grid.shape[1]), [_text(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [_text(p) for p in grid.index])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(_text(title), fontsize=10)
    fig.colorbar(image, ax=ax)  # type: ignore[attr-defined]
    return _png(fig)


FIGURES = (
    (
        "quality-throughput",
        "Quality vs throughput; the Pareto front (nothing else is both faster and better) in red",
        quality_vs_throughput,
    ),
    (
        "quality-bytes",
        "Quality vs bytes per stored vector; the Pareto front (nothing else is both smaller and better) in red",
        quality_vs_bytes,
    ),
    ("per-task", "Main score per task with bootstrap interval whiskers", task_bars),
    ("pooling", "Pooling comparison: mean score by pooling strategy and layer", pooling_heatmap),
    ("precision", "Compression: mean score by stored precision and truncated dimensions", precision_heatmap),
)
