"""``static``: static (model2vec-style) token embeddings, mean-pooled by model2vec."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalkit import catalogue
from evalkit.encoders.base import Role
from evalkit.encoders.transformer import weights_identity
from evalkit.errors import ModelUnavailableError
from evalkit.spec import EncoderSpec, Options


class StaticEncoder:
    OPTIONS = {"normalize": "L2-normalise (default: as the model's config says)", "max_length": "tokens per text (default 512)"}

    def __init__(self, spec: EncoderSpec) -> None:
        from model2vec import StaticModel

        self.spec = spec
        self.opts = Options(spec, self.OPTIONS)
        self.source = str(catalogue.resolve(spec.model))
        normalize = self.opts.optional("normalize")
        try:
            self.model: Any = StaticModel.from_pretrained(
                self.source, normalize=None if normalize is None else self.opts.flag("normalize", True)
            )
        except OSError as exc:
            raise catalogue.hub_failure(self.source, exc) from exc
        except (ValueError, KeyError) as exc:
            raise ModelUnavailableError(f"'{self.source}' is not a static (model2vec) model: {exc}") from exc
        self.max_length = self.opts.integer("max_length", 512)

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        vectors = self.model.encode(list(texts), max_length=self.max_length, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def fingerprint(self) -> dict[str, str]:
        return {
            "backend": "static",
            "weights": weights_identity(self.source, None),
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
