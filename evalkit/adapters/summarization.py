"""Summarization: MTEB's SummEval protocol, scoring machine summaries against human ones.

For each text, every machine summary is scored by its best cosine (and best dot
product) to the text's human summaries; these predicted scores are correlated
(Spearman, Pearson) with the human relevance scores of the machine summaries, and the
correlations are averaged over texts, as mteb's ``SummarizationEvaluator`` does.
Relevance is min-max normalised with the task's score range first (MTEB's SummEval
uses 0..5), which changes neither correlation. A text whose relevance scores, best
cosines or best dot products are all equal has no correlation and is skipped, as in
MTEB; the result's details count the skipped texts. When the vector check had to give some vectors
their own power of two (magnitudes outside float32's comfortable range, :class:`~evalkit.adapters.base.VectorCheck`),
the dot products are no longer the model's: the dot metrics are reported as None and do not decide which texts are
skipped. An encoder that gives every rated text constant similarities is refused, naming it. Main score: ``cosine_spearman``;
``spearman``/``pearson`` are mteb's "model similarity" pair (cosine again, computed
pair by pair as mteb does, so float32 near-ties may order differently).

``average_pvalues = true`` reproduces MTEB's original ``SummEval`` task, whose
evaluator (``DeprecatedSummarizationEvaluator``, mteb issue 1156) averages each
text's correlation *together with its p-value*; MTEB's published SummEval numbers
(30.81 for all-MiniLM-L6-v2) were computed that way and are not correlations. The
default is the corrected protocol of ``SummEvalSummarization.v2``.

Per-unit outcomes are per text (the text's cosine Spearman, None when skipped), so the
bootstrap interval is over texts: how much the mean would move with another sample of
texts rated the same way. Data: JSON Lines with ``human_summaries`` (list of text),
``machine_summaries`` (list of text) and ``relevance`` (one number per machine
summary); ``text`` and other fields are carried but not used. Renamable with
``settings.columns``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from evalkit import subset
from evalkit.adapters.base import (
    TaskAdapter,
    TaskOutcome,
    embed,
    emit,
    finite,
    fit_if_needed,
    quality_warnings,
    rows_rescaled,
    where,
)
from evalkit.adapters.records import Record, parse_record
from evalkit.data import Row, read_many
from evalkit.encoders.base import Encoder
from evalkit.errors import DataError, EvalkitError
from evalkit.schemas import Finite, Name, Schema, Text
from evalkit.schemas.task import Column, distinct_columns
from evalkit.stats import pearson, spearman
from evalkit.taskspec import TaskSpec

METRICS = ("cosine_spearman", "cosine_pearson", "dot_spearman", "dot_pearson", "similarity_spearman", "similarity_pearson")


class SummarizationColumns(Schema):
    """The file's column for each field (defaults: mteb's names)."""

    text: Column = "text"
    human_summaries: Column = "human_summaries"
    machine_summaries: Column = "machine_summaries"
    relevance: Column = "relevance"

    @model_validator(mode="after")
    def _distinct(self) -> SummarizationColumns:
        distinct_columns(self)
        return self


class SummarizationSettings(Schema):
    """``[settings]`` of a summarization task: the relevance range, mteb's v1 averaging, column names."""

    min_score: Finite = Field(0.0, description="lowest relevance score (mteb's SummEval: 0)")
    max_score: Finite = Field(5.0, description="highest relevance score (mteb's SummEval: 5)")
    average_pvalues: bool = Field(
        False,
        description="average each text's correlation with its p-value, as mteb's original SummEval task (mteb issue 1156); "
        "reproduces mteb's published SummEval numbers, which are not correlations",
    )
    columns: SummarizationColumns = Field(default_factory=SummarizationColumns)

    @field_validator("max_score")
    @classmethod
    def _above_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_score")
        if low is not None and not value > low:
            raise ValueError(f"must be above min_score ({low:g})")
        if low is not None and not math.isfinite(value - low):
            raise ValueError("the range min_score..max_score is too wide to normalise scores in")
        return value


class SummaryRecord(Record):
    """One text with its human summaries and its rated machine summaries."""

    text: Text | None = None
    human_summaries: list[Name] = Field(min_length=1)
    machine_summaries: list[Name] = Field(min_length=2)
    relevance: list[Finite] = Field(min_length=2)


@dataclass(frozen=True)
class Summaries:
    human: list[list[str]]
    machine: list[list[str]]
    gold: list[np.ndarray]  # normalised relevance per machine summary
    rows: list[Row]
    warnings: tuple[str, ...] = ()


def best_scores(machine: np.ndarray, human: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best cosine, best dot product and best pairwise cosine of each machine summary (row of ``machine``) against the human ones.

    Computed as mteb does on a CPU, operation for operation: float32 torch, one machine
    summary at a time against the L2-normalised human matrix (``cos_sim``, ``dot_score``),
    and one pair at a time for the third (``model.similarity``, which mteb calls per
    pair; cosine for the encoders evalkit runs). The order of near-equal summaries (two
    system outputs a word apart) is decided by float32 rounding, so other arithmetic
    reorders some of them and moves a text's Spearman by hundredths.
    """
    import torch

    normalize = torch.nn.functional.normalize
    with torch.inference_mode():
        humans = torch.from_numpy(np.ascontiguousarray(human, dtype=np.float32))
        unit_humans = normalize(humans, p=2, dim=1)
        unit_each = [normalize(h.reshape(1, -1), p=2, dim=1).transpose(0, 1) for h in humans]
        cosine, dot, pairwise = np.empty(len(machine)), np.empty(len(machine)), np.empty(len(machine))
        for i, row in enumerate(np.asarray(machine, dtype=np.float32)):
            vector = torch.from_numpy(np.ascontiguousarray(row)).reshape(1, -1)
            unit = normalize(vector, p=2, dim=1)
            cosine[i] = torch.max(unit @ unit_humans.transpose(0, 1)).item()
            dot[i] = torch.max(vector @ humans.transpose(0, 1)).item()
            pairwise[i] = max(float(unit @ h) for h in unit_each)
    return cosine, dot, pairwise


def correlate(gold: np.ndarray, predicted: np.ndarray, with_pvalues: bool) -> tuple[float, float]:
    """(Spearman, Pearson), or with ``with_pvalues`` each averaged with its p-value as MTEB's v1 evaluator does."""
    if not with_pvalues:
        return spearman(gold, predicted), pearson(gold, predicted)
    from scipy.stats import pearsonr, spearmanr

    rho = spearmanr(gold, predicted)
    r = pearsonr(gold, predicted)
    return float(np.mean([rho.statistic, rho.pvalue])), float(np.mean([r.statistic, r.pvalue]))


class SummarizationAdapter(TaskAdapter):
    task_type: ClassVar[str] = "summarization"
    scale_invariant: ClassVar[bool] = True  # every metric is unchanged when all vectors are scaled alike
    row_invariant: ClassVar[bool] = True  # the cosine metrics are unchanged when each vector is scaled on its own...
    row_dependent_metrics: ClassVar[tuple[str, ...]] = ("dot_",)  # ...the dot products are not
    main_metric: ClassVar[str] = "cosine_spearman"
    unit_bounds: ClassVar[dict[str, tuple[float, float]]] = {"cosine_spearman": (-1.0, 1.0)}
    Settings: ClassVar[type[Schema]] = SummarizationSettings
    limit_unit: ClassVar[str] = "texts"  # --limit N: a uniform sample of N texts (evalkit.subset)
    metrics: ClassVar[tuple[str, ...]] = (*METRICS[:4], "spearman", "pearson")

    def validate(self, task: TaskSpec, split: str | None = None) -> None:
        emit(self.load(task, split or task.split).warnings)

    def load(self, task: TaskSpec, split: str) -> Summaries:
        opts = task.settings_as(SummarizationSettings)
        columns = opts.columns.model_dump()
        required = [columns[k] for k in ("human_summaries", "machine_summaries", "relevance")]
        human, machine, gold, rows = [], [], [], []
        for row in read_many(task.files_for(split), required):
            record = parse_record(SummaryRecord, row, columns)
            if len(record.relevance) != len(record.machine_summaries):
                raise DataError(
                    f"{len(record.relevance)} relevance scores for {len(record.machine_summaries)} machine summaries",
                    path=row.path,
                    line=row.line,
                    field=columns["relevance"],
                    hint="give one score per machine summary, in the same order",
                )
            scores = np.asarray(record.relevance, dtype=np.float64)
            outside = np.flatnonzero((scores < opts.min_score) | (scores > opts.max_score))
            if outside.size:
                raise DataError(
                    f"relevance {scores[outside[0]]:g} is outside the task's range {opts.min_score:g}..{opts.max_score:g}",
                    path=row.path,
                    line=row.line,
                    field=f"{columns['relevance']}.{outside[0]}",
                    hint="set settings.min_score / max_score to the scale of the ratings",
                )
            human.append(record.human_summaries)
            machine.append(record.machine_summaries)
            gold.append((scores - opts.min_score) / (opts.max_score - opts.min_score))
            rows.append(row)
        relevance = columns["relevance"]
        constant = [i for i, scores in enumerate(gold) if scores.min() == scores.max()]
        if len(constant) == len(rows):
            raise DataError(
                "every text's machine summaries share one relevance score; no text has a correlation to average",
                path=rows[0].path,
                line=rows[0].line,
                field=relevance,
                hint="each text needs at least two different relevance scores",
            )
        notes = quality_warnings(
            rows,
            {},
            key=lambda i: (tuple(human[i]), tuple(machine[i])),
            target=[tuple(g.tolist()) for g in gold],
            what="summaries",
            target_name="relevance",
        )
        if constant:
            first = rows[constant[0]]
            notes.append(
                f"{where(first.path, first.line)}: field '{relevance}': {len(constant)} texts rate every machine summary alike; "
                "they have no correlation and are skipped, as in MTEB"
            )
        keep = subset.sample(len(rows), subset.limit_of(task))  # --limit: every text checked above, a sample scored
        if keep is not None and all(gold[i].min() == gold[i].max() for i in keep):
            raise DataError(
                f"the {len(keep)} texts of --limit {task.limit} each rate their machine summaries alike; none has a correlation",
                path=rows[0].path,
                field="--limit",
            )
        picked = (subset.pick(human, keep), subset.pick(machine, keep), subset.pick(gold, keep), subset.pick(rows, keep))
        return Summaries(*picked, warnings=tuple(notes))

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        opts = task.settings_as(SummarizationSettings)
        data = self.load(task, split)
        position: dict[str, int] = {}
        ids = [
            ([position.setdefault(s, len(position)) for s in human], [position.setdefault(s, len(position)) for s in machine])
            for human, machine in zip(data.human, data.machine, strict=True)
        ]
        texts = list(position)
        fit_if_needed(encoder, texts)
        vectors = embed(encoder, texts)
        dot_known = not rows_rescaled(encoder)  # vectors scaled each on its own: dot products are not the model's, nor used
        per_text: dict[str, list[float | None]] = {metric: [] for metric in METRICS}
        skipped = []
        for i, ((human_ids, machine_ids), gold) in enumerate(zip(ids, data.gold, strict=True)):
            cosine, dot, pairwise = best_scores(vectors[machine_ids], vectors[human_ids])
            if len(set(gold.tolist())) == 1 or (dot_known and len(set(dot.tolist())) == 1) or len(set(cosine.tolist())) == 1:
                skipped.append(i)  # MTEB's rule: no correlation with a constant side
                for metric in METRICS:
                    per_text[metric].append(None)
                continue
            for name, predicted in (("cosine", cosine), ("dot", dot), ("similarity", pairwise)):
                rho, r = correlate(gold, predicted, opts.average_pvalues)
                per_text[f"{name}_spearman"].append(finite(rho))
                per_text[f"{name}_pearson"].append(finite(r))
            if per_text["cosine_spearman"][-1] is None:  # undefined on this text: counted with the skipped ones, never dropped unsaid
                skipped.append(i)
        if all(v is None for v in per_text["cosine_spearman"]):
            rated = sum(1 for gold in data.gold if len(set(gold.tolist())) > 1)
            raise EvalkitError(  # every text whose ratings differ got constant similarities: the vectors, not the data
                f"encoder {encoder.spec} gives the machine summaries of each of the {rated} rated texts the same similarity; "
                "no text has a correlation to average",
                hint="the encoder is at fault, not the task's data: check that its vectors depend on the text",
            )
        scores: dict[str, float | None] = {}
        for metric, values in per_text.items():
            defined = [v for v in values if v is not None]
            scores[metric] = float(np.mean(defined)) if defined else None
        scores["spearman"], scores["pearson"] = scores.pop("similarity_spearman"), scores.pop("similarity_pearson")
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=scores,
            n_units=len(data.gold),
            units={"cosine_spearman": per_text["cosine_spearman"]},
            details={
                "n_texts": len(data.gold),
                "n_texts_skipped": len(skipped),
                "skipped_texts": [f"{data.rows[i].path.name}:{data.rows[i].line}" for i in skipped],
                "average_pvalues": opts.average_pvalues,
                "protocol": "mteb SummEval v1 (correlations averaged with p-values)"
                if opts.average_pvalues
                else "mteb SummEvalSummarization.v2",
            },
            warnings=data.warnings,
        )

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        """Mean per-text cosine Spearman over the resampled texts that have one."""
        values = np.asarray(units["cosine_spearman"], dtype=np.float64)[index]
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else float("nan")

    def score_counts(self, units: Mapping[str, Any], counts: np.ndarray) -> np.ndarray:
        """All resamples at once: count-weighted mean over the texts that have a correlation."""
        values = np.asarray(units["cosine_spearman"], dtype=np.float64)
        defined = np.isfinite(values)
        weights = counts @ defined.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray((counts @ np.where(defined, values, 0.0)) / weights)
