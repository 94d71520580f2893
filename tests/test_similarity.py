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
