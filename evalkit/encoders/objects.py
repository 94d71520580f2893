"""In-memory models as encoders: a ``SentenceTransformer``, a ``(model, tokenizer)`` pair, any object with ``encode``.

:func:`evalkit.evaluate` turns each object into an *object spec*, ``obj:NAME@HASH``
(``?layer=…&pooling=…`` for a raw transformer), registered here for the length of
the call. The ``obj`` backend then builds encoders from it like any other backend,
so objects get the same executor, metering, cache, result files and gate as spec
strings, and never share a result file with them.

An identity is given **only where evalkit knows the whole encode path**, because only
then can a digest of the object cover everything that can change its vectors (an
arbitrary ``encode`` can read anything: a lazily drawn weight, a class or module
attribute, an environment variable). Two kinds of object qualify:

- a ``SentenceTransformer`` of the library's own class (no subclass from outside the
  library), and
- a :func:`from_transformers` description (evalkit runs the forward pass and pooling),

and only when every module in them is of a class from the numeric libraries (torch,
transformers, sentence-transformers: no remote code, no module of the caller's own), no
method of those classes was replaced, no instance holds a function of the caller's, and
no forward hook is registered (on a module, or globally). ``HASH`` is then
:func:`evalkit.model_identity.object_digest` of the object: every tensor (parameters,
persistent and non-persistent buffers), every attribute (``truncate_dim``, ``prompts``,
``default_prompt_name``, ``max_seq_length``, pooling settings), the configuration, the
tokenizer and, for :func:`from_transformers`, the wrapper's options (pooling, layer,
max_length, batch size). A model changed in a training loop gets a new hash, so neither
the cache nor a resumed run can serve it stale vectors.

**Any other object** — a plain object with ``encode``, an ``nn.Module`` with its own
``encode``, a subclass of ``SentenceTransformer``, a model with hooks or remote code —
has **no identity**: it is never cached (its fingerprint's ``weights`` is
:func:`evalkit.encoders.base.no_identity`, which the cache refuses), never shares a
forward pass, and its result files are never reused (a resumed run scores it again);
:func:`evalkit.evaluate` says so in one line. Two distinct objects under one name in one
call are refused. Registration lasts exactly one call, whatever way it ends.

The caller's objects are left as they were: a model's train/eval mode (per module) and a
fast tokenizer's truncation and padding are restored after every call evalkit makes.
Vectors are handed on in the encoder's own dtype (the adapters check and cast them).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
import threading
import uuid
from collections.abc import Hashable, Iterator, Sequence
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

    if _is_sentence_transformer(model):
        raise SpecError(
            "model is a SentenceTransformer, not a transformers model",
            field="model",
            hint="pass the SentenceTransformer to evaluate() itself, or from_transformers(st[0].auto_model, st.tokenizer)",
        )
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

    Only an object whose encode path evalkit runs and knows has one (see the module
    docstring): a library ``SentenceTransformer`` or a :func:`from_transformers`
    description, made of library modules only. For a description this is the identity
    of what its heads share: model, tokenizer and the load options (max_length, batch
    size); pooling and layer come on top.
    """
    from evalkit.model_identity import NoIdentity, object_digest

    try:
        why = unknown_code(value)
    except Exception as exc:  # anything a third-party object raises while it is inspected: no identity, never a traceback
        why = one_line(f"inspecting it raised {type(exc).__name__}: {exc}")[:300]
    if why is not None:
        return None, why
    try:
        if isinstance(value, TransformersModel):
            loaded = {k: v for k, v in value.options().items() if k not in ("pooling", "layer")}
            return object_digest((value.model, value.tokenizer, loaded), skip=_MODE), None
        return object_digest(value, skip=_MODE), None
    except NoIdentity as exc:
        return None, one_line(f"it holds a value evalkit cannot fingerprint ({exc})")[:300]
    except Exception as exc:  # anything a third-party object raises while it is read: no identity, never a traceback
        return None, one_line(f"reading it raised {type(exc).__name__}: {exc}")[:300]


_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")
# Left out of the digest: the caller's train/eval mode (encode runs in eval mode) and the forward hooks, which
# unknown_code() has checked are library code (transformers installs its output-capturing hooks on the first forward).
_MODE = frozenset({"training", "_forward_hooks_always_called", *_HOOKS})
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks")


def unknown_code(value: Any) -> str | None:
    """Why evalkit does not know every line of code that computes ``value``'s vectors; None when it does.

    Known: a ``SentenceTransformer`` of the library's own class, or a :func:`from_transformers`
    description, whose modules, classes, methods and tokenizer all come from the numeric
    libraries, with no forward hook of the caller's and no function of the caller's held by any module.
    """
    from evalkit.model_identity import is_library

    if isinstance(value, TransformersModel):
        model, tokenizer, what = value.model, value.tokenizer, f"its model (a {type(value.model).__name__})"
    elif _is_sentence_transformer(value):
        model, tokenizer, what = value, None, f"this {type(value).__name__}"
    else:
        return (
            f"evalkit does not run its encode() (a {type(value).__name__}, not a library SentenceTransformer "
            "or a from_transformers() description), so it cannot tell what its vectors depend on"
        )
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        return f"{what} is not a torch module"
    registry = sys.modules.get("torch.nn.modules.module")
    if not all(is_library(hook) for name in _GLOBAL_HOOKS for hook in (getattr(registry, name, None) or {}).values()):
        return "a global forward hook is registered in torch: code evalkit does not know runs in every forward pass"
    checked: set[int] = set()
    parts = [(f"{what}", model)] + [(f"{what}'s module {name}", m) for name, m in model.named_modules() if name]
    if tokenizer is not None:
        parts.append(("its tokenizer", tokenizer))
    for where, part in parts:
        reason = _foreign_code(part, checked)
        if reason is not None:
            return one_line(f"{where} {reason}, so evalkit cannot tell what its vectors depend on")[:300]
        if not all(is_library(hook) for name in _HOOKS for hook in (getattr(part, name, None) or {}).values()):
            return one_line(f"{where} has a forward hook of the caller's, so evalkit cannot tell what its vectors depend on")[:300]
    return None


def _foreign_code(part: Any, checked: set[int]) -> str | None:
    """Why ``part`` runs code from outside the libraries (its class, a replaced method, a function it holds); else None."""
    import types

    from evalkit.model_identity import is_library

    klass = type(part)
    if id(klass) not in checked:
        for base in klass.__mro__:
            if not is_library(base):
                return f"is of a class from outside the libraries ({base.__module__}.{base.__qualname__})"
            for name, member in vars(base).items():
                function = getattr(member, "__func__", member)
                if isinstance(function, types.FunctionType) and not is_library(function):
                    return f"has a method replaced by code from outside the libraries ({base.__qualname__}.{name})"
        checked.add(id(klass))
    state = getattr(part, "__dict__", None)
    for name, member in state.items() if isinstance(state, dict) else ():
        if callable(member) and not isinstance(member, type) and not is_library(member):
            return f"holds a function from outside the libraries ({name} = a {type(member).__name__})"
    return None


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
            if not self.is_sbert and not _accepts(self.obj.encode, "prompt_name"):
                raise EvalkitError(
                    f"{self.spec}: the object declares prompts[{role.value!r}] but its encode() takes no prompt_name",
                    hint="accept prompt_name in encode(), or remove the prompts attribute",
                )
            kwargs["prompt_name"] = role.value
        if self.is_sbert:
            kwargs.update(batch_size=32, convert_to_numpy=True, show_progress_bar=False, normalize_embeddings=False)
        with kept_as_is(self.obj, getattr(self.obj, "tokenizer", None) if self.is_sbert else None):
            vectors = self.obj.encode(list(texts), **kwargs)
        return _matrix(self.spec, vectors, len(texts))

    def fingerprint(self) -> dict[str, str]:
        return dict(self.entry.fingerprint)

    def count_tokens(self, texts: Sequence[str]) -> int:
        tokenizer = getattr(self.obj, "tokenizer", None)
        if tokenizer is not None and callable(tokenizer):
            limit = getattr(self.obj, "max_seq_length", None)
            with kept_as_is(None, tokenizer):
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
        with kept_as_is(self.model, self.backbone.tokenizer):  # the caller's mode and tokenizer settings come back after
            self.model.eval()  # dropout off while encoding
            return self.backbone.encode(list(texts), self.head)

    def fingerprint(self) -> dict[str, str]:
        return {
            **self.entry.fingerprint,
            "pooling": self.pooling.name,
            "layer": str(self.layer),
            "max_length": str(self.backbone.max_length),
        }

    def count_tokens(self, texts: Sequence[str]) -> int:
        with kept_as_is(None, self.backbone.tokenizer):
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


def _matrix(spec: EncoderSpec, vectors: Any, n: int) -> np.ndarray:
    """``vectors`` as a 2-D numeric array of the encoder's own dtype (no cast: the adapters check finiteness, then cast)."""
    try:
        if hasattr(vectors, "detach") and hasattr(vectors, "cpu"):  # a torch tensor
            vectors = vectors.detach().cpu()
            if str(getattr(vectors, "dtype", "")) == "torch.bfloat16":  # NumPy has no bfloat16; float32 holds it exactly
                vectors = vectors.float()
            vectors = vectors.numpy()
        array = np.asarray(vectors)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise EvalkitError(one_line(f"{spec}: encode() returned {type(vectors).__name__}, not a numeric matrix ({exc})")[:400]) from None
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)  # exact: 0/1
    if array.dtype.kind not in "iuf":
        raise EvalkitError(f"{spec}: encode() returned {array.dtype} values, not a numeric matrix")
    if array.ndim != 2 or array.shape[0] != n:
        raise EvalkitError(f"{spec}: encode() returned shape {array.shape} for {n} texts; expected (n, dim)")
    return array


def _accepts(function: Any, name: str) -> bool:
    """Whether ``function`` takes a keyword ``name`` (or ``**kwargs``); True when its signature cannot be read."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


@contextlib.contextmanager
def kept_as_is(model: Any, tokenizer: Any) -> Iterator[None]:
    """Leave the caller's objects as they were: each module's train/eval mode, a fast tokenizer's truncation and padding."""
    modes: list[tuple[Any, bool]] = []
    torch = sys.modules.get("torch")
    if model is not None and torch is not None and isinstance(model, torch.nn.Module):
        modes = [(m, m.training) for m in model.modules()]
    backend: Any = getattr(tokenizer, "_tokenizer", None) if tokenizer is not None else None
    saved = _tokenizer_state(backend)
    try:
        yield
    finally:
        for module, training in modes:
            if module.training != training:
                module.training = training
        if saved is not None and _tokenizer_state(backend) != saved:
            truncation, padding = saved
            if truncation is None:
                backend.no_truncation()
            else:
                backend.enable_truncation(**truncation)
            if padding is None:
                backend.no_padding()
            else:
                backend.enable_padding(**padding)


def _tokenizer_state(backend: Any) -> tuple[Any, Any] | None:
    """A ``tokenizers.Tokenizer``'s (truncation, padding) settings; None for anything else."""
    tokenizers = sys.modules.get("tokenizers")
    if backend is None or tokenizers is None or not isinstance(backend, tokenizers.Tokenizer):
        return None
    return backend.truncation, backend.padding


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
