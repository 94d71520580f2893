"""Encoder backends, looked up by name in one registry.

Built-in backends are registered lazily (importing evalkit does not import torch);
third parties add theirs through the ``evalkit.encoders`` entry-point group, with
a value ``package.module:factory`` where ``factory(spec) -> Encoder``.
"""

from __future__ import annotations

from collections.abc import Callable

from evalkit import collector
from evalkit.encoders.base import Backend, Encoder, Role
from evalkit.registry import Registry, takes_arguments
from evalkit.spec import EncoderSpec

EncoderFactory = Callable[[EncoderSpec], Encoder]

BACKENDS: Registry[EncoderFactory] = Registry("encoder backend", entry_point_group="evalkit.encoders", check=takes_arguments(1))

BACKENDS.register_lazy("hf", "evalkit.encoders.hf:HFEncoder")
BACKENDS.register_lazy("hf-logits", "evalkit.encoders.logits:LogitsEncoder")
BACKENDS.register_lazy("sbert", "evalkit.encoders.sbert:SBERTEncoder")
BACKENDS.register_lazy("static", "evalkit.encoders.static:StaticEncoder")
BACKENDS.register_lazy("tfidf", "evalkit.encoders.tfidf:TfidfEncoder")
BACKENDS.register_lazy("onnx", "evalkit.encoders.runtimes:ONNXEncoder")
BACKENDS.register_lazy("openvino", "evalkit.encoders.runtimes:OpenVINOEncoder")
BACKENDS.register_lazy("obj", "evalkit.encoders.objects:ObjectBackend")  # in-memory models, inside evalkit.evaluate()

BACKEND_SUMMARIES = {
    "hf": "Hugging Face AutoModel hidden states + pooling (mean, cls, max, first_last_avg, weighted_mean, last_token), any layer",
    "hf-logits": "BASELINE: classifier-head logits as the vector (the tutorial recipe; untrained head, seeded)",
    "sbert": "sentence-transformers model with its own pooling and normalisation",
    "static": "static (model2vec-style) token embeddings, mean-pooled",
    "tfidf": "lexical baseline: TF-IDF fitted on the task's texts, optional truncated SVD",
    "onnx": "a sentence-transformers model on ONNX Runtime (exported offline; quantize=int8), parity vs torch recorded",
    "openvino": "a sentence-transformers model with its transformer on OpenVINO (CPU, fp32), parity vs torch recorded",
    "obj": "an in-memory model passed to evalkit.evaluate() (Python API only; not written by hand)",
}


def check_spec(spec: EncoderSpec | str) -> EncoderSpec:
    """Parse a spec and validate its backend and options before any model loads.

    A :class:`~evalkit.encoders.base.Backend` subclass has its declared options model
    checked here (one SpecError naming the spec and the option); a third-party factory
    that declares none accepts any options (see ``Backend``).
    """
    text = spec if isinstance(spec, str) else None
    parsed = EncoderSpec.parse(spec) if isinstance(spec, str) else spec
    factory = backend(parsed.backend)
    if isinstance(factory, type) and issubclass(factory, Backend):
        factory.check(parsed, text)
    return parsed


def option_names(name: str) -> frozenset[str] | None:
    """The options backend ``name`` declares, or None when it declares none (then it accepts any)."""
    factory = backend(name)
    if isinstance(factory, type) and issubclass(factory, Backend):
        return frozenset(factory.options_model.model_fields)
    return None


def share_key(spec: EncoderSpec) -> object:
    """Encoders with equal share keys can run side by side on one model (one forward pass)."""
    factory = backend(spec.backend)
    if isinstance(factory, type) and issubclass(factory, Backend):
        return factory.share_key(split_spec(spec)[0])  # transforms run after the model: variants share it
    return ("solo", str(spec))


def load_encoder(spec: EncoderSpec | str) -> Encoder:
    """Build the encoder a spec names (loads the model)."""
    parsed = check_spec(spec)  # imports the backend's module
    base, transform = split_spec(parsed)  # the model runs without the transform options; they apply to its vectors
    factory = BACKENDS.get(parsed.backend)
    with collector.loading():
        encoder = factory(base)
    if isinstance(factory, type) and issubclass(factory, Backend):
        try:
            factory.checked(encoder)  # a backend of ours states its model's identity, or fails here
        except BaseException:
            encoder.close()
            raise
    return encoder if transform is None else TransformedEncoder(encoder, transform, parsed)


def backend(name: str) -> EncoderFactory:
    """The factory registered as ``name`` (raises with a "did you mean"); a first lookup imports its module."""
    with collector.loading():  # importing a backend imports torch, transformers, ...
        return BACKENDS.get(name)


from evalkit.encoders.objects import from_transformers  # noqa: E402  (after the registry: objects imports the base module)
from evalkit.encoders.transforms import TransformedEncoder, split_spec  # noqa: E402

__all__ = [
    "BACKENDS",
    "Backend",
    "Encoder",
    "EncoderSpec",
    "Role",
    "check_spec",
    "from_transformers",
    "load_encoder",
    "option_names",
    "share_key",
]
