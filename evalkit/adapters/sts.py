"""STS: Pearson and Spearman between gold scores and vector similarities, as MTEB does.

Gold scores are min-max normalised with the task's score range (MTEB's
``_normalize``); similarities are sklearn's paired cosine / Manhattan / Euclidean
(negated distances) plus the dot product, and the correlations scipy's Pearson and
Spearman, all computed in numpy (equal to those libraries within 1e-13, tested,
without importing them). Main score: ``cosine_spearman`` on 0-1.
Data: TSV/CSV/JSONL with columns ``sentence1``, ``sentence2``, ``score`` (renamable
with ``settings.columns``); several files for one split are concatenated (MTEB's
SICK-R scores train+trial+test).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from evalkit.adapters.base import TaskOutcome, check_settings, embed_pairs, finite
from evalkit.adapters.similarity import similarities
from evalkit.data import read_many
from evalkit.encoders.base import Encoder
from evalkit.errors import DataError
from evalkit.stats import pearson, spearman, spearman_counts
from evalkit.taskspec import TaskSpec

SETTINGS = {
    "min_score": "lowest gold score (default 0)",
    "max_score": "highest gold score (default 5)",
    "columns": "rename columns: {sentence1 = ..., sentence2 = ..., score = ...}",
}


@dataclass(frozen=True)
class STSData:
    sentences1: list[str]
    sentences2: list[str]
    gold: np.ndarray


def correlations(gold: np.ndarray, sims: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Pearson and Spearman of every similarity against gold; an undefined one (constant input) is None."""
    scores: dict[str, float | None] = {}
    for name, values in sims.items():
        scores[f"{name}_pearson"] = finite(pearson(gold, values))
        scores[f"{name}_spearman"] = finite(spearman(gold, values))
    scores["pearson"], scores["spearman"] = scores["cosine_pearson"], scores["cosine_spearman"]
    return scores


class STSAdapter:
    task_type: ClassVar[str] = "sts"
    main_metric: ClassVar[str] = "cosine_spearman"

    def validate(self, task: TaskSpec) -> None:
        check_settings(task, SETTINGS)
        low, high = self._range(task)
        if not high > low:
            raise DataError("max_score must be above min_score", path=task.source, field="settings.max_score")

    def _range(self, task: TaskSpec) -> tuple[float, float]:
        values = []
        for key, default in (("min_score", 0), ("max_score", 5)):
            value = task.setting(key, default)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise DataError(f"must be a number, got {value!r}", path=task.source, field=f"settings.{key}")
            values.append(float(value))
        return values[0], values[1]

    def load(self, task: TaskSpec, split: str) -> STSData:
        renames = task.setting("columns", {})
        if not isinstance(renames, dict) or set(renames) - {"sentence1", "sentence2", "score"}:
            raise DataError(
                "must be a table mapping sentence1 / sentence2 / score to column names",
                path=task.source,
                field="settings.columns",
            )
        columns = {"sentence1": "sentence1", "sentence2": "sentence2", "score": "score", **renames}
        rows = read_many(task.files_for(split), [columns["sentence1"], columns["sentence2"], columns["score"]])
        low, high = self._range(task)
        gold = []
        for row in rows:
            value = row.number(columns["score"])
            if not low <= value <= high:
                raise DataError(
                    f"score {value} is outside the task's range {low:g}..{high:g}",
                    path=row.path,
                    line=row.line,
                    field=columns["score"],
                )
            gold.append((value - low) / (high - low))
        return STSData(
            [r.text(columns["sentence1"]) for r in rows],
            [r.text(columns["sentence2"]) for r in rows],
            np.asarray(gold, dtype=np.float64),
        )

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        data = self.load(task, split)
        n = len(data.gold)
        sims = similarities(*embed_pairs(encoder, data.sentences1, data.sentences2))
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=correlations(data.gold, sims),
            n_units=n,
            units={"gold": data.gold.round(6).tolist(), "cosine": sims["cosine"].round(7).tolist()},
        )

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        return spearman(np.asarray(units["gold"])[index], np.asarray(units["cosine"])[index])

    def score_counts(self, units: Mapping[str, Any], counts: np.ndarray) -> np.ndarray:
        """All bootstrap resamples at once (``counts``: resamples × units multiplicities)."""
        return spearman_counts(np.asarray(units["gold"]), np.asarray(units["cosine"]), counts)
