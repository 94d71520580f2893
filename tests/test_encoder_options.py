"""Encoder options: one typed model per backend, validated before any model loads, read back typed.

The bad-option cases name a model that does not exist: if anything tried to load it first,
the error would be about the model, not the option. So each case also proves the order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from evalkit.adapters import ADAPTERS
from evalkit.cli import main
from evalkit.encoders import BACKENDS, Backend, check_spec, load_encoder, option_names, share_key
from evalkit.errors import SpecError
from evalkit.registry import Registry, RegistryError, provides, takes_arguments
from evalkit.schemas.options import BackendOptions, TransformerOptions
from evalkit.spec import EncoderSpec

MISSING = "/no/such/model-folder"  # loading this fails with a different error


def options_model(backend: str) -> type[BackendOptions]:
    factory = BACKENDS.get(backend)
    assert isinstance(factory, type) and issubclass(factory, Backend)
    return factory.options_model


BAD = [
    ("tfidf", "svd=abc", "svd"),
    ("tfidf", "ngram_max=0", "ngram_max"),
    ("tfidf", "min_df=-3", "min_df"),
    ("tfidf", "sublinear_tf=maybe", "sublinear_tf"),
    ("tfidf", "seed=-1", "seed"),
    ("tfidf", f"seed={2**40}", "seed"),
    ("tfidf", "prompt=x", "prompt"),
    ("static", "max_length=-1", "max_length"),
    ("static", "max_length=1e3", "max_length"),
    ("static", "normalize=maybe", "normalize"),
    ("static", "batch_size=8", "batch_size"),
    ("hf", "batch_size=0", "batch_size"),
    ("hf", "max_length=0", "max_length"),
    ("hf", "token_budget=-5", "token_budget"),
    ("hf", "layer=abc", "layer"),
    ("hf", "pooling=meen", "pooling"),
    ("hf", "poling=cls", "poling"),
    ("hf", "dtype=float64", "dtype"),
    ("hf", "device=gpu", "device"),
    ("hf", "revision=", "revision"),
    ("hf", "trust_remote_code=2", "trust_remote_code"),
    ("hf", "allow_pickle=t", "allow_pickle"),
    ("hf", "max_length=99999999999999999999999", "max_length"),
    ("hf-logits", "seed=-1", "seed"),
    ("hf-logits", f"seed={2**40}", "seed"),
    ("hf-logits", "reduce=average", "reduce"),
    ("hf-logits", "num_labels=0", "num_labels"),
    ("hf-logits", "pooling=mean", "pooling"),
    ("sbert", "normalize=maybe", "normalize"),
    ("sbert", "layer=3", "layer"),
]


@pytest.mark.parametrize(("backend", "query", "option"), BAD, ids=[f"{b}?{q}" for b, q, _ in BAD])
def test_a_bad_option_is_one_spec_error_naming_spec_and_option(backend: str, query: str, option: str) -> None:
    text = f"{backend}:{MISSING}?{query}"
    with pytest.raises(SpecError) as caught:
        check_spec(text)
    error = caught.value
    assert error.field == option
    assert repr(text) in str(error) and "\n" not in str(error)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (f"hf:{MISSING}?pooling=meen", "did you mean 'mean'?"),
        (f"hf:{MISSING}?poling=cls", "did you mean 'pooling'?"),
        (f"hf:{MISSING}?dtype=float61", "did you mean 'float16'?"),
        (f"hf-logits:{MISSING}?reduce=maen", "did you mean 'mean'?"),
        ("tfidf:x?ngram=2", "did you mean 'ngram_max'?"),
        (f"hf-logits:{MISSING}?reduce=zzz", "allowed: mean, none"),
    ],
)
def test_typos_get_did_you_mean(text: str, hint: str) -> None:
    with pytest.raises(SpecError) as caught:
        check_spec(text)
    assert caught.value.hint == hint


@pytest.mark.parametrize(("backend", "query", "option"), BAD[::3], ids=[f"{b}?{q}" for b, q, _ in BAD[::3]])
def test_cli_exit_2_one_line_before_any_model_loads(
    backend: str, query: str, option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["run", "-e", f"{backend}:{MISSING}?{query}", "-t", "STSBenchmark", "-o", str(out), "--no-progress", "--no-report"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    assert f"field '{option}'" in lines[0] and MISSING in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()  # nothing was run, nothing was written


@pytest.mark.parametrize("word", ["1", "true", "TRUE", "Yes", "on", " true "])
def test_flags_accept_true_words(word: str) -> None:
    assert options_model("tfidf").of(EncoderSpec("tfidf", "x", (("sublinear_tf", word),))).model_dump()["sublinear_tf"] is True


@pytest.mark.parametrize("word", ["0", "false", "No", "OFF"])
def test_flags_accept_false_words(word: str) -> None:
    assert options_model("static").of(EncoderSpec("static", "x", (("normalize", word),))).model_dump()["normalize"] is False


@given(st.text(max_size=8))
@settings(max_examples=150, deadline=None)
def test_a_flag_is_exactly_the_documented_words(word: str) -> None:
    spec = EncoderSpec("sbert", MISSING, (("normalize", word),))
    lowered = word.strip().lower()
    if lowered in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        assert check_spec(spec) == spec
        assert options_model("sbert").of(spec).model_dump()["normalize"] is (lowered in {"1", "true", "yes", "on"})
    else:
        with pytest.raises(SpecError, match="must be true or false"):
            check_spec(spec)


def test_typed_values_and_one_parse() -> None:
    spec = check_spec(f"hf:{MISSING}?batch_size=5&layer=-2&trust_remote_code=yes&pooling=cls&prompt=C%2B%2B code: ")
    opts = options_model("hf").of(spec)
    assert opts is options_model("hf").of(spec)  # memoised: check_spec and the backend share one parse
    dumped = opts.model_dump()
    assert dumped["batch_size"] == 5 and dumped["layer"] == -2 and dumped["trust_remote_code"] is True
    assert dumped["pooling"] == "cls" and dumped["max_length"] is None and dumped["dtype"] == "float32"
    assert isinstance(opts, TransformerOptions) and opts.prompt_for(None) == "C++ code: "


def test_prompts_by_role() -> None:
    spec = EncoderSpec("hf", MISSING, (("document_prompt", "passage: "), ("prompt", "any "), ("query_prompt", "")))
    opts = options_model("hf").of(spec)
    assert isinstance(opts, TransformerOptions)
    assert opts.prompt_for("query") == "" and opts.prompt_for("document") == "passage: " and opts.prompt_for(None) == "any "
    assert opts.prompts() == (("document_prompt", "passage: "), ("prompt", "any "), ("query_prompt", ""))


def test_shared_transformer_options_are_one_model() -> None:
    shared = set(TransformerOptions.model_fields)
    assert {
        "max_length",
        "batch_size",
        "token_budget",
        "dtype",
        "device",
        "revision",
        "trust_remote_code",
        "allow_pickle",
        "prompt",
    } <= shared
    for name in ("hf", "hf-logits", "sbert"):
        assert issubclass(options_model(name), TransformerOptions)
    for name in ("static", "tfidf"):
        assert not issubclass(options_model(name), TransformerOptions)
    assert option_names("tfidf") == {"svd", "sublinear_tf", "ngram_max", "min_df", "seed"}


def test_share_keys_compare_typed_values() -> None:
    def key(text: str) -> object:
        return share_key(check_spec(text))

    assert key("hf:m?pooling=cls") == key("hf:m?batch_size=32&layer=2&prompt=q: ") == key("hf:m")
    assert key("hf:m?batch_size=16") != key("hf:m") != key("hf:other")
    assert key("hf-logits:m?reduce=mean") == key("hf-logits:m")
    assert key("hf-logits:m?seed=1") != key("hf-logits:m")
    assert key("tfidf:a?svd=8") != key("tfidf:a")


# --- property: random option dicts per backend ------------------------------------------------

ODD = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\udc80", "a\ud800", "\x1b[31m", "line\nbreak", "-0", "+3", "007", "1_0", " 5 ", "1e3", "inf", "nan"]),
)
WORDS = st.sampled_from(["true", "false", "maybe", "mean", "cls", "meen", "none", "float16", "float64", "cpu", "auto", "main", ""])
NUMBERS = st.integers(min_value=-(2**70), max_value=2**70).map(str)


def option_dicts(backend: str) -> st.SearchStrategy[dict[str, str]]:
    names = sorted(options_model(backend).model_fields)
    keys = st.one_of(st.sampled_from(names), st.sampled_from(names), ODD.filter(bool))
    return st.dictionaries(keys, st.one_of(WORDS, NUMBERS, ODD), max_size=4)


def text_of(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("backend", ["hf", "hf-logits", "sbert", "static", "tfidf"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_options_are_a_valid_model_or_one_spec_error(backend: str, data: st.DataObject) -> None:
    """Never another exception; errors are one printable UTF-8 line; valid values round-trip through text."""
    options = data.draw(option_dicts(backend))
    spec = EncoderSpec(backend, MISSING, tuple(sorted(options.items())))
    model = options_model(backend)
    try:
        check_spec(spec)
    except SpecError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message
        message.encode("utf-8")
        assert exc.field in {key if key.isprintable() else repr(key)[1:-1] for key in options}
        return
    typed = model.of(spec)
    for name, value in typed.model_dump().items():
        if name in options and isinstance(value, str):
            assert value == options[name]  # text options reach the backend exactly as written
    again = {name: text_of(value) for name, value in typed.model_dump().items() if value is not None}
    assert model.of(EncoderSpec(backend, MISSING, tuple(sorted(again.items())))) == typed


# --- backends read the typed values -----------------------------------------------------------


def test_tfidf_uses_its_typed_options() -> None:
    encoder: Any = load_encoder("tfidf:x?ngram_max=2&sublinear_tf=no&min_df=1")
    try:
        encoder.fit(["red fox runs", "fox runs far", "runs far away"])
        assert encoder._vectorizer.ngram_range == (1, 2) and encoder._vectorizer.sublinear_tf is False
        assert "fox runs" in encoder._vectorizer.vocabulary_
    finally:
        encoder.close()


def test_static_uses_its_typed_options() -> None:
    encoder: Any = load_encoder("static:tokenlearn-static?max_length=3&normalize=no")
    try:
        assert encoder.max_length == 3 and encoder.model.normalize is False
        text = "one two three four five six seven eight"
        assert encoder.count_tokens([text]) == 3
        vector = encoder.encode([text])
        assert not np.isclose(np.linalg.norm(vector), 1.0)
    finally:
        encoder.close()


def test_hf_uses_typed_options_and_prompts_verbatim(tiny_bert: Path) -> None:
    """``max_length`` reaches the backbone; a prompt with '+' and a trailing space is prepended as written."""
    plain: Any = load_encoder(f"hf:{tiny_bert}?max_length=16&batch_size=2")
    prompted: Any = load_encoder(f"hf:{tiny_bert}?max_length=16&batch_size=2&prompt=C%2B%2B code: ")
    try:
        assert plain.backbone.max_length == 16 and plain.backbone.opts.batch_size == 2
        assert plain.backbone.opts.token_budget == 2 * 128
        texts = ["sorting a list", "a pointer to a pointer"]
        assert np.allclose(prompted.encode(texts), plain.encode(["C++ code: " + t for t in texts]), atol=1e-6)
    finally:
        prompted.close()
        plain.close()


# --- the registry vets what it holds -------------------------------------------------------------


def test_registry_refuses_entries_of_the_wrong_kind() -> None:
    reg: Registry[Any] = Registry("widget", check=takes_arguments(1))
    with pytest.raises(RegistryError, match="widget 'text' \\(a str\\) is not usable: it must be callable"):
        reg.register("text", "not callable")
    with pytest.raises(RegistryError, match="must be callable"):
        reg.register("number", 42)
    with pytest.raises(RegistryError, match="must be callable with 1"):
        reg.register("two", lambda a, b: None)
    reg.register("one", lambda spec: spec)
    reg.register_lazy("constant", "json:__name__")
    with pytest.raises(RegistryError, match="widget 'constant' \\(json:__name__\\) is not usable"):
        reg.get("constant")
    assert reg.get("one")(5) == 5


def test_adapter_entries_must_provide_the_protocol() -> None:
    class NoEvaluate:
        def validate(self, task: object) -> None: ...

        def score_units(self, units: object, index: object) -> float:
            return 0.0

    with pytest.raises(RegistryError, match=r"must provide evaluate\(\)"):
        ADAPTERS.register("broken-type", NoEvaluate)  # type: ignore[arg-type]
    assert "broken-type" not in ADAPTERS
    assert provides("evaluate")(ADAPTERS.get("sts")) is None


def test_backend_declaration_and_undeclared_third_party_factories(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain factory accepts any options (it checks its own); a Backend subclass with no model takes none."""

    def plain(spec: EncoderSpec) -> object:
        return spec

    class Bare(Backend):
        def __init__(self, spec: EncoderSpec) -> None:
            self.spec = spec

    entries: dict[str, Callable[..., Any] | str] = dict(BACKENDS._entries)
    monkeypatch.setattr(BACKENDS, "_entries", entries)
    BACKENDS.register("plain-x", plain)  # type: ignore[arg-type]  # returns no Encoder: never built here
    BACKENDS.register("bare-x", Bare)  # type: ignore[arg-type]
    assert check_spec("plain-x:m?anything=1").opts == {"anything": "1"}
    assert option_names("plain-x") is None and option_names("bare-x") == frozenset()
    assert check_spec("bare-x:m") == EncoderSpec("bare-x", "m")
    with pytest.raises(SpecError, match="unknown option") as caught:
        check_spec("bare-x:m?k=v")
    assert caught.value.hint == "this backend takes no options"
    assert share_key(EncoderSpec("plain-x", "m")) == ("solo", "plain-x:m")
    assert share_key(EncoderSpec("bare-x", "m")) == ("solo", "bare-x:m")


def test_options_models_are_lax_closed_and_frozen() -> None:
    for name in ("hf", "hf-logits", "sbert", "static", "tfidf"):
        model = options_model(name)
        assert issubclass(model, BaseModel)
        assert model.model_config.get("extra") == "forbid" and model.model_config.get("frozen") is True
        assert model.model_config.get("strict") is False
