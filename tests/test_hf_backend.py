"""The ``hf`` backend on real (tiny, random) BERT and RoBERTa folders: every pooling, any layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evalkit.encoders import load_encoder
from evalkit.encoders.pooling import POOLINGS
from evalkit.errors import SpecError

TEXTS = ["A man is playing a guitar.", "Short.", "Two dogs run across a wide green field in the afternoon sun."]


@pytest.mark.parametrize("pooling", POOLINGS.names())
def test_roberta_runs_every_pooling_and_padding_never_leaks(tiny_roberta: Path, pooling: str) -> None:
    encoder = load_encoder(f"hf:{tiny_roberta}?pooling={pooling}&batch_size=8")
    try:
        together = encoder.encode(TEXTS)
        alone = np.vstack([encoder.encode([t]) for t in TEXTS])  # no padding at all
    finally:
        encoder.close()
    assert together.shape == (3, 32) and together.dtype == np.float32
    assert np.isfinite(together).all()
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_mean_pooling_equals_manual_computation(tiny_roberta: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_roberta)
    model = AutoModel.from_pretrained(tiny_roberta).eval()
    expected = []
    for text in TEXTS:
        with torch.no_grad():
            out = model(**tokenizer(text, return_tensors="pt"), output_hidden_states=True)
        expected.append(out.hidden_states[2][0].mean(0).numpy())
    encoder = load_encoder(f"hf:{tiny_roberta}?layer=2")
    try:
        np.testing.assert_allclose(encoder.encode(TEXTS), np.vstack(expected), atol=1e-5)
    finally:
        encoder.close()


def test_layers_differ_and_out_of_range_is_an_error(tiny_bert: Path) -> None:
    first, last = load_encoder(f"hf:{tiny_bert}?layer=0"), load_encoder(f"hf:{tiny_bert}?layer=-1")
    try:
        assert not np.allclose(first.encode(TEXTS), last.encode(TEXTS))
    finally:
        first.close()
        last.close()
    with pytest.raises(SpecError, match="layer=9 is out of range"):
        load_encoder(f"hf:{tiny_bert}?layer=9")


def test_siblings_share_one_forward_pass(tiny_bert: Path) -> None:
    specs = [f"hf:{tiny_bert}?pooling={p}" for p in ("mean", "cls", "max")]
    encoders = [load_encoder(s) for s in specs]
    try:
        backbone = encoders[0].backbone  # type: ignore[attr-defined]
        assert all(e.backbone is backbone for e in encoders)  # type: ignore[attr-defined]
        vectors = [e.encode(TEXTS) for e in encoders]
        assert backbone.stats.texts == len(TEXTS)  # one pass served all three
        assert not np.allclose(vectors[0], vectors[1])
    finally:
        for e in encoders:
            e.close()
    assert backbone.model is None  # released once the last user closed


def test_logits_recipe_is_seeded_and_reduce_mean_is_the_tutorial(tiny_bert: Path) -> None:
    def vectors(spec: str) -> np.ndarray:
        encoder = load_encoder(spec)
        try:
            return encoder.encode(TEXTS)
        finally:
            encoder.close()

    full = vectors(f"hf-logits:{tiny_bert}")
    assert full.shape == (3, 2)
    np.testing.assert_array_equal(full, vectors(f"hf-logits:{tiny_bert}"))  # same spec ⇒ same vectors
    assert not np.allclose(full, vectors(f"hf-logits:{tiny_bert}?seed=1"))
    reduced = vectors(f"hf-logits:{tiny_bert}?reduce=mean")
    assert reduced.shape == (3, 1)
    np.testing.assert_allclose(reduced[:, 0], full.mean(axis=1), atol=1e-6)
