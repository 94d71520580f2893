"""Per-pair similarity functions shared by the pair-based task types (STS, pair classification).

The formulas are scikit-learn's ``paired_*_distances`` written out in numpy, operation
for operation (``tests/test_similarity.py`` checks bit-equality), so scores equal
MTEB's without importing scikit-learn, which costs about a second per process.
"""

from __future__ import annotations

import numpy as np


def _normalize(x: np.ndarray) -> np.ndarray:
    """sklearn.preprocessing.normalize: L2 rows, rows with a (near-)zero norm left as they are."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    return x / norms[:, np.newaxis]


def _as_float(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's check_pairwise_arrays: float32 stays float32 only when both sides are float32."""
    dtype = np.float32 if a.dtype == np.float32 and b.dtype == np.float32 else np.float64
    return np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)


def similarities(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pair similarity under each function (higher = more similar), as MTEB computes them.

    Distances are negated so that every function ranks the same way; MTEB sorts raw
    distances ascending instead, which orders pairs identically.
    """
    a, b = _as_float(a, b)
    unit = _normalize(a) - _normalize(b)
    diff = a - b
    return {
        "cosine": 1 - 0.5 * np.einsum("ij,ij->i", unit, unit),
        "manhattan": -np.abs(diff).sum(axis=-1),
        "euclidean": -np.sqrt(np.einsum("ij,ij->i", diff, diff)),
        "dot": np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64)),
    }
