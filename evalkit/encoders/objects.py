"""In-memory models as encoders: a ``SentenceTransformer``, a ``(model, tokenizer)`` pair, any object with ``encode``.

:func:`evalkit.evaluate` turns each object into an *object spec*, ``obj:NAME@HASH``
(``?layer=…&pooling=…`` for a raw transformer), registered here for the length of
the call. The ``obj`` backend then builds encoders from it like any other backend,
so objects get the same executor, metering, cache, result files and gate as spec
strings, and never share a result file with them.

``HASH`` is the object's *identity*: a digest of everything reachable from it that can
change its vectors (:func:`evalkit.model_identity.object_digest`): every tensor —
parameters, persistent and non-persistent buffers —, every plain attribute
(``truncate_dim``, ``prompts``, ``default_prompt_name``, a module's own settings), the
configuration, the tokenizer, the code of classes from outside the numeric libraries,
and, for :func:`from_transformers`, the wrapper's options (pooling, layer, max_length,
batch size). A model changed in a training loop gets a new hash, so neither the cache
nor a resumed run can serve it stale vectors.

An object without a ``state_dict()`` (a plain ``encode`` object: its vectors may depend
on code evalkit cannot see), or one holding a value evalkit cannot digest, has **no
identity**: it is never cached (its fingerprint's ``weights`` is
:func:`evalkit.encoders.base.no_identity`, which the cache refuses), never shares a
forward pass, and its result files are never reused. Two distinct objects under one
name in one call are refused. Registration lasts exactly one call, whatever way it ends.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.encoders.base import Backend, Role, no_identity
from evalkit.errors import EvalkitError, SpecError, one_line
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

    def options(self) -> dict[str, object]:
        """The wrapper's own settings: each changes the vectors or how they are computed, so each is in the identity."""
        return {"pooling": self.pooling, "layer": self.layer, "max_length": self.max_length, "batch_size": self.batch_size}


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

    Several descriptions of one model object that differ only in pooling and layer (a
    sweep) share one forward pass per text, exactly as ``hf:MODEL?pooling=…`` specs do.
    """
    from evalkit.encoders.pooling import POOLINGS

    if not (callable(model) and callable(getattr(model, "eval", None))):
        raise SpecError(
            f"model must be a transformers model (a torch nn.Module), got {type(model).__name__}",
            field="model",
            hint="an object with encode(list[str]) is passed to evaluate() directly",
        )
    if tokenizer is None or not callable(tokenizer) or not callable(getattr(tokenizer, "pad", None)):
        raise SpecError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}", field="tokenizer")
    if not isinstance(pooling, str):
        raise SpecError(f"pooling must be a string, got {type(pooling).__name__} {pooling!r}", field="pooling")
    POOLINGS.get(pooling)  # an unknown pooling fails here, with "did you mean"
    _check_int("layer", layer)
    _check_int("batch_size", batch_size, minimum=1)
    if max_length is not None:
        _check_int("max_length", max_length, minimum=1)
    if name is not None and not isinstance(name, str):
        raise SpecError(f"name must be a string, got {type(name).__name__} {name!r}", field="name")
    return TransformersModel(model, tokenizer, pooling, layer, max_length, batch_size, name)


def _check_int(field_name: str, value: object, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{field_name} must be an integer, got {type(value).__name__} {value!r}", field=field_name)
    if minimum is not None and value < minimum:
        raise SpecError(f"{field_name} must be at least {minimum}, got {value}", field=field_name)


@dataclass
class Registered:
    """An object behind an ``obj:`` spec for the duration of one evaluate() call.

    ``fingerprint["weights"]`` is ``sha256:<identity>``, or :func:`no_identity` (never
    cached). ``share`` is the key under which it may share a forward pass: it holds the
    identity (or this registration's nonce) and every option of the wrapper, so two
    descriptions that could compute different vectors never share one.
    """

    obj: Any
    fingerprint: dict[str, str]
    cacheable: bool
    nonce: str = ""
    share: tuple[Hashable, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    users: int = 1


_LIVE: dict[str, Registered] = {}
_LOCK = threading.Lock()


def is_encoder_object(value: Any) -> bool:
    """Whether ``value`` is something :func:`register` accepts (not a spec string)."""
    try:
        return isinstance(value, TransformersModel) or callable(getattr(value, "encode", None))
    except Exception:  # an attribute that raises on access: not an encoder evalkit can call
        return False


def _own_name(value: Any) -> str | None:
    """The object's own ``name`` when it is a usable string (a tensor, a property that raises: none)."""
    try:
        own = getattr(value, "name", None)
    except Exception:
        return None
    return own if isinstance(own, str) and own else None


def register(value: Any, name: str | None = None) -> tuple[EncoderSpec, str | None]:
    """Make ``value`` loadable as an ``obj:`` spec; returns the spec and, when the cache must stay off, why.

    The identity is computed even with the cache off: it is also what keeps a resumed
    run from reusing a result file written for the same object before it was changed.
    Every successful call must be matched by one :func:`unregister`.
    """
    if not is_encoder_object(value):
        raise EvalkitError(
            f"cannot evaluate a {type(value).__name__}: an encoder is a spec string, an object with encode(list[str]), "
            "or evalkit.encoders.from_transformers(model, tokenizer)",
            field="encoders",
        )
    label = _safe_name(name or _own_name(value) or _default_name(value))
    options: tuple[tuple[str, str], ...] = ()
    if isinstance(value, TransformersModel):
        options = (("layer", str(value.layer)), ("pooling", value.pooling))
    with _LOCK:  # one name, one object: a second object under a name in use is refused, whatever its identity
        for entry in _LIVE.values():
            if entry.fingerprint["name"] == label and entry.options == options and entry.obj is not value:
                raise EvalkitError(
                    f"two different encoder objects are both named '{label}'", field="encoders", hint="give each a distinct name"
                )
    load_digest, why = identity(value)
    digest = load_digest
    if load_digest is not None and isinstance(value, TransformersModel):  # the per-head options, on top of the load identity
        digest = hashlib.sha256(f"{load_digest}\0pooling={value.pooling}\0layer={value.layer}".encode()).hexdigest()
    model = f"{label}@{digest[:12]}" if digest else label
    spec = EncoderSpec(BACKEND, model, options)
    key = str(spec)
    with _LOCK:
        existing = _LIVE.get(key)
        if existing is not None:
            if existing.obj is not value:
                raise EvalkitError(
                    f"two different encoder objects are both named '{label}'", field="encoders", hint="give each a distinct name"
                )
            existing.users += 1
            return spec, why
        nonce = uuid.uuid4().hex
        weights = f"sha256:{digest}" if digest else no_identity(why or "no identity")
        fp = {"backend": BACKEND, "name": label, "weights": weights}
        share: tuple[Hashable, ...] = (BACKEND, "solo", key, nonce)
        if isinstance(value, TransformersModel) and load_digest is not None:
            # one forward pass for descriptions of one model whose identity *and* load options are equal
            share = (BACKEND, "transformers", id(value.model), id(value.tokenizer), load_digest)
        _LIVE[key] = Registered(value, fp, cacheable=digest is not None, nonce=nonce, share=share, options=options)
    return spec, why


def identity(value: Any) -> tuple[str | None, str | None]:
    """(digest, None) for an object with an identity; (None, why) for one that has none (never cached, never shared).

    For a :func:`from_transformers` description this is the identity of what its heads share:
    model, tokenizer and the load options (max_length, batch size); pooling and layer come on top.
    """
    from evalkit.model_identity import NoIdentity, object_digest

    model = value.model if isinstance(value, TransformersModel) else value
    try:
        stateful = callable(getattr(model, "state_dict", None))
    except Exception:  # a state_dict attribute that raises when read
        stateful = False
    if not stateful:
        return None, "it has no state_dict(), so evalkit cannot tell what its vectors depend on"
    evaluated = isinstance(value, TransformersModel) or _is_sentence_transformer(value)  # encode runs in eval mode
    try:
        if isinstance(value, TransformersModel):
            loaded = {k: v for k, v in value.options().items() if k not in ("pooling", "layer")}
            return object_digest((value.model, value.tokenizer, loaded), skip=frozenset({"training"})), None
        return object_digest(value, skip=frozenset({"training"}) if evaluated else frozenset()), None
    except NoIdentity as exc:
        return None, one_line(f"it holds a value evalkit cannot fingerprint ({exc})")[:300]
    except Exception as exc:  # anything a third-party object raises while it is read: no identity, never a traceback
        return None, one_line(f"reading it raised {type(exc).__name__}: {exc}")[:300]


def config_identity(spec: EncoderSpec) -> str:
    """What a cell's configuration hash keys an ``obj:`` encoder by: its identity, or a fresh token.

    An object without an identity gets a token unique to this registration, so a
    stored result is never taken for its own (it is always recomputed).
    """
    entry = _LIVE.get(str(spec))
    if entry is None:
        return ""
    return entry.fingerprint["weights"] if entry.cacheable else f"unfingerprinted:{entry.nonce}"


def unregister(spec: EncoderSpec) -> None:
    """Undo one :func:`register`; the last one drops the entry and any forward-pass state it left behind."""
    with _LOCK:
        entry = _LIVE.get(str(spec))
        if entry is None:
            return
        entry.users -= 1
        if entry.users > 0:
            return
        del _LIVE[str(spec)]
        if not any(other.share == entry.share for other in _LIVE.values()):
            backbone = _SHARED.pop(entry.share, None)
            if backbone is not None:
                backbone._pending.clear()


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
        """The registration's share key: descriptions of one model with one identity and equal load options share a pass."""
        entry = _LIVE.get(str(spec))
        return entry.share if entry is not None else (BACKEND, "solo", str(spec))


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
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise EvalkitError(f"{self.spec}: encode() returned {type(vectors).__name__}, not a numeric matrix ({exc})") from None
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
    """A pooling of an in-memory transformer on a Backbone shared only under the registration's share key."""

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
        self.head: Hashable | None = None
        n_layers = int(getattr(getattr(desc.model, "config", None), "num_hidden_layers", 0) or 0)
        if n_layers and not -(n_layers + 1) <= self.layer <= n_layers:  # checked before any shared state is touched
            raise SpecError(f"layer={self.layer} is out of range for this model, which has layers 0..{n_layers}", field="layer")
        tokenizer = desc.tokenizer
        if getattr(tokenizer, "pad_token", None) is None:
            raise EvalkitError(f"{spec}: the tokenizer has no pad token", hint="set tokenizer.pad_token before evaluating")
        backbone = _SHARED.get(entry.share)
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
            limit = getattr(tokenizer, "model_max_length", 512) or 512
            backbone = Backbone(opts, desc.model, tokenizer, device, desc.max_length or min(int(limit), 512))
            backbone._identity = entry.fingerprint["weights"]
            backbone.key = entry.share
            _SHARED[entry.share] = backbone
        self.backbone = backbone
        backbone.users += 1
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
        backbone, self.head, head = self.backbone, None, self.head
        if head is not None:
            left = backbone.head_users.get(head, 1) - 1
            if left <= 0:
                backbone.heads.pop(head, None)
                backbone.head_users.pop(head, None)
            else:
                backbone.head_users[head] = left
        backbone.users -= 1
        if backbone.users <= 0:
            if _SHARED.get(self.entry.share) is backbone:
                del _SHARED[self.entry.share]
            backbone._pending.clear()


_SHARED: dict[Hashable, Any] = {}  # share key -> Backbone


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
    try:
        config = getattr(model, "config", None)
        path = getattr(config, "_name_or_path", "") or ""
        card = getattr(getattr(value, "model_card_data", None), "base_model", None)
        name = path if isinstance(path, str) and path else card if isinstance(card, str) and card else type(model).__name__
    except Exception:  # a config or card that raises when read: the class name will do
        name = type(model).__name__
    return str(name).rstrip("/").rsplit("/", 1)[-1] or type(model).__name__


def _safe_name(name: str) -> str:
    """A name that reads well in a spec: word characters, dots and dashes (others become '-')."""
    cleaned = re.sub(r"[^\w.\-]+", "-", str(name)).strip("-.")
    if not cleaned:
        raise EvalkitError(f"encoder name {name!r} has no usable characters", field="encoders")
    return cleaned[:80]
