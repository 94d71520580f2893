"""Encoder spec strings and model resolution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit import catalogue
from evalkit.cli import main
from evalkit.encoders import load_encoder
from evalkit.errors import ModelUnavailableError, SpecError
from evalkit.results.store import ResultStore
from evalkit.spec import _INVISIBLE, EncoderSpec

REPO = Path(__file__).resolve().parent.parent
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_canonical_form_sorts_options_and_round_trips() -> None:
    a = EncoderSpec.parse("HF:all-MiniLM-L6-v2?pooling=cls&layer=3")
    b = EncoderSpec.parse("hf:all-MiniLM-L6-v2?layer=3&pooling=cls")
    assert a == b
    assert str(a) == "hf:all-MiniLM-L6-v2?layer=3&pooling=cls"
    assert EncoderSpec.parse(str(a)) == a
    assert a.opts == {"layer": "3", "pooling": "cls"}
    assert EncoderSpec.parse("sbert:sentence-transformers/all-MiniLM-L6-v2").model == "sentence-transformers/all-MiniLM-L6-v2"
    prompt = EncoderSpec.parse("hf:m?query_prompt=query%3A%20")
    assert prompt.opts["query_prompt"] == "query: " and EncoderSpec.parse(str(prompt)) == prompt


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("all-MiniLM-L6-v2", "has no backend"),
        ("hf:", "names no model"),
        ("hf:m?a=1&a=2", "twice"),
        ("hf:m?a=1&a%3D=2&%61=3", "twice"),  # %61 is 'a': keys compare decoded
        ("hf:m?=x", "malformed"),
        ("hf:m?a", "malformed"),
        ("hf:m?a=1&", "malformed"),
        ("hf:m?a=1&&b=2", "malformed"),
        ("hf:m?prompt=50% off", "'%' must start an escape"),
        ("hf:m?prompt=%zz", "'%' must start an escape"),
        ("hf:m?prompt=%FF", "not UTF-8"),
        ("hf:m?prompt=%ED%A0%80", "not UTF-8"),  # an encoded lone surrogate
        ("hf:m?prompt=\udcff", "not valid UTF-8"),  # undecodable argv bytes arrive as lone surrogates
        ("hf\udcff:m", "not valid UTF-8"),
        ("h f:m", "not a backend name"),
        ("hf:m\x1b[31m", "control character"),
    ],
)
def test_malformed_specs(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        EncoderSpec.parse(text)


def test_slug_is_filename_safe_and_distinct() -> None:
    a = EncoderSpec.parse("hf:/tmp/x?pooling=cls").slug()
    b = EncoderSpec.parse("hf:/tmp/x?pooling=max").slug()
    assert a != b and "/" not in a and "?" not in a


def test_hub_id_of_a_packaged_model_resolves_offline() -> None:
    by_hub = catalogue.resolve("sentence-transformers/all-MiniLM-L6-v2")
    assert by_hub == catalogue.resolve("all-minilm-l6-v2")
    assert (Path(by_hub) / "model.safetensors").exists()


@pytest.mark.slow  # imports transformers
def test_unknown_hub_model_offline_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as info:
        load_encoder("hf:evalkit-tests/no-such-model")
    text = info.value.render()
    assert "evalkit-tests/no-such-model" in text and "hf download" in text


def test_missing_local_folder_is_named() -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_encoder("hf:./no/such/folder")


@pytest.mark.parametrize(
    ("text", "options", "canonical"),
    [
        ("hf:m?prompt=C++ code: ", {"prompt": "C++ code: "}, "hf:m?prompt=C++ code:%20"),  # '+' is a plus; the space stays
        ("hf:m?prompt=a%26b&x=1", {"prompt": "a&b", "x": "1"}, "hf:m?prompt=a%26b&x=1"),
        ("hf:m?prompt=100%25 sure", {"prompt": "100% sure"}, "hf:m?prompt=100%25 sure"),
        ("hf:m?prompt=a=b", {"prompt": "a=b"}, "hf:m?prompt=a%3Db"),
        ("hf:m?prompt=what? #1 / x:y", {"prompt": "what? #1 / x:y"}, "hf:m?prompt=what? #1 / x:y"),
        ("hf:m?prompt=%20lead", {"prompt": " lead"}, "hf:m?prompt=%20lead"),
        ("hf:m?prompt=line%0Anext", {"prompt": "line\nnext"}, "hf:m?prompt=line%0Anext"),
        ("hf:m?prompt=%C3%A9t%C3%A9 😀", {"prompt": "été 😀"}, "hf:m?prompt=été 😀"),
        ("hf:m?prompt=", {"prompt": ""}, "hf:m?prompt="),
        ("hf:m?", {}, "hf:m"),
        ("  HF : org/model@v1:x&y=z ", {}, "hf:org/model@v1:x&y=z"),  # the model is kept as written
    ],
)
def test_escaping_rule(text: str, options: dict[str, str], canonical: str) -> None:
    """Values are literal except %XX; the canonical form escapes only %, &, =, controls and edge spaces."""
    spec = EncoderSpec.parse(text)
    assert spec.opts == options
    assert str(spec) == canonical
    assert EncoderSpec.parse(canonical) == spec


def test_plus_and_space_prompts_are_different_encoders(tmp_path: Path) -> None:
    """The old parser read '+' as a space, so these two shared one result file."""
    plus, space = EncoderSpec.parse("hf:m?prompt=C++ code: "), EncoderSpec.parse("hf:m?prompt=C   code: ")
    assert plus.opts["prompt"] == "C++ code: " and space.opts["prompt"] == "C   code: "
    store = ResultStore(tmp_path)
    assert str(plus) != str(space) and plus.slug() != space.slug()
    assert store.path_for(str(plus), "T", "test") != store.path_for(str(space), "T", "test")


# ---- properties ------------------------------------------------------------------------------------------
backends = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,12}", fullmatch=True)
models = (
    st.text(st.characters(blacklist_characters=["?", *_INVISIBLE], blacklist_categories=["Cs"]), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool)
)
# Keys and values: any Unicode, with the characters that matter to the grammar made frequent.
texts = st.text(st.sampled_from(list("%&=?#+ :/.aZ9\t\n\x00\x1b\u202e\u00a0é😀")) | st.characters(blacklist_categories=["Cs"]), max_size=20)
option_maps = st.dictionaries(texts.filter(bool), texts, max_size=4)


@PROPERTY
@given(backend=backends, model=models, options=option_maps)
def test_every_spec_round_trips_through_its_canonical_form(backend: str, model: str, options: dict[str, str]) -> None:
    spec = EncoderSpec(backend.lower(), model, tuple(sorted(options.items())))
    text = str(spec)
    assert EncoderSpec.parse(text) == spec  # the backend gets exactly these values
    assert str(EncoderSpec.parse(text)) == text
    assert "\n" not in text and "\x1b" not in text  # one printable line


@PROPERTY
@given(st.text(st.sampled_from(list("hf:m?=&%2FA0 +#\x00é")) | st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_any_text_is_a_spec_that_round_trips_or_a_spec_error(text: str) -> None:
    try:
        spec = EncoderSpec.parse(text)
    except SpecError as exc:
        assert "\n" not in exc.render()
        return
    assert EncoderSpec.parse(str(spec)) == spec
    assert str(EncoderSpec.parse(str(spec))) == str(spec)


@PROPERTY
@given(key=texts.filter(bool), values=st.lists(texts, min_size=2, max_size=2, unique=True))
def test_distinct_option_values_never_share_an_identity(key: str, values: list[str]) -> None:
    """Canonical string (the cache namespace), folder slug and result path all differ."""
    a, b = (EncoderSpec("hf", "m", ((key, value),)) for value in values)
    assert str(a) != str(b)
    assert a.slug() != b.slug()
    store = ResultStore("/results")
    assert store.path_for(str(a), "T", "test") != store.path_for(str(b), "T", "test")


def test_invalid_utf8_in_argv_is_exit_2_with_one_line(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape): one line, not a traceback."""
    out = tmp_path / "out"
    spec = b"tfidf:lexical?svd=\xff\xfe"
    args: list[str | bytes] = [sys.executable, "-m", "evalkit", "run", "-e", spec, "-t", "STSBenchmark", "-o", str(out)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("evalkit: error:") and "not valid UTF-8" in line and "\\udcff" in line
    assert not out.exists()


def test_lone_surrogate_spec_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-e", "tfidf:lex\udce9ical", "-t", "STSBenchmark", "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "not valid UTF-8" in err
