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

import numpy as np

from evalkit.encoders.base import Role
from evalkit.encoders.hf import PROMPT_OPTIONS, prompt_for, prompt_key
from evalkit.encoders.transformer import COMMON_OPTIONS, Backbone, LoadOptions
from evalkit.spec import EncoderSpec, Options


class LogitsEncoder:
    """Logits of a sequence-classification head, optionally averaged to a scalar."""

    OPTIONS = {
        "reduce": "none (the logit vector) | mean (the tutorial's logits.mean(dim=1))",
        "num_labels": "size of the (untrained) head, default 2",
        "seed": "seed for the head's random initialisation, default 0",
        **PROMPT_OPTIONS,
        **COMMON_OPTIONS,
    }

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self.opts = Options(spec, self.OPTIONS)
        self.reduce = self.opts.choice("reduce", "none", ("none", "mean"))
        self.seed = self.opts.integer("seed", 0)
        self.backbone = Backbone.shared(
            LoadOptions.from_options(spec.model, self.opts),
            "AutoModelForSequenceClassification",
            seed=self.seed,
            num_labels=self.opts.integer("num_labels", 2),
        )
        self.head = ("logits", self.reduce, prompt_key(spec))
        reduce = self.reduce == "mean"
        self.backbone.register(self.head, lambda out, _mask: out.logits.float().mean(dim=1, keepdim=True) if reduce else out.logits.float())

    @staticmethod
    def check_options(opts: Options) -> None:
        opts.choice("reduce", "none", ("none", "mean"))
        opts.integer("seed", 0)
        opts.integer("num_labels", 2)
        LoadOptions.check(opts)

    @staticmethod
    def share_key(spec: EncoderSpec) -> object:
        return ("hf-logits", spec.without("reduce", *PROMPT_OPTIONS))

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        prompt = prompt_for(self.opts, role)
        return self.backbone.encode([prompt + t for t in texts] if prompt else list(texts), self.head)

    def fingerprint(self) -> dict[str, str]:
        return {
            "backend": "hf-logits",
            **self.backbone.fingerprint(),
            "reduce": self.reduce,
            "seed": str(self.seed),
            "num_labels": str(self.backbone.model.config.num_labels),
            "prompts": repr(prompt_key(self.spec)),
        }

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(self.backbone.token_lengths(texts))

    def close(self) -> None:
        self.backbone.release(self.head)
