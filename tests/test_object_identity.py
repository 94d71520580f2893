"""In-memory model objects (issue 19, items 1-3, 7, 8): an object's identity covers everything that can change its
vectors, or it is never cached and never shared; two distinct objects are never served one another's vectors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import evalkit
from evalkit.errors import EvalkitError
from tests.conftest import STSB_TEST

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_sts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("identity-sts")
    lines = STSB_TEST.read_text(encoding="utf-8").splitlines()
    (folder / "test.tsv").write_text("\n".join(lines[:101]) + "\n", encoding="utf-8")
    (folder / "small.toml").write_text(
        'name = "IdSTSB"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "test.tsv"\n[settings]\nmin_score = 0\nmax_score = 5\n',
        encoding="utf-8",
    )
    return folder / "small.toml"


@pytest.fixture(scope="module")
def bert(tiny_bert: Path) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(str(tiny_bert)), AutoTokenizer.from_pretrained(str(tiny_bert))


def word_vector(seed: int, word: str, dim: int = 16) -> np.ndarray:
    key = int.from_bytes(hashlib.sha256(word.lower().encode()).digest()[:8], "little")
    return np.random.default_rng([seed, key]).standard_normal(dim)


class BagOfWords:
    """A plain encode object (no state_dict): a seeded random vector per word, summed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([sum((word_vector(self.seed, w) for w in t.split()), np.zeros(16)) for t in texts]).astype(np.float32)


def _module_class() -> type:
    import torch

    class HashedEncoder(torch.nn.Module):
        """An nn.Module with weights, a non-persistent buffer and a plain attribute, each of which changes the vectors."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.table = torch.nn.Embedding(997, 16)
            self.register_buffer("scale", torch.ones(16), persistent=False)
            self.power = 1.0

        def encode(self, texts: list[str]) -> np.ndarray:
            ids = [[int(hashlib.sha256(w.lower().encode()).hexdigest(), 16) % 997 for w in t.split()] or [0] for t in texts]
            with torch.no_grad():
                rows = [self.table(torch.tensor(i)).mean(0) * self.scale for i in ids]
                out = torch.stack(rows)
                return (out.sign() * out.abs() ** self.power).numpy()

    return HashedEncoder


def score(results: evalkit.Results) -> float:
    assert not results.failed, [c.error for c in results.failed]
    (cell,) = results.cells
    assert cell.main_score is not None
    return float(cell.main_score)


def scores(results: evalkit.Results) -> dict[str, float]:
    assert not results.failed, [c.error for c in results.failed]
    return {c.encoder.split("@")[0]: float(c.main_score or 0) for c in results.cells}


def true_score(obj: Any, task: Path, name: str = "truth") -> float:
    return score(evalkit.evaluate({name: obj}, [task], progress=False, cache=False))


# --- 1. an object without an identity is never cached and never shared ------------------------------------------


def test_two_plain_objects_named_alike_are_never_served_each_others_vectors(small_sts: Path, tmp_path: Path) -> None:
    from evalkit.cache import EmbeddingCache

    first, second = BagOfWords(1), BagOfWords(2)
    truth = true_score(BagOfWords(2), small_sts)
    a = score(evalkit.evaluate({"mine": first}, [small_sts], progress=False, cache_dir=tmp_path))
    # a fresh EmbeddingCache reads only what is on disk: as another process would
    b = score(evalkit.evaluate({"mine": second}, [small_sts], progress=False, cache_dir=tmp_path))
    assert a != pytest.approx(truth)
    assert b == pytest.approx(truth, abs=1e-9)
    assert second.calls > 0, "the second object's encode must be called"
    assert EmbeddingCache(tmp_path).info().entries == 0, "an object without an identity must not be cached"


def test_a_plain_object_mutated_between_calls_is_scored_afresh(small_sts: Path, tmp_path: Path) -> None:
    obj = BagOfWords(3)
    evalkit.evaluate({"mut": obj}, [small_sts], progress=False, cache_dir=tmp_path)
    obj.seed = 4
    assert score(evalkit.evaluate({"mut": obj}, [small_sts], progress=False, cache_dir=tmp_path)) == pytest.approx(
        true_score(BagOfWords(4), small_sts), abs=1e-9
    )


# --- 2. from_transformers descriptions share a backbone only when their options match ----------------------------


def test_from_transformers_descriptions_of_one_model_keep_their_own_max_length(bert: tuple[Any, Any], small_sts: Path) -> None:
    from evalkit.encoders import from_transformers

    model, tok = bert
    short = true_score(from_transformers(model, tok, max_length=4), small_sts)
    long = true_score(from_transformers(model, tok), small_sts)
    assert short != pytest.approx(long)
    for order in (("short", "long"), ("long", "short")):
        descs = {"short": from_transformers(model, tok, max_length=4), "long": from_transformers(model, tok)}
        got = scores(evalkit.evaluate({k: descs[k] for k in order}, [small_sts], progress=False, cache=False))
        assert got["obj:short"] == pytest.approx(short, abs=1e-6) and got["obj:long"] == pytest.approx(long, abs=1e-6)


def test_a_failed_layer_cell_shows_its_own_error_and_leaves_no_shared_state(bert: tuple[Any, Any], small_sts: Path) -> None:
    from evalkit.encoders import from_transformers

    model, tok = bert
    short = true_score(from_transformers(model, tok, max_length=4), small_sts)
    bad = evalkit.evaluate({"bad": from_transformers(model, tok, layer=99)}, [small_sts], progress=False, cache=False)
    (cell,) = bad.cells
    assert cell.status == "failed" and "layer=99 is out of range" in (cell.error or ""), cell.error
    again = evalkit.evaluate({"short": from_transformers(model, tok, max_length=4)}, [small_sts], progress=False, cache=False)
    assert score(again) == pytest.approx(short, abs=1e-6)


# --- 3. every setting that changes vectors is part of the identity -----------------------------------------------


def fresh_minilm(**settings: Any) -> Any:
    from sentence_transformers import SentenceTransformer

    from evalkit.catalogue import resolve

    model = SentenceTransformer(str(resolve("all-MiniLM-L6-v2")), device="cpu")
    for key, value in settings.items():
        setattr(model, key, value)
    return model


@pytest.mark.parametrize(
    "change",
    [
        {"truncate_dim": 8},
        {"prompts": {"query": "query: ", "document": "passage: ", "x": "search: "}, "default_prompt_name": "x"},
    ],
    ids=["truncate_dim", "prompts"],
)
def test_sentence_transformer_settings_are_part_of_its_identity(small_sts: Path, tmp_path: Path, change: dict[str, Any]) -> None:
    out = tmp_path / "results"  # a resumed run must not reuse the result file either
    plain = score(evalkit.evaluate({"st": fresh_minilm()}, [small_sts], progress=False, cache_dir=tmp_path, output=out))
    got = score(evalkit.evaluate({"st": fresh_minilm(**change)}, [small_sts], progress=False, cache_dir=tmp_path, output=out))
    truth = true_score(fresh_minilm(**change), small_sts)
    assert truth != pytest.approx(plain)
    assert got == pytest.approx(truth, abs=1e-6)


@pytest.mark.parametrize("what", ["non-persistent buffer", "plain attribute"])
def test_a_module_with_its_own_encode_is_scored_afresh_and_never_cached(small_sts: Path, tmp_path: Path, what: str) -> None:
    """evalkit does not run an nn.Module's own encode(): it has no identity, so a changed module is always scored afresh."""
    import torch

    from evalkit.cache import EmbeddingCache

    module = _module_class()()
    out = tmp_path / "results"
    evalkit.evaluate({"mod": module}, [small_sts], progress=False, cache_dir=tmp_path, output=out)
    if what == "plain attribute":
        module.power = 3.0
    else:
        with torch.no_grad():
            module.scale.copy_(torch.linspace(0.1, 4.0, 16))
    truth = true_score(module, small_sts)
    got = score(evalkit.evaluate({"mod": module}, [small_sts], progress=False, cache_dir=tmp_path, output=out))
    assert got == pytest.approx(truth, abs=1e-6)
    assert EmbeddingCache(tmp_path).info().entries == 0, "an object whose encode evalkit does not run must not be cached"


def test_two_distinct_objects_with_one_name_are_refused_not_merged(small_sts: Path) -> None:
    cls = _module_class()
    a, b = cls(), cls()
    b.power = 3.0  # equal weights, different vectors
    a.name = b.name = "twin"
    with pytest.raises(EvalkitError, match="both named 'twin'"):
        evalkit.evaluate([a, b], [small_sts], progress=False, cache=False)
    # and the refusal left nothing registered: each alone runs, with its own score
    assert true_score(a, small_sts, "twin") != pytest.approx(true_score(b, small_sts, "twin"))


# --- 7. bad objects and options: a one-line EvalkitError or a true score, never a raw exception ------------------


class _StateDictObject(BagOfWords):
    def __init__(self, seed: int, kind: str) -> None:
        super().__init__(seed)
        self.kind = kind

    def state_dict(self) -> Any:
        if self.kind == "numpy":
            return {"w": np.ones(3)}
        if self.kind == "list":
            return [1, 2, 3]
        raise RuntimeError("state_dict is broken")


@pytest.mark.parametrize("kind", ["numpy", "list", "raises"])
def test_an_odd_state_dict_gives_a_score_or_a_one_line_error(small_sts: Path, kind: str) -> None:
    obj = _StateDictObject(5, kind)
    try:
        got = score(evalkit.evaluate({"odd": obj}, [small_sts], progress=False))
    except EvalkitError as exc:
        assert "\n" not in str(exc)
    else:
        assert got == pytest.approx(true_score(BagOfWords(5), small_sts), abs=1e-9)


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": "8"}, {"batch_size": True}, {"max_length": "4"}, {"max_length": 2.5}, {"pooling": 3}, {"name": 7}]
)
def test_from_transformers_refuses_bad_option_types_in_one_line(bert: tuple[Any, Any], kwargs: dict[str, Any]) -> None:
    from evalkit.encoders import from_transformers

    with pytest.raises(EvalkitError) as caught:
        from_transformers(*bert, **kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("which", ["model", "tokenizer"])
def test_from_transformers_refuses_what_is_not_a_model_or_tokenizer(bert: tuple[Any, Any], which: str) -> None:
    from evalkit.encoders import from_transformers

    model, tok = bert
    with pytest.raises(EvalkitError, match=which):
        from_transformers(BagOfWords(0), tok) if which == "model" else from_transformers(model, None)


# --- 8. a call that raised leaves nothing registered --------------------------------------------------------------


def test_a_call_that_raised_unregisters_its_objects(small_sts: Path) -> None:
    with pytest.raises(EvalkitError):
        evalkit.evaluate({"again": BagOfWords(6)}, ["NoSuchTaskAnywhere"], progress=False)
    assert score(evalkit.evaluate({"again": BagOfWords(7)}, [small_sts], progress=False)) == pytest.approx(
        true_score(BagOfWords(7), small_sts), abs=1e-9
    )


# --- the guarantee lives in the Backend base class: a backend cannot forget its model's identity ------------------


class _Vectors:
    def __init__(self, spec: Any, weights: str | None) -> None:
        self.spec, self.weights, self.closed = spec, weights, False

    def encode(self, texts: Any, role: Any = None) -> np.ndarray:
        return np.ones((len(texts), 3), dtype=np.float32)

    def fingerprint(self) -> dict[str, str]:
        return {"backend": "identity-test"} if self.weights is None else {"backend": "identity-test", "weights": self.weights}

    def count_tokens(self, texts: Any) -> int:
        return len(texts)

    def close(self) -> None:
        self.closed = True


def test_a_backend_whose_fingerprint_names_no_identity_fails_when_it_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from evalkit.cache import EmbeddingCache, uncacheable_reason
    from evalkit.encoders import BACKENDS, load_encoder
    from evalkit.encoders.base import Backend, no_identity
    from evalkit.errors import SpecError

    built: list[_Vectors] = []

    class Forgetful(Backend):
        weights: str | None = None

        def __new__(cls, spec: Any) -> Any:
            built.append(_Vectors(spec, cls.weights))
            return built[-1]

    monkeypatch.setitem(BACKENDS._entries, "identity-test", Forgetful)
    with pytest.raises(SpecError, match="names no 'weights' identity"):
        load_encoder("identity-test:x")
    assert built[-1].closed, "an encoder refused at load is closed"
    Forgetful.weights = no_identity("made up for the test")
    encoder = load_encoder("identity-test:x")
    assert uncacheable_reason(encoder, encoder.fingerprint()) == "it has no identity (made up for the test)"
    assert EmbeddingCache(tmp_path).wrap(encoder) is encoder


def test_object_digest_sees_what_a_module_reads_and_refuses_what_it_cannot() -> None:
    import functools
    import threading

    from evalkit.model_identity import NoIdentity, object_digest

    def scale(x: float, by: float) -> float:
        return x * by

    class Config(dict):  # type: ignore[type-arg]
        pass

    plain, tagged = Config(a=1), Config(a=1)
    tagged.extra = 2
    assert object_digest(functools.partial(scale, by=2.0)) != object_digest(functools.partial(scale, by=3.0))
    assert object_digest(plain) != object_digest(tagged)
    module = _module_class()()
    before = object_digest(module)
    module.power = 2.0
    assert object_digest(module) != before
    with pytest.raises(NoIdentity, match="lock"):
        object_digest({"guard": threading.Lock()})


# --- W5/W6: only an encode path evalkit runs and knows gets an identity (by construction, not by digest) -----------


def _lazy_class() -> type:
    import os

    import torch

    class Lazy(torch.nn.Module):
        """Its weight is drawn on the first encode, from a seed in the environment: nothing reachable before says which."""

        def __init__(self) -> None:
            super().__init__()
            self.weight: Any = None

        def encode(self, texts: list[str]) -> np.ndarray:
            if self.weight is None:
                generator = torch.Generator().manual_seed(int(os.environ["EVALKIT_TEST_SEED"]))
                self.weight = torch.randn(16, 8, generator=generator)
            bags = torch.tensor(np.stack([sum((word_vector(0, w) for w in t.split()), np.zeros(16)) for t in texts]))
            return (bags.float() @ self.weight).numpy()

    return Lazy


def test_state_drawn_lazily_inside_encode_is_never_served_from_the_cache(
    small_sts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.cache import EmbeddingCache

    lazy = _lazy_class()
    monkeypatch.setenv("EVALKIT_TEST_SEED", "1")
    first = score(evalkit.evaluate({"lazy": lazy()}, [small_sts], progress=False, cache_dir=tmp_path))
    monkeypatch.setenv("EVALKIT_TEST_SEED", "2")
    truth = true_score(lazy(), small_sts)
    second = score(evalkit.evaluate({"lazy": lazy()}, [small_sts], progress=False, cache_dir=tmp_path))
    assert first != pytest.approx(truth)
    assert second == pytest.approx(truth, abs=1e-6)
    assert EmbeddingCache(tmp_path).info().entries == 0


@pytest.mark.parametrize("where", ["class attribute", "module attribute", "environment variable"])
def test_state_outside_the_object_never_lets_a_result_be_reused(
    small_sts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """An nn.Module whose encode reads a class attribute, a module's attribute or the environment: cache on, resumed."""
    import os
    import types

    import torch

    settings = types.ModuleType("settings")
    settings.SEED = 1

    class Reads(torch.nn.Module):
        SEED = 1

        def encode(self, texts: list[str]) -> np.ndarray:
            seed = {
                "class attribute": type(self).SEED,
                "module attribute": settings.SEED,
                "environment variable": int(os.environ.get("EVALKIT_TEST_SEED", "1")),
            }[where]
            return np.stack([sum((word_vector(seed, w) for w in t.split()), np.zeros(16)) for t in texts])

    out = tmp_path / "results"
    monkeypatch.setenv("EVALKIT_TEST_SEED", "1")
    first = score(evalkit.evaluate({"reads": Reads()}, [small_sts], progress=False, cache_dir=tmp_path, output=out))
    Reads.SEED = settings.SEED = 2
    monkeypatch.setenv("EVALKIT_TEST_SEED", "2")
    truth = true_score(Reads(), small_sts)
    for cache in (True, False):  # neither the embedding cache nor the result file of the first run is reused
        got = score(evalkit.evaluate({"reads": Reads()}, [small_sts], progress=False, cache_dir=tmp_path, output=out, cache=cache))
        assert first != pytest.approx(truth)
        assert got == pytest.approx(truth, abs=1e-9), cache


def test_only_an_encode_path_evalkit_runs_and_knows_gets_an_identity(bert: tuple[Any, Any]) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertModel

    from evalkit.encoders import from_transformers
    from evalkit.encoders.objects import identity

    model, tok = bert
    st = fresh_minilm()
    assert identity(st)[0] is not None, identity(st)[1]
    assert identity(from_transformers(model, tok))[0] is not None

    class Tuned(SentenceTransformer):
        salt = 1

        def encode(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            return super().encode(*args, **kwargs) * type(self).salt

    class MyBert(BertModel):
        pass

    tuned = fresh_minilm()
    tuned.__class__ = Tuned
    mine = MyBert(model.config)
    hooked = fresh_minilm()
    hooked[0].auto_model.encoder.layer[0].register_forward_hook(lambda module, args, out: None)
    patched = fresh_minilm()
    patched.encode = lambda texts, **kw: np.zeros((len(texts), 4))  # type: ignore[method-assign]
    for obj in (tuned, hooked, patched, _module_class()(), from_transformers(mine, tok), BagOfWords(0)):
        digest, why = identity(obj)
        assert digest is None and why and "\n" not in why, (type(obj), why)
    del torch


# --- S1/S2: evaluate() leaves the caller's model and tokenizer as they were ----------------------------------------


def test_from_transformers_leaves_the_caller_s_tokenizer_as_it_was(bert: tuple[Any, Any], small_sts: Path) -> None:
    import copy

    from evalkit.encoders import from_transformers

    model, tok = bert
    tok = copy.deepcopy(tok)
    tok._tokenizer.enable_truncation(max_length=128)
    tok._tokenizer.enable_padding(length=128)
    before = (tok._tokenizer.truncation, tok._tokenizer.padding)
    first = evalkit.evaluate({"ft": from_transformers(model, tok, max_length=16)}, [small_sts], progress=False, cache=False)
    assert (tok._tokenizer.truncation, tok._tokenizer.padding) == before
    second = evalkit.evaluate({"ft": from_transformers(model, tok, max_length=16)}, [small_sts], progress=False, cache=False)
    assert first.cells[0].encoder == second.cells[0].encoder, "the identity must not change from one call to the next"


def test_a_sentence_transformer_in_train_mode_is_left_in_train_mode(small_sts: Path) -> None:
    st = fresh_minilm()
    st.train()
    st[0].auto_model.pooler.eval()  # a mixed mode comes back exactly, module by module
    modes = [m.training for m in st.modules()]
    truncation = st.tokenizer._tokenizer.truncation
    evalkit.evaluate({"st": st}, [small_sts], progress=False, cache=False)
    assert [m.training for m in st.modules()] == modes
    assert st.tokenizer._tokenizer.truncation == truncation


# --- W2/W4: vectors are handed on in the encoder's own dtype; odd objects give one-line errors ---------------------


def _object_encoder(obj: Any) -> Any:
    from evalkit.encoders.objects import ObjectBackend, register, unregister

    spec, _ = register(obj, "dtype-test")
    try:
        return ObjectBackend(spec)
    finally:
        unregister(spec)


class _Returns:
    def __init__(self, make: Any) -> None:
        self.make = make

    def encode(self, texts: list[str]) -> Any:
        return self.make(len(texts))


def test_vectors_are_handed_on_in_the_encoder_s_own_dtype() -> None:
    import torch

    cases = [
        (lambda n: np.full((n, 3), 1e200), np.float64),
        (lambda n: np.ones((n, 3), dtype=np.float16), np.float16),
        (lambda n: [[1, 2, 3]] * n, np.int64),
        (lambda n: torch.ones(n, 3, dtype=torch.float64), np.float64),
        (lambda n: torch.ones(n, 3, dtype=torch.bfloat16), np.float32),
    ]
    for make, dtype in cases:
        got = _object_encoder(_Returns(make)).encode(["a", "b"])
        assert isinstance(got, np.ndarray) and got.dtype == dtype and got.shape == (2, 3), (got.dtype, dtype)
    assert _object_encoder(_Returns(lambda n: np.full((n, 3), 1e200))).encode(["a"])[0, 0] == 1e200
    for bad in (lambda n: [["x", "y"]] * n, lambda n: [[1, 2], [3]], lambda n: np.ones((n, 3, 1)), lambda n: np.ones((n + 1, 3))):
        with pytest.raises(EvalkitError) as caught:
            _object_encoder(_Returns(bad)).encode(["a", "b"])
        assert "\n" not in str(caught.value)


def test_prompts_with_an_encode_that_takes_no_prompt_name_is_a_one_line_error() -> None:
    from evalkit.encoders.base import Role

    class Prompted(BagOfWords):
        prompts = {"query": "q: "}

    encoder = _object_encoder(Prompted(0))
    assert encoder.encode(["a b"]).shape == (1, 16)  # no role: no prompt
    with pytest.raises(EvalkitError, match="prompt_name") as caught:
        encoder.encode(["a b"], Role.QUERY)
    assert "\n" not in str(caught.value)


def test_from_transformers_refuses_a_sentence_transformer_as_the_model_in_one_line() -> None:
    from evalkit.encoders import from_transformers

    st = fresh_minilm()
    with pytest.raises(EvalkitError, match="SentenceTransformer") as caught:
        from_transformers(st, st.tokenizer)
    assert "\n" not in str(caught.value)
