"""``static``: static (model2vec-style) token embeddings, mean-pooled by model2vec."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from evalkit import catalogue
from evalkit.encoders.base import Backend, Role
from evalkit.encoders.transformer import weights_identity
from evalkit.errors import ModelUnavailableError
from evalkit.schemas.options import Flag, Positive, TransformOptions
from evalkit.spec import EncoderSpec


class StaticOptions(TransformOptions):
    """``static``: normalisation and truncation of model2vec-style embeddings, and the post-pooling transforms."""

    normalize: Flag | None = Field(None, description="L2-normalise (default: as the model's config says)")
    max_length: Positive = Field(512, description="tokens per text")


class StaticEncoder(Backend):
    options_model = StaticOptions

    def __init__(self, spec: EncoderSpec) -> None:
        from model2vec import StaticModel

        self.spec = spec
        self.options = StaticOptions.of(spec)
        self.source = str(catalogue.resolve(spec.model))
        try:
            self.model: Any = StaticModel.from_pretrained(self.source, normalize=self.options.normalize)
        except OSError as exc:
            raise catalogue.hub_failure(self.source, exc) from exc
        except (ValueError, KeyError) as exc:
            raise ModelUnavailableError(f"'{self.source}' is not a static (model2vec) model: {exc}") from exc
        self.max_length = self.options.max_length

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        vectors = self.model.encode(list(texts), max_length=self.max_length, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def uses_role(self) -> bool:
        """Static vectors never depend on the role (no prompts)."""
        return False

    _identity: str | None = None

    def fingerprint(self) -> dict[str, str]:
        if self._identity is None:  # hashed once per load (every file of the folder: see evalkit.model_identity)
            self._identity = weights_identity(self.source, None)
        return {
            "backend": "static",
            "weights": self._identity,
            "normalize": str(self.model.normalize),
            "max_length": str(self.max_length),
        }

    def count_tokens(self, texts: Sequence[str]) -> int:
        encoded = self.model.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return sum(min(len(e.ids), self.max_length) for e in encoded)

    def close(self) -> None:
        from evalkit import collector

        self.model = None
        collector.closed()
