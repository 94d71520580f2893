"""``hf-logits``: classifier-head logits as the sentence vector. A labelled BASELINE.

Tutorials still print this recipe: load ``AutoModelForSequenceClassification`` on a
base checkpoint and call ``model(**batch).logits.mean(dim=1)`` "to get an embedding".
The head is untrained (randomly initialised), it projects to ``num_labels`` (2)
dimensions, and ``mean(dim=1)`` then collapses each sentence to ONE number, so cosine
similarity between any two sentences is +1 or -1. evalkit keeps the recipe so its
failure is measurable: ``reduce=none`` (default) uses the logit vector, and
``reduce=mean`` reproduces the tutorial exactly. The head is seeded (``seed=0``), so
the same spec always gives the same vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from evalkit.encoders.base import Backend, Role, intra_op_threads
from evalkit.encoders.transformer import Backbone, LoadOptions
from evalkit.schemas import Seed
from evalkit.schemas.options import TransformerOptions
from evalkit.spec import EncoderSpec


class LogitsOptions(TransformerOptions):
    """``hf-logits``: how the logits become a vector, and the head's size and seed."""

    reduce: Literal["none", "mean"] = Field("none", description="none (the logit vector) | mean (the tutorial's logits.mean(dim=1))")
    num_labels: Annotated[int, Field(ge=1, le=100_000)] = Field(2, description="size of the (untrained) head")
    seed: Seed = Field(0, description="seed for the head's random initialisation")


class LogitsEncoder(Backend):
    """Logits of a sequence-classification head, optionally averaged to a scalar."""

    options_model = LogitsOptions

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self.options = LogitsOptions.of(spec)
        self.declared_threads = self.options.threads
        self.reduce = self.options.reduce
        self.seed = self.options.seed
        self.backbone = Backbone.shared(
            LoadOptions.from_options(spec.model, self.options),
            "AutoModelForSequenceClassification",
            seed=self.seed,
            num_labels=self.options.num_labels,
        )
        self.head = ("logits", self.reduce, self.options.prompts())
        reduce = self.reduce == "mean"
        self.backbone.register(self.head, lambda out, _mask: out.logits.float().mean(dim=1, keepdim=True) if reduce else out.logits.float())

    @classmethod
    def share_key(cls, spec: EncoderSpec) -> object:
        """Both reductions (and any prompts) of one seeded head run on one backbone."""
        return ("hf-logits", spec.model, LogitsOptions.of(spec).load_key(exclude=("reduce",)))

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        prompt = self.options.prompt_for(role)
        with intra_op_threads(self.declared_threads):
            return self.backbone.encode([prompt + t for t in texts] if prompt else list(texts), self.head)

    def fingerprint(self) -> dict[str, str]:
        return {
            "backend": "hf-logits",
            **self.backbone.fingerprint(),
            "reduce": self.reduce,
            "seed": str(self.seed),
            "num_labels": str(self.backbone.model.config.num_labels),
            "prompts": repr(self.options.prompts()),
        }

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(self.backbone.token_lengths(texts))

    def close(self) -> None:
        self.backbone.release(self.head)
