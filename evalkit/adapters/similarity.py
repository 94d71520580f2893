"""Per-pair similarity functions shared by the pair-based task types (STS, pair classification)."""

from __future__ import annotations

import numpy as np


def similarities(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pair similarity under each function (higher = more similar), as MTEB computes them.

    Distances are negated so that every function ranks the same way; MTEB sorts raw
    distances ascending instead, which orders pairs identically.
    """
    from sklearn.metrics.pairwise import paired_cosine_distances, paired_euclidean_distances, paired_manhattan_distances

    return {
        "cosine": 1 - paired_cosine_distances(a, b),
        "manhattan": -paired_manhattan_distances(a, b),
        "euclidean": -paired_euclidean_distances(a, b),
        "dot": np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64)),
    }
