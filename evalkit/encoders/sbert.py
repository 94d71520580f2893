"""``sbert``: a sentence-transformers model with its own modules, pooling and normalisation.

Prompts: ``query_prompt`` / ``document_prompt`` / ``prompt`` in the spec win; else a
prompt the model itself declares for the role (``config_sentence_transformers.json``);
else the model's ``default_prompt_name``, as ``SentenceTransformer.encode`` would.

The forward passes run as the ``hf`` backbone's do, not through ``encode``: texts are
tokenised once, sorted by token length and cut into token-budget batches
(:func:`plan_batches`); each batch carries exactly the features the model's own
``preprocess`` gives it (prompt, ``prompt_length`` for a pooling with
``include_prompt=false``, ``max_seq_length``; checked against ``preprocess`` on every
call) and runs through the model's own ``forward`` (Transformer → Pooling → Dense /
Normalize ...) on CPU streams (:func:`run_batches`, ``EVALKIT_CPU_STREAMS``). ``encode``
splits every batch over all intra-op threads, whose barriers collapse when other
processes compete for the cores. The vectors agree with ``encode``'s within 1e-6 (only
the padding around each text differs; ``tests/test_sbert_backend.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from evalkit.encoders.base import Backend, Role, intra_op_threads
from evalkit.encoders.streams import budget_share, run_batches
from evalkit.encoders.transformer import LoadOptions, TokenStats, load_pretrained, pick_device, plan_batches, weights_identity
from evalkit.schemas.options import Flag, TransformerOptions
from evalkit.spec import EncoderSpec


class SBERTOptions(TransformerOptions):
    """``sbert``: the shared transformer options, plus normalisation of the output."""

    normalize: Flag = Field(False, description="L2-normalise the output (a model with a Normalize module normalises anyway)")


class SentenceTransformerRunner:
    """A loaded ``SentenceTransformer`` run over length-sorted, token-budget batches on CPU streams.

    Exposed as the encoder's ``backbone`` so the throughput meter reads its ``stats``
    (real and padded tokens, forward batches) and ``device`` as it does the ``hf`` one's.
    """

    def __init__(self, model: Any, device: str, batch_size: int, token_budget: int) -> None:
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.stats = TokenStats()

    def tokenize(self, texts: Sequence[str], prompt: str | None) -> dict[str, list[list[int]]]:
        """Every text tokenised once, unpadded, as the model's ``preprocess`` tokenises it (prompt prepended, ``max_seq_length``)."""
        prompted = [prompt + t for t in texts] if prompt else list(texts)
        return dict(self.model.tokenizer(prompted, truncation="longest_first"))  # at model_max_length, which max_seq_length sets

    def batches(self, texts: Sequence[str], prompt: str | None) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        """(original indices, the features ``preprocess`` would give those texts), longest first, each within the token budget.

        Texts are tokenised once, then each batch is padded from those tokens. That is
        checked once per call: the first batch is also run through the model's own
        ``preprocess``, whose batch-wide keys (``modality``, ``prompt_length`` for a
        pooling that leaves the prompt out) are copied to every batch. If anything
        differs (a processor with other inputs, left padding, flattening), every batch
        goes through ``preprocess`` instead, which tokenises twice but cannot disagree.
        """
        encoded = self.tokenize(texts, prompt)
        lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(texts))
        plan = list(plan_batches(lengths, self.batch_size, budget_share(self.token_budget, self.device)))
        tokenizer, preprocess = self.model.tokenizer, self.model.preprocess

        def padded(idx: np.ndarray, extras: dict[str, Any]) -> dict[str, Any]:
            features = tokenizer.pad({k: [v[i] for i in idx] for k, v in encoded.items()}, padding=True, return_tensors="pt")
            return {**features, **extras}

        reference = preprocess([texts[i] for i in plan[0]], prompt=prompt)
        extras = {k: v for k, v in reference.items() if k not in encoded}
        exact = all(isinstance(v, (str, int, type(None))) for v in extras.values()) and _same(padded(plan[0], extras), reference)
        for n, idx in enumerate(plan):  # on the calling thread: tokenizers are not thread-safe
            if n == 0:
                yield idx, reference
            else:
                yield idx, padded(idx, extras) if exact else preprocess([texts[i] for i in idx], prompt=prompt)

    def encode(self, texts: Sequence[str], prompt: str | None, normalize: bool) -> np.ndarray:
        """The model's ``sentence_embedding`` for each text (float32), in input order."""
        import torch

        from evalkit.context import progress_bar

        model, device = self.model, self.device
        if not texts:
            dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            return np.zeros((0, dimension() or 0), dtype=np.float32)
        if model.tokenizer is None or not hasattr(model, "preprocess"):  # no text tokenizer to plan with, or sentence-transformers < 6
            return self._library_encode(texts, prompt, normalize)
        truncate = getattr(model, "truncate_dim", None)

        def run(item: tuple[np.ndarray, dict[str, Any]]) -> tuple[np.ndarray, int, int, np.ndarray]:
            idx, features = item
            features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
            mask = features.get("attention_mask")
            if mask is None:  # a flattened (unpadded) batch: every position is real
                real = padded = int(features["input_ids"].numel())
            else:
                real, padded = int(mask.sum()), int(mask.numel())
            with torch.inference_mode():  # per thread: each stream enters its own
                vectors = model(features)["sentence_embedding"]
                if truncate:
                    vectors = vectors[..., :truncate]
                if normalize:
                    vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
                return idx, real, padded, vectors.float().cpu().numpy()

        out: np.ndarray | None = None
        bar = progress_bar(len(texts))
        batches = self.batches(texts, prompt)
        with contextlib.closing(run_batches(run, batches, device)) as results:  # threads restored even when a batch raises
            for idx, real, padded, vectors in results:
                bar.update(len(idx))
                self.stats.add(real, padded, len(idx))
                if out is None:
                    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
                out[idx] = vectors
        bar.close()
        assert out is not None  # at least one text, so at least one batch
        return out

    def _library_encode(self, texts: Sequence[str], prompt: str | None, normalize: bool) -> np.ndarray:
        kwargs: dict[str, Any] = {"prompt": prompt} if prompt is not None else {}
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
            normalize_embeddings=normalize,
            **kwargs,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


class SBERTEncoder(Backend):
    options_model = SBERTOptions

    def __init__(self, spec: EncoderSpec) -> None:
        from sentence_transformers import SentenceTransformer

        from evalkit.context import quiet_libraries

        quiet_libraries()

        self.spec = spec
        self.options = SBERTOptions.of(spec)
        self.declared_threads = self.options.threads
        self.load = LoadOptions.from_options(spec.model, self.options)
        self.device = pick_device(self.load.device)
        kwargs: dict[str, Any] = {"device": self.device}
        if self.load.dtype != "float32":
            import torch

            kwargs["model_kwargs"] = {"dtype": getattr(torch, self.load.dtype)}
        self.model: Any = load_pretrained(lambda src, **kw: SentenceTransformer(src, **kw), self.load, weights="model_kwargs", **kwargs)
        if self.load.max_length:
            self.model.max_seq_length = self.load.max_length
        self.model.eval()
        self.normalize = self.options.normalize
        self.backbone = SentenceTransformerRunner(self.model, self.device, self.load.batch_size, self.load.token_budget)
        self._identity: str | None = None

    def prompt(self, role: Role | None) -> str | None:
        """The prompt ``encode`` would prepend for ``role``: the spec's, else the model's for the role, else its default."""
        explicit = self.options.prompt_for(role)
        if explicit:
            return explicit
        prompts = getattr(self.model, "prompts", {}) or {}
        if role is not None and prompts.get(role.value):
            return str(prompts[role.value])
        default = getattr(self.model, "default_prompt_name", None)
        return prompts.get(default) if default is not None else None

    def uses_role(self) -> bool:
        """Whether a role changes the prompt (else one vector per text serves queries, documents and role-less calls)."""
        plain = self.prompt(None)
        return any(self.prompt(role) != plain for role in Role)

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        with intra_op_threads(self.declared_threads):
            return self.backbone.encode(list(texts), self.prompt(role), self.normalize)

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
        self.backbone.model = None
        collector.closed()


def _same(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Whether two feature dicts hold the same keys and values (tensors compared element-wise)."""
    import torch

    if ours.keys() != theirs.keys():
        return False
    for key, value in ours.items():
        other = theirs[key]
        if isinstance(value, torch.Tensor) or isinstance(other, torch.Tensor):
            if not (isinstance(value, torch.Tensor) and isinstance(other, torch.Tensor) and value.shape == other.shape):
                return False
            if value.dtype != other.dtype or not torch.equal(value, other):
                return False
        elif value != other:
            return False
    return True
