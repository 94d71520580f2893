"""Bootstrap intervals and paired tests against answers known in closed form or by enumeration.

Synthetic cases use a tiny adapter whose main score is the mean of its units (the
analytic reference is then the normal interval of a mean, and the exact bootstrap
distribution can be enumerated); real cases use the committed baseline's STS-B
units (real MiniLM similarities on real pairs, ties included).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from scipy.stats import norm, spearmanr

from evalkit import reading, stats
from evalkit.adapters.sts import STSAdapter
from evalkit.errors import EvalkitError
from evalkit.reading import load_results
from evalkit.results.schema import CellResult

BASELINE = Path(__file__).resolve().parent.parent / "results" / "baseline"


class MeanAdapter:
    """Main score = mean of ``units["x"]``: the textbook case with a known answer."""

    task_type: ClassVar[str] = "synthetic"
    main_metric: ClassVar[str] = "mean"

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        return float(np.mean(np.asarray(units["x"])[index]))


@pytest.fixture(scope="module")
def stsb() -> dict[str, CellResult]:
    """The committed baseline's STSBenchmark cells (real runs), by encoder."""
    cells = {r.encoder: r for r in load_results(BASELINE) if r.task == "STSBenchmark"}
    assert "sbert:all-MiniLM-L6-v2" in cells
    return cells


def test_interval_of_a_mean_matches_the_normal_interval() -> None:
    x = np.random.default_rng(7).normal(3.0, 2.0, size=400)
    interval = stats.bootstrap_ci(MeanAdapter(), {"x": x.tolist()}, len(x), float(x.mean()), stats.Bootstrap(n_boot=4000))
    half = norm.ppf(0.975) * x.std(ddof=0) / np.sqrt(len(x))  # the bootstrap's plug-in standard error
    assert interval.low == pytest.approx(x.mean() - half, abs=0.06 * half)
    assert interval.high == pytest.approx(x.mean() + half, abs=0.06 * half)
    assert interval.n_undefined == 0


def test_replicates_follow_the_exact_bootstrap_distribution() -> None:
    """n = 5: all 5^5 equally likely resamples enumerated; the Monte Carlo resamples must match them."""
    x = np.array([0.0, 1.0, 3.0, 7.0, 12.0])
    exact = np.sort([x[list(idx)].mean() for idx in itertools.product(range(5), repeat=5)])
    reps = stats.replicates(MeanAdapter(), {"x": x}, 5, stats.Bootstrap(n_boot=20000, seed=3))
    grid = np.linspace(0, 12, 97)
    cdf_exact = np.searchsorted(exact, grid, side="right") / exact.size
    cdf_mc = np.searchsorted(np.sort(reps), grid, side="right") / reps.size
    assert np.abs(cdf_exact - cdf_mc).max() < 0.015  # Monte Carlo error of a CDF at 20k draws is ~0.0035
    low, high, _ = stats.percentile_interval(reps, 0.95)
    assert low == pytest.approx(np.quantile(exact, 0.025), abs=0.25)
    assert high == pytest.approx(np.quantile(exact, 0.975), abs=0.25)


def test_intervals_cover_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    hits = 0
    trials = 200
    for trial in range(trials):
        x = rng.normal(1.0, 1.0, size=60)
        interval = stats.bootstrap_ci(MeanAdapter(), {"x": x}, 60, float(x.mean()), stats.Bootstrap(n_boot=400, seed=trial))
        hits += interval.low <= 1.0 <= interval.high  # type: ignore[operator]
    assert 0.89 <= hits / trials <= 0.99


def test_same_seed_gives_identical_intervals_and_another_seed_does_not(stsb: dict[str, CellResult]) -> None:
    cell = stsb["sbert:all-MiniLM-L6-v2"]
    adapter, key = STSAdapter(), stats.stream_key(cell.task, cell.split)
    first = stats.bootstrap_ci(adapter, cell.units, cell.n_units, cell.main_score, stats.Bootstrap(seed=0), key)
    again = stats.bootstrap_ci(adapter, cell.units, cell.n_units, cell.main_score, stats.Bootstrap(seed=0), key)
    other = stats.bootstrap_ci(adapter, cell.units, cell.n_units, cell.main_score, stats.Bootstrap(seed=1), key)
    assert (first.low, first.high) == (again.low, again.high)
    assert (first.low, first.high) != (other.low, other.high)
    assert first.low < cell.main_score < first.high  # type: ignore[operator]
    # the interval stored at run time is the one recomputed from the stored units
    assert cell.ci["low"] == pytest.approx(first.low, abs=1e-7) and cell.ci["high"] == pytest.approx(first.high, abs=1e-7)
    assert cell.ci["n_boot"] == 1000 and cell.ci["level"] == 0.95 and cell.ci["seed"] == 0


def test_sts_interval_agrees_with_the_fisher_z_interval(stsb: dict[str, CellResult]) -> None:
    """An independent analytic reference for Spearman: Fisher z with Bonett & Wright's standard error."""
    cell = stsb["sbert:all-MiniLM-L6-v2"]
    interval = reading.interval(cell)
    assert interval is not None and interval.low is not None and interval.high is not None
    r, n = cell.main_score, cell.n_units
    se = np.sqrt((1 + r**2 / 2) / (n - 3))  # type: ignore[operator]
    low, high = np.tanh(np.arctanh(r) + np.array([-1, 1]) * norm.ppf(0.975) * se)
    assert (interval.high - interval.low) == pytest.approx(high - low, rel=0.2)
    assert interval.low == pytest.approx(low, abs=0.01) and interval.high == pytest.approx(high, abs=0.01)


def test_spearman_from_counts_equals_scipy_on_every_resample(stsb: dict[str, CellResult]) -> None:
    cell = stsb["static:tokenlearn-static"]
    gold, cosine = np.asarray(cell.units["gold"]), np.asarray(cell.units["cosine"])
    assert len(np.unique(gold)) < len(gold)  # real gold scores tie a lot: the hard case for rank shortcuts
    index = next(stats.resample_indices(len(gold), stats.Bootstrap(), key=5))
    fast = stats.spearman_counts(gold, cosine, stats.counts_of(index, len(gold)))
    slow = [spearmanr(gold[i], cosine[i])[0] for i in index]
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_vectorised_bootstrap_of_10k_pair_spearman_takes_about_a_second() -> None:
    rng = np.random.default_rng(0)
    gold = np.round(rng.uniform(0, 5, 10_000), 1)
    cosine = gold + rng.normal(0, 1.5, 10_000)

    class Vectorised(MeanAdapter):
        def score_counts(self, units: Mapping[str, Any], counts: np.ndarray) -> np.ndarray:
            return stats.spearman_counts(units["gold"], units["cosine"], counts)

    start = time.perf_counter()
    reps = stats.replicates(Vectorised(), {"gold": gold, "cosine": cosine}, 10_000, stats.Bootstrap())
    elapsed = time.perf_counter() - start
    assert reps.shape == (1000,) and np.isfinite(reps).all()
    assert elapsed < 5.0, f"{elapsed:.2f} s"  # ~0.7 s on a busy 2-core machine; the bound leaves room for CI noise


def test_paired_bootstrap_of_identical_encoders_is_exactly_zero(stsb: dict[str, CellResult]) -> None:
    cell = stsb["sbert:all-MiniLM-L6-v2"]
    comp = stats.paired_bootstrap(STSAdapter(), cell.units, cell.units, cell.n_units, cell.main_score, cell.main_score)  # type: ignore[arg-type]
    assert comp.delta == 0 and comp.low == 0 and comp.high == 0 and comp.p_value == 1.0


def test_paired_bootstrap_sees_a_constant_shift_that_single_intervals_cannot() -> None:
    """B = A − 0.05 on every unit: the single intervals overlap, the paired difference is exactly −0.05."""
    x = np.random.default_rng(2).normal(0.0, 1.0, size=200)
    a, b = {"x": x}, {"x": x - 0.05}
    config = stats.Bootstrap(n_boot=500)
    comp = stats.paired_bootstrap(MeanAdapter(), a, b, 200, float(x.mean()), float(x.mean() - 0.05), config)
    assert comp.delta == pytest.approx(-0.05)
    assert comp.low == pytest.approx(-0.05) and comp.high == pytest.approx(-0.05)
    assert comp.p_value == pytest.approx(1 / 501)
    ia = stats.bootstrap_ci(MeanAdapter(), a, 200, float(x.mean()), config)
    ib = stats.bootstrap_ci(MeanAdapter(), b, 200, float(x.mean() - 0.05), config)
    assert ib.high > ia.low  # type: ignore[operator]  # unpaired intervals overlap


def test_paired_p_values_are_calibrated_under_the_null() -> None:
    """Two exchangeable encoders: a 5 % test rejects about 5 % of the time."""
    rng = np.random.default_rng(5)
    rejections, trials = 0, 150
    for trial in range(trials):
        base = rng.normal(0, 1, 100)
        a, b = base + rng.normal(0, 1, 100), base + rng.normal(0, 1, 100)
        comp = stats.paired_bootstrap(MeanAdapter(), {"x": a}, {"x": b}, 100, a.mean(), b.mean(), stats.Bootstrap(n_boot=300, seed=trial))
        rejections += comp.p_value < 0.05  # type: ignore[operator]
    assert rejections / trials <= 0.12


def test_tied_ranks_share_a_rank_when_the_difference_is_noise() -> None:
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 0.02, 1000)
    reps = np.vstack([0.800 + shared + rng.normal(0, 0.01, 1000), 0.799 + shared + rng.normal(0, 0.01, 1000), 0.5 + shared])
    assert stats.tied_ranks([0.800, 0.799, 0.5], reps) == [1, 1, 3]
    constant = np.repeat([[0.8], [0.7]], 1000, axis=1)  # no resampling noise at all: any gap is significant
    assert stats.tied_ranks([0.8, 0.7], constant) == [1, 2]


def test_bad_bootstrap_settings_are_refused() -> None:
    with pytest.raises(EvalkitError, match="level"):
        stats.Bootstrap(level=1.5)
    with pytest.raises(EvalkitError, match="resamples"):
        stats.Bootstrap(n_boot=3)


def test_shared_resample_counts_equal_fresh_ones_and_are_read_only() -> None:
    """The per-process memo of a task's resamples gives exactly what drawing them again gives."""
    from evalkit.stats import Bootstrap, counts_of, resample_counts, resample_indices

    config = Bootstrap(n_boot=150, seed=3)
    fresh = [counts_of(index, 40) for index in resample_indices(40, config, key=7)]
    first, again = list(resample_counts(40, config, key=7)), list(resample_counts(40, config, key=7))
    assert len(first) == len(fresh) == len(again)
    for a, b, c in zip(fresh, first, again, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not again[0].flags.writeable
    other = list(resample_counts(40, config, key=8))
    assert not np.array_equal(other[0], first[0])  # another task: other resamples
