"""Shared fixtures: tiny random-initialised transformers (BERT, RoBERTa) saved as real model folders.

They exercise the real Hugging Face loading path in milliseconds. No RoBERTa weights
exist offline, so the RoBERTa tokenizer is a real byte-level BPE trained here on STS-B text.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Each test session gets its own embedding cache: no vectors leak in from a user's cache or an earlier run.
os.environ["EVALKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="evalkit-test-cache-")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
STSB_TEST = REPO / "tasks" / "data" / "sts" / "stsbenchmark" / "test.tsv"


def sts_sentences(limit: int = 400) -> list[str]:
    lines = STSB_TEST.read_text(encoding="utf-8").splitlines()[1 : limit + 1]
    return [part for line in lines for part in line.split("\t")[:2]]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with MiniLM's real WordPiece tokenizer, random weights (seed 0)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from evalkit.catalogue import resolve

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(resolve("all-MiniLM-L6-v2")))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-layer RoBERTa with a byte-level BPE tokenizer trained on STS-B sentences."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-roberta")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sts_sentences(), vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=128)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
    )
    RobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# The fast tier (`make test-fast`, `pytest -m "not slow"`): parsers, schemas, identities, statistics and the
# package's layering — no model, no Ray, no browser, no subprocess run of a model; about 30 s on 2 idle cores.
# Every other module is the full suite's only (marked `slow` here, so a new test file starts in the full suite).
FAST_MODULES = {
    "test_architecture.py",
    "test_gate_refusals.py",
    "test_limit.py",
    "test_readers.py",
    "test_registry.py",
    "test_result_files.py",
    "test_result_identity.py",
    "test_sealed_results.py",
    "test_similarity.py",
    "test_spec.py",
    "test_stats.py",
    "test_task_files.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name not in FAST_MODULES:
            item.add_marker(pytest.mark.slow)
