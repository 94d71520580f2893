"""The generic registry: decorators, lazy entries, entry points, collisions, suggestions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from evalkit.encoders import BACKENDS, check_spec, load_encoder
from evalkit.errors import SpecError
from evalkit.registry import Registry, RegistryError


def test_decorator_lazy_and_case_insensitive_lookup() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("Alpha")
    def alpha() -> str:
        return "a"

    reg.register_lazy("json-dumps", "json:dumps")
    assert reg.get("ALPHA") is alpha
    import json

    assert reg.get("json-dumps") is json.dumps
    assert reg.names() == ["Alpha", "json-dumps"]


def test_collision_is_an_error_and_typos_get_suggestions() -> None:
    reg: Registry[object] = Registry("widget")
    reg.register("mean", object())
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("MEAN", object())
    with pytest.raises(RegistryError, match="did you mean 'mean'"):
        reg.get("maen")


def test_broken_lazy_entry_names_the_reference() -> None:
    reg: Registry[object] = Registry("widget")
    reg.register_lazy("ghost", "no_such_module_xyz:thing")
    with pytest.raises(RegistryError, match="no_such_module_xyz:thing"):
        reg.get("ghost")


PLUGIN = '''
import numpy as np


class OnesEncoder:
    """A third-party backend: every text maps to a vector of ones."""

    def __init__(self, spec):
        self.spec = spec

    def encode(self, texts, role=None):
        return np.ones((len(texts), 3), dtype=np.float32)

    def fingerprint(self):
        return {"backend": "ones"}

    def count_tokens(self, texts):
        return len(texts)

    def close(self):
        pass
'''


def test_third_party_backend_through_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real installed distribution (dist-info on sys.path) declaring an evalkit.encoders entry point."""
    (tmp_path / "evalkit_ones.py").write_text(PLUGIN)
    dist = tmp_path / "evalkit_ones-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evalkit-ones\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[evalkit.encoders]\nones = evalkit_ones:OnesEncoder\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(BACKENDS, "_entry_points_loaded", False)
    try:
        encoder = load_encoder("ones:anything")
        assert encoder.encode(["a", "b"]).shape == (2, 3)
        assert "ones" in BACKENDS.names()
    finally:
        BACKENDS._entries.pop("ones", None)
        sys.modules.pop("evalkit_ones", None)


def test_unknown_backend_and_option_typos_fail_before_loading() -> None:
    with pytest.raises(RegistryError, match="did you mean 'hf'"):
        check_spec("hff:all-MiniLM-L6-v2")
    with pytest.raises(SpecError, match="did you mean 'pooling'"):
        check_spec("hf:all-MiniLM-L6-v2?poling=cls")
    with pytest.raises(SpecError, match="did you mean 'mean'"):
        check_spec("hf:all-MiniLM-L6-v2?pooling=mena")
    with pytest.raises(SpecError, match="cannot be 'average'"):
        check_spec("hf-logits:all-MiniLM-L6-v2?reduce=average")
