"""In-memory models as encoders: a ``SentenceTransformer``, a ``(model, tokenizer)`` pair, any object with ``encode``.

:func:`evalkit.evaluate` turns each object into an *object spec*, ``obj:NAME@HASH``
(``?layer=…&pooling=…`` for a raw transformer), registered here for the length of
the call. The ``obj`` backend then builds encoders from it like any other backend,
so objects get the same executor, metering, cache, result files and gate as spec
strings, and never share a result file with them.

``HASH`` is a digest of what determines the vectors: every tensor of the state dict
(name, dtype, shape, bytes), the model's configuration and the tokenizer. A model
changed in a training loop gets a new hash, so neither the cache nor a resumed run
can serve it stale vectors. An object evalkit cannot fingerprint (a plain ``encode``
object without a ``state_dict``) runs with the cache off for it, and says so once.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.encoders.base import Backend, Role
from evalkit.errors import EvalkitError, SpecError
from evalkit.schemas.options import BackendOptions
from evalkit.spec import EncoderSpec

BACKEND = "obj"


@dataclass(frozen=True, eq=False)
class TransformersModel:
    """A raw Hugging Face model + tokenizer with a pooling, as :func:`from_transformers` describes it."""

    model: Any
    tokenizer: Any
    pooling: str = "mean"
    layer: int = -1
    max_length: int | None = None
    batch_size: int = 32
    name: str | None = None


def from_transformers(
    model: Any,
    tokenizer: Any,
    pooling: str = "mean",
    layer: int = -1,
    *,
    max_length: int | None = None,
    batch_size: int = 32,
    name: str | None = None,
) -> TransformersModel:
    """Describe an in-memory ``AutoModel`` + tokenizer, pooled like the ``hf`` backend (``pooling``, ``layer``).

    Several descriptions of one model object (a pooling × layer sweep) share one forward
    pass per text, exactly as ``hf:MODEL?pooling=…`` specs do.
    """
    from evalkit.encoders.pooling import POOLINGS

    POOLINGS.get(pooling)  # an unknown pooling fails here, with "did you mean"
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise SpecError(f"layer must be an integer, got {layer!r}", field="layer")
    if batch_size < 1 or (max_length is not None and max_length < 1):
        raise SpecError("batch_size and max_length must be at least 1", field="batch_size")
    return TransformersModel(model, tokenizer, pooling, layer, max_length, batch_size, name)


@dataclass
class Registered:
    """An object behind an ``obj:`` spec for the duration of one evaluate() call."""

    obj: Any
    fingerprint: dict[str, str]
    cacheable: bool
    nonce: str = ""


_LIVE: dict[str, Registered] = {}


def is_encoder_object(value: Any) -> bool:
    """Whether ``value`` is something :func:`register` accepts (not a spec string)."""
    return isinstance(value, TransformersModel) or callable(getattr(value, "encode", None))


def register(value: Any, name: str | None = None, *, fingerprint: bool = True) -> tuple[EncoderSpec, str | None]:
    """Make ``value`` loadable as an ``obj:`` spec; returns the spec and, when the cache must stay off, why.

    The fingerprint is computed even with the cache off: it is also what keeps a resumed
    run from reusing a result file written for the same object before it was changed.
    """
    if not is_encoder_object(value):
        raise EvalkitError(
            f"cannot evaluate a {type(value).__name__}: an encoder is a spec string, an object with encode(list[str]), "
            "or evalkit.encoders.from_transformers(model, tokenizer)",
            field="encoders",
        )
    label = _safe_name(name or getattr(value, "name", None) or _default_name(value))
    digest, why = (_fingerprint(value), None) if fingerprint else (None, "fingerprinting is off")
    if fingerprint and digest is None:
        why = "it has no state_dict() to fingerprint, so a changed object could be served stale vectors"
    model = f"{label}@{digest[:12]}" if digest else label
    options: tuple[tuple[str, str], ...] = ()
    if isinstance(value, TransformersModel):
        options = (("layer", str(value.layer)), ("pooling", value.pooling))
    spec = EncoderSpec(BACKEND, model, options)
    key = str(spec)
    existing = _LIVE.get(key)
    if existing is not None and existing.obj is not value and not (digest and existing.fingerprint.get("weights") == f"sha256:{digest}"):
        raise EvalkitError(f"two different encoder objects are both named '{label}'", field="encoders", hint="give each a distinct name")
    fp = {"backend": BACKEND, "name": label, "weights": f"sha256:{digest}" if digest else "unfingerprinted"}
    _LIVE[key] = Registered(value, fp, cacheable=digest is not None, nonce=uuid.uuid4().hex)
    return spec, why


def config_identity(spec: EncoderSpec) -> str:
    """What a cell's configuration hash keys an ``obj:`` encoder by: its fingerprint, or a fresh token.

    An object without a fingerprint gets a token unique to this registration, so a
    stored result is never taken for its own (it is always recomputed).
    """
    entry = _LIVE.get(str(spec))
    if entry is None:
        return ""
    return entry.fingerprint["weights"] if entry.cacheable else f"unfingerprinted:{entry.nonce}"


def unregister(spec: EncoderSpec) -> None:
    _LIVE.pop(str(spec), None)


def _registered(spec: EncoderSpec) -> Registered:
    try:
        return _LIVE[str(spec)]
    except KeyError:
        raise SpecError(
            f"'{spec}' names an in-memory model that is not registered in this process",
            hint="obj: specs exist only inside evalkit.evaluate(); pass the model object itself",
        ) from None


class ObjectOptions(BackendOptions):
    """The options evalkit itself writes into an ``obj:`` spec of a raw transformer (users never write them)."""

    layer: int | None = None
    pooling: str | None = None


class ObjectBackend(Backend):
    """The ``obj`` backend: builds an Encoder over the object registered under a spec (a factory, not an encoder)."""

    options_model = ObjectOptions

    @classmethod
    def check(cls, spec: EncoderSpec, text: str | None = None) -> BackendOptions:
        _registered(spec)  # `-e obj:...` typed by hand is exit 2 before any model loads
        return super().check(spec, text)

    def __new__(cls, spec: EncoderSpec) -> Any:
        entry = _registered(spec)
        if isinstance(entry.obj, TransformersModel):
            return TransformersObjectEncoder(spec, entry)
        return ObjectEncoder(spec, entry)

    @classmethod
    def share_key(cls, spec: EncoderSpec) -> Hashable:
        """Raw-transformer descriptions of one model object share a forward pass; other objects run alone."""
        entry = _LIVE.get(str(spec))
        if entry is not None and isinstance(entry.obj, TransformersModel):
            return (BACKEND, id(entry.obj.model))
        return (BACKEND, "solo", str(spec))


class ObjectEncoder:
    """Any object with ``encode(list[str]) -> array`` (MTEB's convention); a SentenceTransformer included.

    Roles: when the object declares prompts for a role (``obj.prompts["query"]``, as
    sentence-transformers models do), ``prompt_name`` is passed, as the ``sbert`` backend does.
    """

    def __init__(self, spec: EncoderSpec, entry: Registered) -> None:
        self.spec = spec
        self.entry = entry
        self.obj = entry.obj
        self.is_sbert = _is_sentence_transformer(self.obj)
        self.cacheable = entry.cacheable

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        kwargs: dict[str, Any] = {}
        prompts = getattr(self.obj, "prompts", None)
        if role is not None and isinstance(prompts, dict) and prompts.get(role.value):
            kwargs["prompt_name"] = role.value
        if self.is_sbert:
            kwargs.update(batch_size=32, convert_to_numpy=True, show_progress_bar=False, normalize_embeddings=False)
        vectors = self.obj.encode(list(texts), **kwargs)
        if hasattr(vectors, "detach"):
            vectors = vectors.detach().float().cpu().numpy()
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(texts):
            raise EvalkitError(f"{self.spec}: encode() returned shape {array.shape} for {len(texts)} texts; expected (n, dim)")
        return array

    def fingerprint(self) -> dict[str, str]:
        return dict(self.entry.fingerprint)

    def count_tokens(self, texts: Sequence[str]) -> int:
        tokenizer = getattr(self.obj, "tokenizer", None)
        if tokenizer is not None and callable(tokenizer):
            limit = getattr(self.obj, "max_seq_length", None)
            encoded = tokenizer(list(texts), truncation=limit is not None, max_length=limit)
            return sum(len(ids) for ids in encoded["input_ids"])
        return sum(len(t.split()) for t in texts)

    @property
    def device(self) -> str:
        return _device_of(self.obj)

    def close(self) -> None:
        """The object belongs to the caller: nothing is freed."""


class TransformersObjectEncoder:
    """A pooling of an in-memory transformer on a Backbone shared by every pooling of the same model object."""

    def __init__(self, spec: EncoderSpec, entry: Registered) -> None:
        from evalkit.encoders import pooling as poolings
        from evalkit.encoders.transformer import TOKENS_PER_TEXT, Backbone, LoadOptions

        desc: TransformersModel = entry.obj
        self.spec = spec
        self.entry = entry
        self.cacheable = entry.cacheable
        self.model = desc.model
        self.pooling = poolings.POOLINGS.get(desc.pooling)
        self.layer = desc.layer
        backbone = _SHARED.get(id(desc.model))
        if backbone is None or backbone.model is None:
            device = _device_of(desc.model)
            opts = LoadOptions(
                source=f"<in-memory {entry.fingerprint['name']}>",
                max_length=desc.max_length,
                batch_size=desc.batch_size,
                dtype="float32",
                device=device,
                revision=None,
                trust_remote_code=False,
                allow_pickle=False,
                token_budget=desc.batch_size * TOKENS_PER_TEXT,
            )
            tokenizer = desc.tokenizer
            limit = getattr(tokenizer, "model_max_length", 512) or 512
            if tokenizer.pad_token is None:
                raise EvalkitError(f"{spec}: the tokenizer has no pad token", hint="set tokenizer.pad_token before evaluating")
            backbone = Backbone(opts, desc.model, tokenizer, device, desc.max_length or min(int(limit), 512))
            backbone._identity = entry.fingerprint["weights"]
            _SHARED[id(desc.model)] = backbone
        self.backbone = backbone
        backbone.users += 1
        n_layers = int(getattr(getattr(desc.model, "config", None), "num_hidden_layers", 0) or 0)
        if n_layers and not -(n_layers + 1) <= self.layer <= n_layers:
            self.close()
            raise SpecError(f"layer={self.layer} is out of range for this model, which has layers 0..{n_layers}", field="layer")
        fn, layer = self.pooling.fn, self.layer
        self.head = ("pool", self.pooling.name, layer, ())
        backbone.register(self.head, lambda out, mask: fn(out.hidden_states, mask, layer))

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()  # dropout off while encoding; the caller's mode comes back after
        try:
            return self.backbone.encode(list(texts), self.head)
        finally:
            if was_training:
                self.model.train()

    def fingerprint(self) -> dict[str, str]:
        return {
            **self.entry.fingerprint,
            "pooling": self.pooling.name,
            "layer": str(self.layer),
            "max_length": str(self.backbone.max_length),
        }

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(self.backbone.token_lengths(texts))

    @property
    def device(self) -> str:
        return self.backbone.device

    def close(self) -> None:
        """Drop this pooling's head; the model object itself belongs to the caller and stays as it was."""
        self.backbone.heads.pop(self.head, None)
        self.backbone.head_users.pop(self.head, None)
        self.backbone.users -= 1
        if self.backbone.users <= 0:
            _SHARED.pop(id(self.model), None)
            self.backbone._pending.clear()


_SHARED: dict[int, Any] = {}


def _is_sentence_transformer(obj: Any) -> bool:
    module = sys.modules.get("sentence_transformers")
    return module is not None and isinstance(obj, module.SentenceTransformer)


def _device_of(obj: Any) -> str:
    device = getattr(obj, "device", None)
    if device is None and callable(getattr(obj, "parameters", None)):
        first = next(iter(obj.parameters()), None)
        device = getattr(first, "device", None)
    kind = getattr(device, "type", device)
    return str(kind) if kind else "cpu"


def _default_name(value: Any) -> str:
    model = value.model if isinstance(value, TransformersModel) else value
    config = getattr(model, "config", None)
    path = getattr(config, "_name_or_path", "") or ""
    card = getattr(getattr(value, "model_card_data", None), "base_model", None)
    name = path or card or type(model).__name__
    return str(name).rstrip("/").rsplit("/", 1)[-1] or type(model).__name__


def _safe_name(name: str) -> str:
    """A name that reads well in a spec: word characters, dots and dashes (others become '-')."""
    cleaned = re.sub(r"[^\w.\-]+", "-", str(name)).strip("-.")
    if not cleaned:
        raise EvalkitError(f"encoder name {name!r} has no usable characters", field="encoders")
    return cleaned[:80]


def _fingerprint(value: Any) -> str | None:
    """sha256 over the state dict's tensors, the config and the tokenizer; None when there is no state dict."""
    if isinstance(value, TransformersModel):
        parts: list[Any] = [value.model, value.tokenizer]
        extra = {"pooling": value.pooling, "layer": value.layer, "max_length": value.max_length}
    else:
        parts, extra = [value], {}
    model = parts[0]
    state_dict = getattr(model, "state_dict", None)
    if not callable(state_dict):
        return None
    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict().items()):
        digest.update(name.encode())
        digest.update(f"{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(_tensor_bytes(tensor))
    digest.update(_config_text(model).encode())
    tokenizer = parts[1] if len(parts) > 1 else getattr(model, "tokenizer", None)
    digest.update(_tokenizer_text(tokenizer).encode("utf-8", "surrogatepass"))
    digest.update(json.dumps(extra, sort_keys=True).encode())
    return digest.hexdigest()


def _tensor_bytes(tensor: Any) -> bytes:
    data = tensor.detach().cpu().contiguous()
    try:
        return bytes(data.view(-1).view(dtype=_byte_dtype()).numpy())
    except (RuntimeError, TypeError):
        return bytes(data.float().numpy())


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def _config_text(model: Any) -> str:
    """The model's configuration: a HF config, or each sentence-transformers module's config."""
    texts: list[str] = []
    config = getattr(model, "config", None)
    to_json: Callable[..., str] | None = getattr(config, "to_json_string", None)
    if to_json is not None:
        texts.append(to_json(use_diff=False))
    if _is_sentence_transformer(model):
        texts.append(str(getattr(model, "max_seq_length", "")))
        for module in model:
            get = getattr(module, "get_config_dict", None)
            texts.append(type(module).__name__ + json.dumps(get() if callable(get) else {}, sort_keys=True, default=str))
            inner = getattr(module, "auto_model", None)
            inner_config = getattr(inner, "config", None)
            if inner_config is not None:
                texts.append(inner_config.to_json_string(use_diff=False))
    return "\n".join(texts)


def _tokenizer_text(tokenizer: Any) -> str:
    if tokenizer is None:
        return ""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return backend.to_str()
    vocab = getattr(tokenizer, "get_vocab", None)
    return json.dumps(vocab(), sort_keys=True) if callable(vocab) else type(tokenizer).__name__
