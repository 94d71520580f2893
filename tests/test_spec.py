"""Encoder spec strings and model resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit import catalogue
from evalkit.encoders import load_encoder
from evalkit.errors import ModelUnavailableError, SpecError
from evalkit.spec import EncoderSpec


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
    [("all-MiniLM-L6-v2", "has no backend"), ("hf:", "names no model"), ("hf:m?a=1&a=2", "twice"), ("hf:m?=x", "malformed")],
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


def test_unknown_hub_model_offline_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as info:
        load_encoder("hf:evalkit-tests/no-such-model")
    text = info.value.render()
    assert "evalkit-tests/no-such-model" in text and "huggingface-cli download" in text


def test_missing_local_folder_is_named() -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_encoder("hf:./no/such/folder")
