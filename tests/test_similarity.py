"""evalkit's numpy similarity functions are scikit-learn's (which MTEB uses), bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import paired_cosine_distances, paired_euclidean_distances, paired_manhattan_distances

from evalkit.adapters.similarity import similarities


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equal_to_sklearn_paired_distances(dtype: type) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 384)).astype(dtype)
    b = rng.normal(size=(500, 384)).astype(dtype)
    a[3] = 0.0  # a zero vector: sklearn leaves it unnormalised
    sims = similarities(a, b)
    np.testing.assert_array_equal(sims["cosine"], 1 - paired_cosine_distances(a, b))
    np.testing.assert_array_equal(sims["manhattan"], -paired_manhattan_distances(a, b))
    np.testing.assert_array_equal(sims["euclidean"], -paired_euclidean_distances(a, b))
    np.testing.assert_allclose(sims["dot"], (a.astype(np.float64) * b).sum(axis=1))


def test_correlations_equal_scipy() -> None:
    """Pearson and Spearman (ties averaged) agree with scipy.stats, which MTEB uses, to 1e-13."""
    from scipy.stats import pearsonr, spearmanr

    from evalkit.stats import pearson, spearman

    rng = np.random.default_rng(1)
    for n in (2, 3, 50, 1379):
        gold = rng.integers(0, 26, n) / 5  # STS-B-like gold scores: many ties
        sims = rng.normal(size=n).astype(np.float32).round(3).astype(np.float64)  # ties on both sides
        for x, y in ((gold, sims), (sims, gold), (gold, gold)):
            assert abs(pearson(x, y) - pearsonr(x, y)[0]) < 1e-13
            assert abs(spearman(x, y) - spearmanr(x, y)[0]) < 1e-13


@pytest.mark.parametrize("x", [np.ones(5), np.array([0.1, np.nan, 0.3, 0.4, 0.5]), np.array([0.2])])
def test_undefined_correlations_are_nan(x: np.ndarray) -> None:
    """Constant, non-finite or single-unit input: no correlation (stored as None by the adapters), never a number."""
    from evalkit.stats import pearson, spearman

    y = np.arange(len(x), dtype=np.float64)
    assert np.isnan(pearson(x, y)) and np.isnan(spearman(x, y)) and np.isnan(spearman(y, x))
