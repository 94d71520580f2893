"""Task adapters, one per task type, looked up by the task file's ``type``.

Third parties add task types through the ``evalkit.adapters`` entry-point group.
"""

from __future__ import annotations

from evalkit.adapters.base import Adapter, TaskAdapter, TaskOutcome, checked_adapter
from evalkit.registry import Registry, provides

ADAPTERS: Registry[type[Adapter]] = Registry(
    "task type", entry_point_group="evalkit.adapters", check=provides("validate", "evaluate", "score_units")
)
ADAPTERS.register_lazy("sts", "evalkit.adapters.sts:STSAdapter")
ADAPTERS.register_lazy("classification", "evalkit.adapters.classification:ClassificationAdapter")
ADAPTERS.register_lazy("pair_classification", "evalkit.adapters.pair_classification:PairClassificationAdapter")
ADAPTERS.register_lazy("retrieval", "evalkit.adapters.retrieval:RetrievalAdapter")
ADAPTERS.register_lazy("reranking", "evalkit.adapters.reranking:RerankingAdapter")
ADAPTERS.register_lazy("summarization", "evalkit.adapters.summarization:SummarizationAdapter")
ADAPTERS.register_lazy("clustering", "evalkit.adapters.clustering:ClusteringAdapter")


def adapter_for(task_type: str) -> Adapter:
    """An instance of the task type's adapter; its ``evaluate`` always checks every vector (:class:`TaskAdapter`)."""
    adapter: Adapter = checked_adapter(ADAPTERS.get(task_type)())
    return adapter


__all__ = ["ADAPTERS", "Adapter", "TaskAdapter", "TaskOutcome", "adapter_for"]
