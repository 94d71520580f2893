"""Encoder backends, looked up by name in one registry.

Built-in backends are registered lazily (importing evalkit does not import torch);
third parties add theirs through the ``evalkit.encoders`` entry-point group, with
a value ``package.module:factory`` where ``factory(spec) -> Encoder``.
"""

from __future__ import annotations

from collections.abc import Callable

from evalkit import collector
from evalkit.encoders.base import Encoder, Role
from evalkit.registry import Registry
from evalkit.spec import EncoderSpec, Options

EncoderFactory = Callable[[EncoderSpec], Encoder]

BACKENDS: Registry[EncoderFactory] = Registry("encoder backend", entry_point_group="evalkit.encoders")

BACKENDS.register_lazy("hf", "evalkit.encoders.hf:HFEncoder")
BACKENDS.register_lazy("hf-logits", "evalkit.encoders.logits:LogitsEncoder")
BACKENDS.register_lazy("sbert", "evalkit.encoders.sbert:SBERTEncoder")
BACKENDS.register_lazy("static", "evalkit.encoders.static:StaticEncoder")
BACKENDS.register_lazy("tfidf", "evalkit.encoders.tfidf:TfidfEncoder")

BACKEND_SUMMARIES = {
    "hf": "Hugging Face AutoModel hidden states + pooling (mean, cls, max, first_last_avg, weighted_mean, last_token), any layer",
    "hf-logits": "BASELINE: classifier-head logits as the vector (the tutorial recipe; untrained head, seeded)",
    "sbert": "sentence-transformers model with its own pooling and normalisation",
    "static": "static (model2vec-style) token embeddings, mean-pooled",
    "tfidf": "lexical baseline: TF-IDF fitted on the task's texts, optional truncated SVD",
}


def check_spec(spec: EncoderSpec | str) -> EncoderSpec:
    """Parse a spec and check its backend and options before any model loads.

    A backend may declare ``OPTIONS`` (name -> help) and a ``check_options(Options)``
    static method; both run here so a typo costs no model load.
    """
    parsed = EncoderSpec.parse(spec) if isinstance(spec, str) else spec
    factory = backend(parsed.backend)
    allowed = getattr(factory, "OPTIONS", None)
    if allowed is not None:
        opts = Options(parsed, allowed)
        check = getattr(factory, "check_options", None)
        if check is not None:
            check(opts)
    return parsed


def share_key(spec: EncoderSpec) -> object:
    """Encoders with equal share keys can run side by side on one model (one forward pass)."""
    factory = backend(spec.backend)
    key_fn = getattr(factory, "share_key", None)
    return key_fn(spec) if key_fn is not None else ("solo", str(spec))


def load_encoder(spec: EncoderSpec | str) -> Encoder:
    """Build the encoder a spec names (loads the model)."""
    parsed = check_spec(spec)  # imports the backend's module
    with collector.loading():
        return BACKENDS.get(parsed.backend)(parsed)


def backend(name: str) -> EncoderFactory:
    """The factory registered as ``name`` (raises with a "did you mean"); a first lookup imports its module."""
    with collector.loading():  # importing a backend imports torch, transformers, ...
        return BACKENDS.get(name)


__all__ = ["BACKENDS", "Encoder", "EncoderSpec", "Role", "check_spec", "load_encoder", "share_key"]
