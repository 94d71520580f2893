"""``tfidf``: a lexical baseline. TF-IDF fitted on the texts of the task being scored.

``tfidf:default`` (MODEL is a free label), ``?svd=256`` reduces with truncated SVD
(LSA), ``sublinear_tf``, ``ngram_max``, ``min_df`` as in scikit-learn. The vectors
depend on the whole collection, so adapters ``fit`` it on every text of the task
first, and it is never cached across tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from evalkit.encoders.base import Backend, Role
from evalkit.schemas import Seed
from evalkit.schemas.options import BIG, BackendOptions, Flag
from evalkit.spec import EncoderSpec


class TfidfOptions(BackendOptions):
    """``tfidf``: scikit-learn's TfidfVectorizer settings and the optional SVD."""

    svd: Annotated[int, Field(ge=0, le=100_000)] = Field(0, description="reduce to this many dimensions with truncated SVD (0 = off)")
    sublinear_tf: Flag = Field(True, description="use 1 + log(tf)")
    ngram_max: Annotated[int, Field(ge=1, le=100)] = Field(1, description="largest word n-gram")
    min_df: Annotated[int, Field(ge=1, le=BIG)] = Field(1, description="ignore terms in fewer documents")
    seed: Seed = Field(0, description="seed of the SVD")


class TfidfEncoder(Backend):
    options_model = TfidfOptions

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self.options = TfidfOptions.of(spec)
        self.svd_dims = self.options.svd
        self.seed = self.options.seed
        self._vectorizer: Any = None
        self._svd: Any = None

    def fit(self, texts: Sequence[str]) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer = TfidfVectorizer(
            sublinear_tf=self.options.sublinear_tf,
            ngram_range=(1, self.options.ngram_max),
            min_df=self.options.min_df,
        )
        matrix = self._vectorizer.fit_transform(list(texts))
        self._svd = None
        if self.svd_dims:
            dims = min(self.svd_dims, matrix.shape[1] - 1)
            self._svd = TruncatedSVD(n_components=dims, random_state=self.seed).fit(matrix)

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        if self._vectorizer is None:
            self.fit(texts)
        matrix = self._vectorizer.transform(list(texts))
        if self._svd is not None:
            return np.asarray(self._svd.transform(matrix), dtype=np.float32)
        return np.asarray(matrix.toarray(), dtype=np.float32)

    def fingerprint(self) -> dict[str, str]:
        return {"backend": "tfidf", "options": str(self.spec), "corpus_fitted": "true"}

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(t.split()) for t in texts)

    def close(self) -> None:
        self._vectorizer = self._svd = None
