"""``hf``: any Hugging Face AutoModel, pooled from any layer.

``hf:MODEL?pooling=mean&layer=-1`` (defaults). ``layer`` counts like
``output_hidden_states``: 0 is the embedding layer, -1 the last layer.
Optional ``prompt``, ``query_prompt`` and ``document_prompt`` are prepended to texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, Field

from evalkit.encoders import pooling as poolings
from evalkit.encoders.base import Backend, Role, intra_op_threads
from evalkit.encoders.transformer import Backbone, LoadOptions
from evalkit.errors import SpecError
from evalkit.schemas.options import TransformerOptions
from evalkit.spec import EncoderSpec


def _known_pooling(name: str) -> str:
    if name not in poolings.POOLINGS:  # the registry is the one list of strategies (case-insensitive)
        raise ValueError("is not a pooling strategy")
    return name


class HFOptions(TransformerOptions):
    """``hf``: which pooling of which layer, on top of the shared transformer options."""

    pooling: Annotated[str, AfterValidator(_known_pooling)] = Field(
        "mean", description="mean | cls | max | first_last_avg | weighted_mean | last_token"
    )
    layer: Annotated[int, Field(ge=-4096, le=4096)] = Field(-1, description="hidden layer to pool (0 = embeddings, -1 = last)")

    @classmethod
    def choices(cls, name: str) -> Sequence[str] | None:
        return poolings.names() if name == "pooling" else super().choices(name)


class HFEncoder(Backend):
    """Hidden states of an AutoModel, pooled by a declared strategy."""

    options_model = HFOptions

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self.options = HFOptions.of(spec)
        self.declared_threads = self.options.threads
        self.pooling = poolings.POOLINGS.get(self.options.pooling)
        self.layer = self.options.layer
        self.backbone = Backbone.shared(LoadOptions.from_options(spec.model, self.options))
        fn, layer = self.pooling.fn, self.layer
        self.head = ("pool", self.pooling.name, self.layer, self.options.prompts())
        self.backbone.register(self.head, lambda out, mask: fn(out.hidden_states, mask, layer))
        n_layers = int(getattr(self.backbone.model.config, "num_hidden_layers", 0) or 0)
        if n_layers and not -(n_layers + 1) <= self.layer <= n_layers:
            self.close()
            raise SpecError(
                f"encoder spec {str(spec)!r}: layer={self.layer} is out of range for '{spec.model}', which has layers 0..{n_layers}",
                field="layer",
            )

    @classmethod
    def share_key(cls, spec: EncoderSpec) -> object:
        """Specs with equal keys run on one backbone: a pooling sweep is one forward pass."""
        return ("hf", spec.model, HFOptions.of(spec).load_key(exclude=("pooling", "layer")))

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        prompt = self.options.prompt_for(role)
        with intra_op_threads(self.declared_threads):
            return self.backbone.encode([prompt + t for t in texts] if prompt else list(texts), self.head)

    def uses_role(self) -> bool:
        """Whether a role changes the prompt (else one vector per text serves queries, documents and role-less calls)."""
        plain = self.options.prompt_for(None)
        return any(self.options.prompt_for(role) != plain for role in Role)

    def fingerprint(self) -> dict[str, str]:
        return {
            "backend": "hf",
            **self.backbone.fingerprint(),
            "pooling": self.pooling.name,
            "layer": str(self.layer),
            "prompts": repr(self.options.prompts()),
        }

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(self.backbone.token_lengths(texts))

    def close(self) -> None:
        self.backbone.release(self.head)
