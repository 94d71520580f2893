"""Loading and running a Hugging Face transformer, shared by the ``hf`` backends.

The backbone yields every layer's hidden states per batch; poolings are applied
afterwards, so one forward pass can serve any number of (pooling, layer) pairs.
Texts are sorted by length and batched so padding stays small.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalkit import catalogue, collector
from evalkit.encoders.streams import budget_share, run_batches
from evalkit.errors import ModelUnavailableError, SpecError
from evalkit.schemas.options import TransformerOptions

TOKENS_PER_TEXT = 128  # default token budget per text slot: batch_size short texts, fewer long ones
MAX_PAD_RATIO = 2  # a batch holds texts of at least half its longest text's length


@dataclass
class TokenStats:
    """Running counts for throughput: real tokens and padded positions seen."""

    real_tokens: int = 0
    padded_tokens: int = 0
    texts: int = 0
    batches: int = 0

    def add(self, real: int, padded: int, texts: int) -> None:
        self.real_tokens += real
        self.padded_tokens += padded
        self.texts += texts
        self.batches += 1


@dataclass
class LoadOptions:
    """What loading a transformer depends on: the validated shared options plus the resolved model source."""

    source: str
    max_length: int | None
    batch_size: int
    dtype: str
    device: str
    revision: str | None
    trust_remote_code: bool
    allow_pickle: bool
    token_budget: int = 0

    @classmethod
    def from_options(cls, model: str, options: TransformerOptions) -> LoadOptions:
        """Typed values of an already validated spec; resolving ``model`` may unpack a packaged model."""
        return cls(
            source=str(catalogue.resolve(model)),
            max_length=options.max_length,
            batch_size=options.batch_size,
            dtype=options.dtype,
            device=options.device,
            revision=options.revision,
            trust_remote_code=options.trust_remote_code,
            allow_pickle=options.allow_pickle,
            token_budget=options.token_budget or options.batch_size * TOKENS_PER_TEXT,
        )


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise SpecError("device=cuda was asked for but torch sees no CUDA device")
    return requested


def check_weights_format(source: str, allow_pickle: bool) -> None:
    """Refuse a local folder whose only weights are pickles, unless allowed."""
    folder = Path(source)
    if not folder.is_dir():
        return
    safe = list(folder.glob("*.safetensors"))
    pickled = [p for p in folder.glob("*") if p.suffix in {".bin", ".pt", ".pth", ".ckpt"}]
    if not safe and pickled and not allow_pickle:
        raise ModelUnavailableError(
            f"model folder '{source}' holds only pickle weights ({pickled[0].name}); pickle can run code on load",
            hint="convert it to safetensors, or add allow_pickle=true to the spec if you trust it",
        )


def weights_identity(source: str, revision: str | None) -> str:
    """sha256 over every file a loader can read in a local folder (see :mod:`evalkit.model_identity`); else hub id@revision."""
    from evalkit.model_identity import weights_identity as identity

    return identity(source, revision)


def _hub_kernels_default_on() -> bool:
    """Whether this transformers swaps layers for Hub kernels unless told not to (5.x: ``use_kernels`` defaults on).

    evalkit turns them off: a kernel fetched at load time would change the numbers with the network's
    state, and kernelising a model built on the meta device (the runtimes' reuse path) raises.
    Older releases have no ``use_kernels`` argument and load the plain layers anyway.
    """
    import transformers

    # probing a third-party class: ``use_kernels`` became a property of PreTrainedModel with the default-on switch
    return isinstance(getattr(transformers.PreTrainedModel, "use_kernels", None), property)


def load_pretrained(loader: Callable[..., Any], opts: LoadOptions, *, weights: str | None = "direct", **kwargs: Any) -> Any:
    """Call a ``from_pretrained`` with evalkit's safety defaults and a clear offline error.

    Unless pickle is allowed, safetensors are required: ``weights="direct"`` passes
    ``use_safetensors`` to the loader, ``weights="model_kwargs"`` nests it the way
    sentence-transformers wants, ``weights=None`` (tokenizers) loads no weights.
    """
    if weights is not None:
        check_weights_format(opts.source, opts.allow_pickle)
        pinned: dict[str, Any] = {} if opts.allow_pickle else {"use_safetensors": True}
        if _hub_kernels_default_on():
            pinned["use_kernels"] = False
        if weights == "direct":
            kwargs.update(pinned)
        else:
            kwargs[weights] = {**kwargs.get(weights, {}), **pinned}
    try:
        return loader(opts.source, revision=opts.revision, trust_remote_code=opts.trust_remote_code, **kwargs)
    except OSError as exc:
        if Path(opts.source).is_dir():
            raise ModelUnavailableError(f"cannot load model from folder '{opts.source}': {exc}") from exc
        raise catalogue.hub_failure(opts.source, exc) from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelUnavailableError(
                f"model '{opts.source}' needs custom code", hint="add trust_remote_code=true to the spec if you trust it"
            ) from exc
        raise


def plan_batches(lengths: np.ndarray, batch_size: int, budget: int) -> Iterator[np.ndarray]:
    """Indices of each batch, longest texts first: at most ``batch_size`` texts and ``budget`` padded positions.

    A batch grows only while the next text is at least 1/``MAX_PAD_RATIO`` of its
    longest, so a short sentence is never padded to a long abstract's length.
    Shared by every transformer backend, so they batch alike.
    """
    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        cap = min(len(order) - start, batch_size, max(1, budget // longest))
        size = 1
        while size < cap and lengths[order[start + size]] * MAX_PAD_RATIO >= longest:
            size += 1
        yield order[start : start + size]
        start += size


Head = Callable[[Any, Any], Any]  # (model output, attention mask) -> (batch, dim) tensor


@dataclass
class Backbone:
    """A loaded tokenizer + model, run over length-sorted batches, shared by encoders.

    Encoders register *heads* (a pooling at a layer, the logits, ...). A forward pass
    computes every registered head at once and keeps the results no sibling has read
    yet, so N poolings of one model cost one pass. Backbones are pooled by their load
    options: two specs that differ only in pooling get the same object.
    """

    opts: LoadOptions
    model: Any
    tokenizer: Any
    device: str
    max_length: int
    key: tuple[Any, ...] = ()
    stats: TokenStats = field(default_factory=TokenStats)
    heads: dict[Hashable, Head] = field(default_factory=dict)
    users: int = 0
    head_users: dict[Hashable, int] = field(default_factory=dict)  # two specs can name the same head ("hf:m", "hf:m?pooling=mean")
    _pending: dict[tuple[str, Hashable], np.ndarray] = field(default_factory=dict)
    _identity: str | None = None
    _lengths: tuple[str, list[int]] | None = None  # (digest, token lengths) of the last texts batched

    @classmethod
    def shared(cls, opts: LoadOptions, model_class: str = "AutoModel", seed: int | None = None, **kwargs: Any) -> Backbone:
        """The live backbone for these options, loading it on first use."""
        key = (model_class, seed, tuple(sorted(opts.__dict__.items())), tuple(sorted(kwargs.items())))
        backbone = _LIVE.get(key)
        if backbone is None or backbone.model is None:
            if seed is not None:
                import torch

                torch.manual_seed(seed)  # heads missing from the checkpoint are initialised in from_pretrained
            backbone = cls.load(opts, model_class, **kwargs)
            backbone.key = key
            _LIVE[key] = backbone
        backbone.users += 1
        return backbone

    @classmethod
    def load(cls, opts: LoadOptions, model_class: str = "AutoModel", **kwargs: Any) -> Backbone:
        import torch
        import transformers

        from evalkit.context import quiet_libraries

        quiet_libraries()
        tokenizer = load_pretrained(transformers.AutoTokenizer.from_pretrained, opts, weights=None)
        device = pick_device(opts.device)
        model = load_pretrained(getattr(transformers, model_class).from_pretrained, opts, **kwargs)
        model.eval()
        model.to(device)
        if opts.dtype != "float32" and device == "cpu":
            model.to(getattr(torch, opts.dtype))
        limit = getattr(tokenizer, "model_max_length", 512) or 512
        max_length = opts.max_length or min(int(limit), 512)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        return cls(opts, model, tokenizer, device, max_length)

    def identity(self) -> str:
        if self._identity is None:
            self._identity = weights_identity(self.opts.source, self.opts.revision)
        return self._identity

    def fingerprint(self) -> dict[str, str]:
        return {
            "weights": self.identity(),
            "tokenizer": type(self.tokenizer).__name__ + f":{len(self.tokenizer)}",
            "max_length": str(self.max_length),
            "dtype": self.opts.dtype,
        }

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text; the texts of the last pass are not tokenised again (siblings count them too)."""
        if self._lengths is not None and len(texts) == len(self._lengths[1]) and self._lengths[0] == _digest(texts):
            return list(self._lengths[1])
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, add_special_tokens=True)
        return [len(ids) for ids in encoded["input_ids"]]

    def batches(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        """Yield (original indices, padded batch), longest texts first, each within the token budget.

        Texts are tokenised once; sorting by token length keeps padding small, the
        budget (padded positions in flight, shared by the CPU streams) bounds memory when texts are long, and a
        batch never pads a text to more than twice its length (a short sentence is not
        padded to a 512-token abstract just because the budget had room).
        """
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(texts))
        self._lengths = (_digest(texts), lengths.tolist())
        budget = budget_share(self.opts.token_budget or self.opts.batch_size * TOKENS_PER_TEXT, self.device)
        for idx in plan_batches(lengths, self.opts.batch_size, budget):
            features = {name: [values[i] for i in idx] for name, values in encoded.items()}
            yield idx, self.tokenizer.pad(features, padding=True, return_tensors="pt")

    def register(self, key: Hashable, head: Head) -> None:
        self.heads[key] = head
        self.head_users[key] = self.head_users.get(key, 0) + 1

    def encode(self, texts: Sequence[str], key: Hashable) -> np.ndarray:
        """The output of head ``key`` for ``texts``: from a sibling's pass if one ran, else a new pass."""
        digest = _digest(texts)
        if (digest, key) not in self._pending:
            siblings = len(self.heads) > 1
            for head_key, matrix in self.forward(texts, list(self.heads)).items():
                if siblings or head_key == key:
                    self._pending[(digest, head_key)] = matrix
        return self._pending.pop((digest, key))

    def forward(self, texts: Sequence[str], keys: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
        """One pass over ``texts`` under inference mode (autocast on GPU), every head in ``keys``; CPU batches run as parallel streams."""
        import torch

        def run(item: tuple[np.ndarray, dict[str, Any]]) -> tuple[np.ndarray, int, int, dict[Hashable, np.ndarray]]:
            idx, batch = item
            batch = {k: v.to(self.device) for k, v in batch.items()}
            mask = batch["attention_mask"]
            with torch.inference_mode(), self._autocast():
                out = self.model(**batch, output_hidden_states=True)
                pooled = {key: self.heads[key](out, mask).float().cpu().numpy() for key in keys}
            return idx, int(mask.sum()), int(mask.numel()), pooled

        from evalkit.context import progress_bar

        outputs: dict[Hashable, np.ndarray] = {}
        bar = progress_bar(len(texts))
        with contextlib.closing(run_batches(run, self.batches(texts), self.device)) as results:  # threads restored even on error
            for idx, real, padded, pooled in results:
                bar.update(len(idx))
                self.stats.add(real, padded, len(idx))
                for key, matrix in pooled.items():
                    if key not in outputs:
                        outputs[key] = np.zeros((len(texts), matrix.shape[1]), dtype=np.float32)
                    outputs[key][idx] = matrix
        bar.close()
        return outputs

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.opts.dtype == "float32" or self.device == "cpu":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=getattr(torch, self.opts.dtype))

    def release(self, key: Hashable) -> None:
        """An encoder is done: drop its head unless another encoder still reads it; free the model when nobody uses it."""
        self.head_users[key] = self.head_users.get(key, 1) - 1
        if self.head_users[key] <= 0:
            self.head_users.pop(key)
            self.heads.pop(key, None)
            self._pending = {k: v for k, v in self._pending.items() if k[1] != key}
        self.users -= 1
        if self.users > 0:
            return
        _LIVE.pop(self.key, None)
        self.model = None
        self._pending.clear()
        if self.device == "cuda":  # the caching allocator can only hand back tensors the collector has freed
            import torch

            collector.release()
            torch.cuda.empty_cache()
        else:
            collector.closed()


_LIVE: dict[tuple[Any, ...], Backbone] = {}


def _digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha1()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()
