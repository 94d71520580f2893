"""STS: Pearson and Spearman between gold scores and vector similarities, as MTEB does.

Gold scores are min-max normalised with the task's score range (MTEB's
``_normalize``); similarities are sklearn's paired cosine / Manhattan / Euclidean
(negated distances) plus the dot product, and the correlations scipy's Pearson and
Spearman, all computed in numpy (equal to those libraries within 1e-13, tested,
without importing them). Main score: ``cosine_spearman`` on 0-1.
Data: TSV/CSV/JSONL with columns ``sentence1``, ``sentence2``, ``score`` (renamable
with ``settings.columns``); several files for one split are concatenated (MTEB's
SICK-R scores train+trial+test). Blank sentences, duplicate pairs and pairs repeated
with a different score are warnings (``TaskOutcome.warnings``); a split whose gold
scores are all equal, or whose sentences are all blank, is refused: its correlation
is undefined; an encoder that gives every pair one similarity is refused, naming it. When the
vector check gave some vectors their own power of two (:class:`~evalkit.adapters.base.VectorCheck`), the
Euclidean, Manhattan and dot scores, which depend on each vector's length, are reported as None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from evalkit import subset
from evalkit.adapters.base import TaskAdapter, TaskOutcome, embed_pairs, emit, finite, quality_warnings
from evalkit.adapters.similarity import similarities
from evalkit.data import read_many
from evalkit.encoders.base import Encoder
from evalkit.errors import DataError, EvalkitError
from evalkit.schemas import Finite, Schema
from evalkit.schemas.task import Column, distinct_columns
from evalkit.stats import pearson, spearman, spearman_counts
from evalkit.taskspec import TaskSpec

FUNCTIONS = ("cosine", "manhattan", "euclidean", "dot")


class STSColumns(Schema):
    """Which data columns hold the two sentences and the gold score."""

    sentence1: Column = "sentence1"
    sentence2: Column = "sentence2"
    score: Column = "score"

    @model_validator(mode="after")
    def _distinct(self) -> STSColumns:
        distinct_columns(self)
        return self


class STSSettings(Schema):
    """``[settings]`` of an STS task: the gold score range (for MTEB's min-max normalisation) and column names."""

    min_score: Finite = 0.0
    max_score: Finite = 5.0
    columns: STSColumns = Field(default_factory=STSColumns)

    @field_validator("max_score")
    @classmethod
    def _above_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_score")
        if low is not None and not value > low:
            raise ValueError(f"must be above min_score ({low:g})")
        if low is not None and not math.isfinite(value - low):
            raise ValueError("the range min_score..max_score is too wide to normalise scores in")
        return value


@dataclass(frozen=True)
class STSData:
    sentences1: list[str]
    sentences2: list[str]
    gold: np.ndarray
    warnings: tuple[str, ...] = ()


def correlations(gold: np.ndarray, sims: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Pearson and Spearman of every similarity against gold; an undefined one (constant input) is None."""
    scores: dict[str, float | None] = {}
    for name, values in sims.items():
        scores[f"{name}_pearson"] = finite(pearson(gold, values))
        scores[f"{name}_spearman"] = finite(spearman(gold, values))
    scores["pearson"], scores["spearman"] = scores["cosine_pearson"], scores["cosine_spearman"]
    return scores


class STSAdapter(TaskAdapter):
    task_type: ClassVar[str] = "sts"
    scale_invariant: ClassVar[bool] = True  # every metric is unchanged when all vectors are scaled alike
    row_invariant: ClassVar[bool] = True  # the cosine metrics are unchanged when each vector is scaled on its own...
    row_dependent_metrics: ClassVar[tuple[str, ...]] = ("manhattan_", "euclidean_", "dot_")  # ...these are not
    main_metric: ClassVar[str] = "cosine_spearman"
    unit_bounds: ClassVar[dict[str, tuple[float, float]]] = {"cosine": (-1.0, 1.0)}
    Settings: ClassVar[type[Schema]] = STSSettings
    limit_unit: ClassVar[str] = "pairs"  # --limit N: a uniform sample of N pairs (evalkit.subset)
    metrics: ClassVar[tuple[str, ...]] = (
        *(f"{name}_{kind}" for name in FUNCTIONS for kind in ("pearson", "spearman")),
        "pearson",
        "spearman",
    )

    def validate(self, task: TaskSpec, split: str | None = None) -> None:
        emit(self.load(task, split or task.split).warnings)

    def load(self, task: TaskSpec, split: str) -> STSData:
        settings = task.settings_as(STSSettings)
        columns = settings.columns
        rows = read_many(task.files_for(split), [columns.sentence1, columns.sentence2, columns.score])
        low, high = settings.min_score, settings.max_score
        raw = []
        for row in rows:
            value = row.number(columns.score)
            if not low <= value <= high:
                raise DataError(
                    f"score {value} is outside the task's range {low:g}..{high:g}",
                    path=row.path,
                    line=row.line,
                    field=columns.score,
                    hint="settings.min_score / max_score set the range",
                )
            raw.append(value)
        gold = np.asarray([(value - low) / (high - low) for value in raw], dtype=np.float64)
        if gold.min() == gold.max():
            raise DataError(f"every pair has the gold score {raw[0]:g}; a correlation with constant scores is undefined", path=rows[0].path)
        first, second = [r.text(columns.sentence1) for r in rows], [r.text(columns.sentence2) for r in rows]
        notes = quality_warnings(
            rows,
            {columns.sentence1: first, columns.sentence2: second},
            key=lambda i: (first[i], second[i]),
            target=raw,
            what="pair",
            target_name="score",
        )
        keep = subset.sample(len(gold), subset.limit_of(task))
        if keep is not None:  # --limit: checked on every pair above, scored on the sample
            first, second, gold = subset.pick(first, keep), subset.pick(second, keep), gold[keep]
            if gold.min() == gold.max():
                raise DataError(f"the {len(keep)} pairs of --limit {task.limit} share one gold score", path=rows[0].path, field="--limit")
        return STSData(first, second, gold, tuple(notes))

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        data = self.load(task, split)
        n = len(data.gold)
        sims = similarities(*embed_pairs(encoder, data.sentences1, data.sentences2))
        if np.ptp(sims["cosine"]) == 0:  # the gold scores differ (checked when loading): a constant similarity is the encoder's
            selves = all(a == b for a, b in zip(data.sentences1, data.sentences2, strict=True))  # ... unless the data makes it
            raise EvalkitError(
                f"encoder {encoder.spec} gives all {n} pairs the same cosine similarity ({float(sims['cosine'][0]):.6g}); "
                "'cosine_spearman' is undefined (its correlation with the gold scores)",
                hint="every pair is a sentence with itself, so any encoder gives them one similarity: fix the data"
                if selves
                else "the encoder is at fault, not the task's data: check that its vectors depend on the text",
            )
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=correlations(data.gold, sims),
            n_units=n,
            units={"gold": data.gold.round(6).tolist(), "cosine": sims["cosine"].tolist()},
            warnings=data.warnings,
        )

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        return spearman(np.asarray(units["gold"])[index], np.asarray(units["cosine"])[index])

    def score_counts(self, units: Mapping[str, Any], counts: np.ndarray) -> np.ndarray:
        """All bootstrap resamples at once (``counts``: resamples × units multiplicities)."""
        return spearman_counts(np.asarray(units["gold"]), np.asarray(units["cosine"]), counts)
