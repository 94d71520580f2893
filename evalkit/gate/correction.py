"""Multiple-comparison correction of the gate's p-values (``[gate] correction`` in the rules).

A gate over many tasks runs many tests; at ``alpha = 0.05`` each, twenty checks of an
unchanged model fail one by chance about two times in three. ``holm`` controls the
family-wise error (the chance of *any* false failure) at each rule's ``alpha``; ``bh``
(Benjamini-Hochberg) controls the expected share of false failures among the failures,
which keeps more power when many tasks really moved. Both return *adjusted* p-values,
so checks with different ``alpha`` are each compared with their own. ``none`` returns
the p-values unchanged (the default, today's behaviour).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("none", "holm", "bh")
NAMES = {"none": "none", "holm": "Holm", "bh": "Benjamini-Hochberg"}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: sorted ascending, ``max_{j≤i} min(1, (m − j + 1) p_(j))``, in input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``), in input order."""
    if not len(p_values):
        return []
    from scipy.stats import false_discovery_control

    return np.minimum(1.0, false_discovery_control(np.asarray(p_values, dtype=np.float64), method="bh")).tolist()


def adjust(p_values: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values by ``method`` (one of :data:`METHODS`)."""
    if any(not 0.0 <= p <= 1.0 for p in p_values):
        raise ValueError("p-values must lie in [0, 1]")
    if method == "none":
        return [float(p) for p in p_values]
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(METHODS)}")


def bound_alpha(alpha: float, method: str, family: int) -> float:
    """The one-sided error of a non-inferiority bound: ``alpha`` alone, or ``alpha / m`` under a correction (Bonferroni)."""
    return alpha if method == "none" or family <= 1 else alpha / family
