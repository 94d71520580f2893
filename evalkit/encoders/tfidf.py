"""``tfidf``: a lexical baseline. TF-IDF fitted on the texts of the task being scored.

``tfidf:default`` (MODEL is a free label), ``?svd=256`` reduces with truncated SVD
(LSA), ``sublinear_tf``, ``ngram_max``, ``min_df`` as in scikit-learn. The vectors
depend on the whole collection, so adapters ``fit`` it on every text of the task
first, and it is never cached across tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalkit.encoders.base import Role
from evalkit.spec import EncoderSpec, Options


class TfidfEncoder:
    OPTIONS = {
        "svd": "reduce to this many dimensions with truncated SVD (0 = off, default)",
        "sublinear_tf": "use 1 + log(tf) (default true)",
        "ngram_max": "largest word n-gram (default 1)",
        "min_df": "ignore terms in fewer documents (default 1)",
        "seed": "seed of the SVD (default 0)",
    }

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self.opts = Options(spec, self.OPTIONS)
        self.svd_dims = self.opts.integer("svd", 0)
        self.seed = self.opts.integer("seed", 0)
        self._vectorizer: Any = None
        self._svd: Any = None

    def fit(self, texts: Sequence[str]) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer = TfidfVectorizer(
            sublinear_tf=self.opts.flag("sublinear_tf", True),
            ngram_range=(1, self.opts.integer("ngram_max", 1)),
            min_df=self.opts.integer("min_df", 1),
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
