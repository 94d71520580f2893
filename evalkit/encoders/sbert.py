"""``sbert``: a sentence-transformers model with its own pooling and normalisation.

Prompts: ``query_prompt`` / ``document_prompt`` / ``prompt`` in the spec win; else a
prompt the model itself declares for the role (``config_sentence_transformers.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from evalkit.encoders.base import Backend, Role
from evalkit.encoders.transformer import LoadOptions, load_pretrained, pick_device, weights_identity
from evalkit.schemas.options import Flag, TransformerOptions
from evalkit.spec import EncoderSpec


class SBERTOptions(TransformerOptions):
    """``sbert``: the shared transformer options, plus normalisation of the output."""

    normalize: Flag = Field(False, description="L2-normalise the output (a model with a Normalize module normalises anyway)")


class SBERTEncoder(Backend):
    options_model = SBERTOptions

    def __init__(self, spec: EncoderSpec) -> None:
        from sentence_transformers import SentenceTransformer

        from evalkit.context import quiet_libraries

        quiet_libraries()

        self.spec = spec
        self.options = SBERTOptions.of(spec)
        self.load = LoadOptions.from_options(spec.model, self.options)
        self.device = pick_device(self.load.device)
        kwargs: dict[str, Any] = {"device": self.device}
        if self.load.dtype != "float32":
            import torch

            kwargs["model_kwargs"] = {"dtype": getattr(torch, self.load.dtype)}
        self.model: Any = load_pretrained(lambda src, **kw: SentenceTransformer(src, **kw), self.load, weights="model_kwargs", **kwargs)
        if self.load.max_length:
            self.model.max_seq_length = self.load.max_length
        self.normalize = self.options.normalize
        self._identity: str | None = None

    def _prompt_kwargs(self, role: Role | None) -> dict[str, str]:
        explicit = self.options.prompt_for(role)
        if explicit:
            return {"prompt": explicit}
        prompts = getattr(self.model, "prompts", {}) or {}
        if role is not None and prompts.get(role.value):
            return {"prompt_name": role.value}
        return {}

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.load.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
            normalize_embeddings=self.normalize,
            **self._prompt_kwargs(role),
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def fingerprint(self) -> dict[str, str]:
        if self._identity is None:
            self._identity = weights_identity(self.load.source, self.load.revision)
        return {
            "backend": "sbert",
            "weights": self._identity,
            "max_length": str(self.model.max_seq_length),
            "modules": ",".join(type(m).__name__ for m in self.model),
            "normalize": str(self.normalize),
            "dtype": self.load.dtype,
            "prompts": repr(sorted((k, v) for k, v in self.spec.options if k.endswith("prompt")))
            + repr(sorted((getattr(self.model, "prompts", {}) or {}).items())),
        }

    def count_tokens(self, texts: Sequence[str]) -> int:
        tok = self.model.tokenizer(list(texts), truncation=True, max_length=self.model.max_seq_length)
        return sum(len(ids) for ids in tok["input_ids"])

    def close(self) -> None:
        from evalkit import collector

        self.model = None
        collector.closed()
