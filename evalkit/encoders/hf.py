"""``hf``: any Hugging Face AutoModel, pooled from any layer.

``hf:MODEL?pooling=mean&layer=-1`` (defaults). ``layer`` counts like
``output_hidden_states``: 0 is the embedding layer, -1 the last layer.
Optional ``prompt``, ``query_prompt`` and ``document_prompt`` are prepended to texts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalkit.encoders import pooling as poolings
from evalkit.encoders.base import Role
from evalkit.encoders.transformer import COMMON_OPTIONS, Backbone, LoadOptions
from evalkit.errors import SpecError
from evalkit.spec import EncoderSpec, Options

PROMPT_OPTIONS = {
    "prompt": "text prepended to every input",
    "query_prompt": "text prepended to queries (retrieval)",
    "document_prompt": "text prepended to documents (retrieval)",
}


def prompt_for(opts: Options, role: Role | None) -> str:
    if role is Role.QUERY and opts.optional("query_prompt") is not None:
        return opts.text("query_prompt", "")
    if role is Role.DOCUMENT and opts.optional("document_prompt") is not None:
        return opts.text("document_prompt", "")
    return opts.text("prompt", "")


def prompt_key(spec: EncoderSpec) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in spec.options if k.endswith("prompt"))


class HFEncoder:
    """Hidden states of an AutoModel, pooled by a declared strategy."""

    OPTIONS = {
        "pooling": "mean | cls | max | first_last_avg | weighted_mean | last_token",
        "layer": "hidden layer to pool (0 = embeddings, -1 = last)",
        **PROMPT_OPTIONS,
        **COMMON_OPTIONS,
    }

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self.opts = Options(spec, self.OPTIONS)
        self.pooling = poolings.POOLINGS.get(self.opts.text("pooling", "mean"))
        self.layer = self.opts.integer("layer", -1)
        self.backbone = Backbone.shared(LoadOptions.from_options(spec.model, self.opts))
        fn, layer = self.pooling.fn, self.layer
        self.head = ("pool", self.pooling.name, self.layer, prompt_key(spec))
        self.backbone.register(self.head, lambda out, mask: fn(out.hidden_states, mask, layer))
        n_layers = int(getattr(self.backbone.model.config, "num_hidden_layers", 0) or 0)
        if n_layers and not -(n_layers + 1) <= self.layer <= n_layers:
            self.close()
            raise SpecError(f"layer={self.layer} is out of range for '{spec.model}', which has layers 0..{n_layers}")

    @staticmethod
    def check_options(opts: Options) -> None:
        poolings.POOLINGS.get(opts.text("pooling", "mean"))
        opts.integer("layer", -1)
        LoadOptions.check(opts)

    @staticmethod
    def share_key(spec: EncoderSpec) -> object:
        """Specs with equal keys run on one backbone: a pooling sweep is one forward pass."""
        return ("hf", spec.without("pooling", "layer", *PROMPT_OPTIONS))

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        prompt = prompt_for(self.opts, role)
        return self.backbone.encode([prompt + t for t in texts] if prompt else list(texts), self.head)

    def fingerprint(self) -> dict[str, str]:
        return {
            "backend": "hf",
            **self.backbone.fingerprint(),
            "pooling": self.pooling.name,
            "layer": str(self.layer),
            "prompts": repr(prompt_key(self.spec)),
        }

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(self.backbone.token_lengths(texts))

    def close(self) -> None:
        self.backbone.release(self.head)
