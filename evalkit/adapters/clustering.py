"""Clustering: k-means on frozen vectors, scored by V-measure against the gold labels, as MTEB does.

``mode = "v2"`` (default) is mteb's ``AbsTaskClustering`` (the ``.v2`` tasks): with a
``random.Random(seed)``, first draw the documents to embed (``rng.sample`` of
``max_fraction_of_documents_to_embed`` of them, default 0.04, or of
``max_document_to_embed``; every document, unsampled, with ``subsample = false``),
then run ``n_experiments`` experiments (mteb's ``n_clusters``), each drawing
``max_documents_per_cluster`` documents *with replacement* (``rng.choices``) and
clustering them with ``MiniBatchKMeans(k, batch_size=kmeans_batch_size, n_init=1,
random_state=seed)``, ``k`` = the number of gold labels among the embedded documents.
Main score: the mean V-measure over experiments (AMI is reported too). The draws depend
only on the seed and the data, so every encoder clusters the same documents in each
experiment. Per-unit outcomes are the experiments: the interval is over experiments,
i.e. how far the mean moves with other random subsamples of the same documents.

``mode = "legacy"`` is mteb's ``AbsTaskClusteringLegacy``: each clustering set (rows
sharing a ``set`` value; the whole file when there is no ``set`` column) is clustered
once with ``MiniBatchKMeans(k, batch_size=clustering_batch_size, n_init="auto",
random_state=seed)``; the score is the mean V-measure over sets. Per-unit outcomes are
the sets, so the interval is over sets (none with a single set). The v2 mode pools all
sets, as mteb's ``.v2`` versions of multi-set tasks do.

Data: TSV/CSV/JSONL with ``text`` and ``label`` (int or string, one type per file) and
an optional ``set``; renamable with ``settings.columns``. Departures from mteb, both
refusals rather than different numbers: a set (or the embedded documents) with a
single label is an error (mteb scores such a set 1.0 without encoding it), and so is
the integer label -1 in v2 mode (mteb reads it as "no label at this level" and drops
those documents).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from evalkit import subset
from evalkit.adapters.base import TaskAdapter, TaskOutcome, check_work, embed, emit, fit_if_needed, quality_warnings, where
from evalkit.adapters.records import Record, parse_record
from evalkit.data import Row, read_many
from evalkit.encoders.base import Encoder
from evalkit.errors import DataError
from evalkit.schemas import Schema, Seed, Text
from evalkit.schemas.task import Column, distinct_columns
from evalkit.taskspec import TaskSpec

V2_ONLY = (
    "n_experiments",
    "max_documents_per_cluster",
    "max_fraction_of_documents_to_embed",
    "max_document_to_embed",
    "subsample",
    "kmeans_batch_size",
)
LEGACY_ONLY = ("clustering_batch_size",)
METRICS = {"v2": ("v_measure", "v_measure_std", "ami", "ami_std"), "legacy": ("v_measure", "v_measure_std")}


class ClusteringColumns(Schema):
    """The file's column for each field."""

    text: Column = "text"
    label: Column = "label"
    set: Column = "set"

    @model_validator(mode="after")
    def _distinct(self) -> ClusteringColumns:
        distinct_columns(self)
        return self


class ClusteringSettings(Schema):
    """``[settings]`` of a clustering task; defaults are mteb's."""

    mode: Literal["v2", "legacy"] = Field("v2", description="'v2' (mteb AbsTaskClustering, default) or 'legacy' (AbsTaskClusteringLegacy)")
    n_experiments: int = Field(10, ge=1, le=10_000, description="v2: clustering experiments (mteb's n_clusters)")
    max_documents_per_cluster: int = Field(16_384, ge=1, le=10**8, description="v2: documents drawn with replacement per experiment")
    max_fraction_of_documents_to_embed: float | None = Field(
        0.04, gt=0, le=1, description="v2: fraction of the documents embedded (rng.sample); mteb's default 0.04"
    )
    max_document_to_embed: int | None = Field(None, ge=1, description="v2: number of documents embedded, instead of a fraction")
    subsample: bool = Field(True, description="v2: false embeds every document, unsampled (mteb: both limits None)")
    kmeans_batch_size: int = Field(512, ge=1, le=10**8, description="v2: MiniBatchKMeans batch size (mteb's k_mean_batch_size)")
    clustering_batch_size: int = Field(500, ge=1, le=10**8, description="legacy: MiniBatchKMeans batch size")
    seed: Seed = Field(42, description="seed of the document draws and of k-means (mteb's 42)")
    columns: ClusteringColumns = Field(default_factory=ClusteringColumns)

    @field_validator(*V2_ONLY, *LEGACY_ONLY)
    @classmethod
    def _mode_only(cls, value: Any, info: ValidationInfo) -> Any:
        """A setting of the other mode would be silently ignored: refuse it (runs only for keys the file sets)."""
        mode = info.data.get("mode")
        if mode is not None and info.field_name in (LEGACY_ONLY if mode == "v2" else V2_ONLY):
            raise ValueError(f"applies only to mode = '{'legacy' if mode == 'v2' else 'v2'}', not mode = '{mode}'")
        return value

    @model_validator(mode="after")
    def _one_limit(self) -> ClusteringSettings:
        given = self.model_fields_set
        fraction = "max_fraction_of_documents_to_embed" in given and self.max_fraction_of_documents_to_embed is not None
        count = "max_document_to_embed" in given and self.max_document_to_embed is not None
        if fraction and count:
            raise ValueError("max_fraction_of_documents_to_embed and max_document_to_embed are both set; set one (mteb refuses both too)")
        if not self.subsample and (fraction or count):
            raise ValueError("subsample = false embeds every document; drop max_fraction_of_documents_to_embed / max_document_to_embed")
        return self

    def embed_limit(self) -> tuple[str, float] | None:
        """How many documents v2 embeds: ("fraction", f), ("count", n), or None for all of them, unsampled."""
        if not self.subsample:
            return None
        if self.max_document_to_embed is not None:
            return "count", self.max_document_to_embed
        if self.max_fraction_of_documents_to_embed is not None:
            return "fraction", self.max_fraction_of_documents_to_embed
        return None


def _label(value: Any) -> Any:
    """One clear error for a label of the wrong kind, instead of one per member of ``int | str``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | str)):
        raise ValueError(f"must be an integer or a string, got {type(value).__name__} {value!r}"[:120])
    return value


Label = Annotated[int | Text, BeforeValidator(_label)]


class ClusteringRecord(Record):
    text: Text
    label: Label
    set: Label | None = None


@dataclass(frozen=True)
class Documents:
    texts: list[str]
    labels: list[int | str]
    sets: list[int | str | None] | None
    rows: list[Row]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Plan:
    """What gets clustered, fixed before any model loads: v2 draws, or legacy sets (indices into the documents)."""

    embedded: list[int]
    groups: list[np.ndarray]  # int64; v2: per experiment, positions into ``embedded`` (mteb's draws); legacy: per set, document indices
    n_clusters: list[int]

    def __eq__(self, other: object) -> bool:
        """Two plans are equal when they embed, draw and cluster alike (the draws are arrays)."""
        if not isinstance(other, Plan):
            return NotImplemented
        same_groups = len(self.groups) == len(other.groups) and all(map(np.array_equal, self.groups, other.groups))
        return self.embedded == other.embedded and self.n_clusters == other.n_clusters and same_groups

    __hash__ = None  # type: ignore[assignment]


def _look_alike_labels(rows: list[Row], labels: list[int | str], column: str) -> list[str]:
    """String labels that read alike (``'1'``, ``'01'``, ``' 1'``; ``'Sports'``, ``'sports'``): different clusters, said."""
    spellings: dict[str, dict[str, int]] = {}
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            return []
        text = label.strip().casefold()
        key = str(int(text)) if text.lstrip("+-").isdigit() and len(text) < 20 else text
        spellings.setdefault(key, {}).setdefault(label, rows[i].line)
    clashes = [
        " / ".join(f"{k!r} (line {line})"[:60] for k, line in list(found.items())[:3]) for found in spellings.values() if len(found) > 1
    ]
    if not clashes:
        return []
    shown = "; ".join(clashes[:3]) + (f"; and {len(clashes) - 3} more" if len(clashes) > 3 else "")
    head = f"{where(rows[0].path, None)}: field '{column}': {len(clashes)} labels spelt differently read alike"
    return [f"{head}; each spelling is its own cluster: {shown}"]


def v_measures(labels: np.ndarray, assigned: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics.cluster import adjusted_mutual_info_score, v_measure_score

    return float(v_measure_score(labels, assigned)), float(adjusted_mutual_info_score(labels, assigned))


class ClusteringAdapter(TaskAdapter):
    task_type: ClassVar[str] = "clustering"
    scale_invariant: ClassVar[bool] = True  # every metric is unchanged when all vectors are scaled alike
    main_metric: ClassVar[str] = "v_measure"
    unit_bounds: ClassVar[dict[str, tuple[float, float]]] = {"v_measures": (0.0, 1.0)}
    Settings: ClassVar[type[Schema]] = ClusteringSettings
    limit_unit: ClassVar[str] = "documents"  # --limit N: at most N documents embedded, stratified by label (by set too, legacy)

    def metric_names(self, settings: ClusteringSettings) -> tuple[str, ...]:
        return METRICS[settings.mode]

    def validate(self, task: TaskSpec, split: str | None = None) -> None:
        emit(self.load(task, split or task.split)[0].warnings)

    def load(self, task: TaskSpec, split: str) -> tuple[Documents, Plan]:
        """The documents and the whole sampling plan; every data problem surfaces here, before a model loads."""
        opts = task.settings_as(ClusteringSettings)
        documents = self._read(task, split, opts)
        if opts.mode == "legacy":  # --limit: a sample stratified by set and label (v2 samples what it embeds)
            sets = documents.sets
            keep = subset.stratified(list(zip(sets or [None] * len(documents.labels), documents.labels, strict=True)), task.limit)
            if keep is not None:
                pick = subset.pick
                documents = Documents(
                    pick(documents.texts, keep),
                    pick(documents.labels, keep),
                    sets and pick(sets, keep),
                    pick(documents.rows, keep),
                    documents.warnings,
                )
        plan = self._plan_v2(documents, opts, task) if opts.mode == "v2" else self._plan_legacy(documents, opts)
        return documents, plan

    def _read(self, task: TaskSpec, split: str, opts: ClusteringSettings) -> Documents:
        columns = opts.columns.model_dump()
        texts, labels, sets, rows = [], [], [], []
        kind: type | None = None
        set_kind: type | None = None
        has_set: bool | None = None
        for row in read_many(task.files_for(split), [columns["text"], columns["label"]]):
            record = parse_record(ClusteringRecord, row, columns)
            if kind is not None and type(record.label) is not kind:
                raise DataError(
                    f"label {record.label!r} is a {type(record.label).__name__} but earlier labels are {kind.__name__}s",
                    path=row.path,
                    line=row.line,
                    field=columns["label"],
                    hint="use one type for all labels (1 and '1' would be different clusters)",
                )
            kind = type(record.label)
            if record.set is not None and set_kind is not None and type(record.set) is not set_kind:
                raise DataError(
                    f"set {record.set!r} is a {type(record.set).__name__} but earlier sets are {set_kind.__name__}s",
                    path=row.path,
                    line=row.line,
                    field=columns["set"],
                    hint="use one type for all sets (1 and '1' would be different clustering sets)",
                )
            set_kind = type(record.set) if record.set is not None else set_kind
            if opts.mode == "v2" and record.label == -1:
                raise DataError(
                    "label -1 is refused in v2 mode",
                    path=row.path,
                    line=row.line,
                    field=columns["label"],
                    hint="mteb reads -1 as 'no label' and silently drops the document; use another value",
                )
            if has_set is not None and has_set != (record.set is not None):
                raise DataError(
                    "some rows name a clustering set and others do not",
                    path=row.path,
                    line=row.line,
                    field=columns["set"],
                    hint="give every row a set, or none",
                )
            has_set = record.set is not None
            texts.append(record.text)
            labels.append(record.label)
            sets.append(record.set)
            rows.append(row)
        notes = quality_warnings(
            rows,
            {columns["text"]: texts},
            key=lambda i: (sets[i], texts[i]),  # a text may recur in another clustering set
            target=labels,
            what="text",
        )
        notes += _look_alike_labels(rows, labels, columns["label"])
        return Documents(texts, labels, sets if has_set else None, rows, tuple(notes))

    def _plan_v2(self, docs: Documents, opts: ClusteringSettings, task: TaskSpec) -> Plan:
        check_work(
            task,
            "settings.max_documents_per_cluster",
            opts.n_experiments * opts.max_documents_per_cluster,
            len(docs.texts),
            f"n_experiments x max_documents_per_cluster = {opts.n_experiments:,} x {opts.max_documents_per_cluster:,} draws",
        )
        return self._draw_v2(docs, opts, task)

    def _draw_v2(self, docs: Documents, opts: ClusteringSettings, task: TaskSpec) -> Plan:
        """mteb's ``_evaluate_subset`` and ``_evaluate_clustering_bootstrapped``, up to the point where vectors are needed."""
        n = len(docs.texts)
        rng = random.Random(opts.seed)
        limit = opts.embed_limit()
        if limit is None:
            embedded = list(range(n))
        else:
            kind, value = limit
            count = min(n, int(value * n) if kind == "fraction" else int(value))
            if count < 1:
                raise task.error(
                    "settings.max_fraction_of_documents_to_embed",
                    f"a fraction {value:g} of {n} documents embeds none",
                    hint="raise the fraction, set max_document_to_embed, or subsample = false",
                )
            embedded = rng.sample(range(n), k=count)
        keep = subset.stratified([docs.labels[i] for i in embedded], task.limit)  # --limit: embed at most N of them
        embedded = subset.pick(embedded, keep)
        k = len({docs.labels[i] for i in embedded})
        if k < 2:
            raise DataError(
                f"the {len(embedded)} documents to embed hold a single label ({docs.labels[embedded[0]]!r}); clustering needs two",
                path=docs.rows[0].path,
                hint="embed more documents (settings.max_fraction_of_documents_to_embed) or check the label column",
            )
        if opts.max_documents_per_cluster < k:
            raise task.error(
                "settings.max_documents_per_cluster", f"{opts.max_documents_per_cluster} documents per experiment cannot form {k} clusters"
            )
        size = opts.max_documents_per_cluster
        draws = [np.fromiter(rng.choices(range(len(embedded)), k=size), dtype=np.int64, count=size) for _ in range(opts.n_experiments)]
        return Plan(embedded, draws, [k] * opts.n_experiments)

    def _plan_legacy(self, docs: Documents, opts: ClusteringSettings) -> Plan:
        groups: dict[int | str | None, list[int]] = {}
        for i, key in enumerate(docs.sets or [None] * len(docs.texts)):
            groups.setdefault(key, []).append(i)
        sizes = []
        for key, members in groups.items():
            labels = {docs.labels[i] for i in members}
            if len(labels) < 2:
                first = docs.rows[members[0]]
                where = "the file" if key is None else f"clustering set {key!r}"
                raise DataError(
                    f"{where} has a single label ({next(iter(labels))!r}); clustering needs two",
                    path=first.path,
                    line=first.line,
                    field=opts.columns.set if key is not None else opts.columns.label,
                    hint="mteb would score such a set 1.0 without clustering it",
                )
            sizes.append(len(labels))
        return Plan(list(range(len(docs.texts))), [np.asarray(g, dtype=np.int64) for g in groups.values()], sizes)

    def evaluate(self, encoder: Encoder, task: TaskSpec, split: str) -> TaskOutcome:
        from sklearn.cluster import MiniBatchKMeans

        opts = task.settings_as(ClusteringSettings)
        docs, plan = self.load(task, split)
        texts = [docs.texts[i] for i in plan.embedded]
        fit_if_needed(encoder, texts)
        vectors = embed(encoder, texts)
        labels = np.asarray([docs.labels[i] for i in plan.embedded])
        v_scores, ami_scores = [], []
        for members, k in zip(plan.groups, plan.n_clusters, strict=True):
            if opts.mode == "v2":
                model = MiniBatchKMeans(n_clusters=k, batch_size=opts.kmeans_batch_size, init="k-means++", n_init=1, random_state=opts.seed)
            else:
                model = MiniBatchKMeans(
                    n_clusters=k, batch_size=opts.clustering_batch_size, n_init="auto", compute_labels=True, random_state=opts.seed
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sklearn's memory-leak / convergence notes are not the user's concern
                assigned = model.fit_predict(vectors[members])
            v, ami = v_measures(labels[members], assigned)
            v_scores.append(v)
            ami_scores.append(ami)
        scores: dict[str, float | None] = {"v_measure": float(np.mean(v_scores)), "v_measure_std": float(np.std(v_scores))}
        if opts.mode == "v2":
            scores |= {"ami": float(np.mean(ami_scores)), "ami_std": float(np.std(ami_scores))}
        return TaskOutcome(
            main_metric=self.main_metric,
            scores=scores,
            n_units=len(v_scores),
            units={"v_measures": v_scores},
            details={
                "mode": opts.mode,
                "unit": "experiment" if opts.mode == "v2" else "clustering set",
                "n_documents": len(docs.texts),
                "n_documents_embedded": len(plan.embedded),
                "n_clusters": plan.n_clusters if opts.mode == "legacy" else plan.n_clusters[0],
                "seed": opts.seed,
            },
            warnings=docs.warnings,
        )

    def score_units(self, units: Mapping[str, Any], index: np.ndarray) -> float:
        """Mean V-measure over the resampled experiments (v2) or clustering sets (legacy)."""
        return float(np.mean(np.asarray(units["v_measures"], dtype=np.float64)[index]))

    def score_counts(self, units: Mapping[str, Any], counts: np.ndarray) -> np.ndarray:
        values = np.asarray(units["v_measures"], dtype=np.float64)
        return np.asarray((counts @ values) / counts.sum(axis=1))
