"""The Python API: in-memory models give the scores of the matching spec strings, and Results feed report and gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import evalkit
from evalkit.errors import EvalkitError
from evalkit.taskspec import TaskIndex
from tests.conftest import STSB_TEST

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_sts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 150 STS-B test pairs as a task file (fast, and real data)."""
    folder = tmp_path_factory.mktemp("small-sts")
    lines = STSB_TEST.read_text(encoding="utf-8").splitlines()
    (folder / "test.tsv").write_text("\n".join(lines[:151]) + "\n", encoding="utf-8")
    (folder / "small.toml").write_text(
        'name = "SmallSTSB"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "test.tsv"\n[settings]\nmin_score = 0\nmax_score = 5\n',
        encoding="utf-8",
    )
    return folder / "small.toml"


@pytest.fixture(scope="module")
def minilm() -> Any:
    from sentence_transformers import SentenceTransformer

    from evalkit.catalogue import resolve

    return SentenceTransformer(str(resolve("all-MiniLM-L6-v2")), device="cpu")


def scores(results: evalkit.Results) -> dict[str, float]:
    assert not results.failed, [c.error for c in results.failed]
    return {cell.encoder: cell.main_score for cell in results.cells}


def test_a_sentence_transformer_object_scores_as_its_spec(minilm: Any, small_sts: Path) -> None:
    results = evalkit.evaluate(["sbert:all-MiniLM-L6-v2", minilm], [small_sts], progress=False, cache=False)
    (spec_cell,) = [c for c in results.cells if c.encoder.startswith("sbert:")]
    (obj_cell,) = [c for c in results.cells if c.encoder.startswith("obj:")]
    assert obj_cell.main_score == pytest.approx(spec_cell.main_score, abs=1e-6)
    assert obj_cell.encoder.startswith("obj:") and "@" in obj_cell.encoder  # named after the model folder, fingerprinted


def test_from_transformers_sweeps_poolings_in_one_forward_pass(minilm: Any, small_sts: Path) -> None:
    from evalkit.encoders import from_transformers

    model, tokenizer = minilm[0].auto_model, minilm.tokenizer
    objects = {f"minilm-{p}": from_transformers(model, tokenizer, pooling=p) for p in ("mean", "cls", "max")}
    specs = [f"hf:all-MiniLM-L6-v2?pooling={p}" for p in ("mean", "cls", "max")]
    results = evalkit.evaluate({**objects, **{s: s for s in specs}}, [small_sts], progress=False, cache=False)
    got = scores(results)
    for pooling in ("mean", "cls", "max"):
        obj = next(v for k, v in got.items() if k.startswith(f"obj:minilm-{pooling}@"))
        assert obj == pytest.approx(got[f"hf:all-MiniLM-L6-v2?pooling={pooling}"], abs=1e-6)
    passes = [c.throughput.get("forward_batches", 0) for c in results.cells if c.encoder.startswith("obj:")]
    assert sum(1 for n in passes if n > 0) == 1, "the three poolings of one model object must share one forward pass"
    assert model.training is False or model.training is True  # the caller's object is untouched in kind


def test_a_plain_object_with_encode_scores_as_the_spec_and_says_the_cache_is_off(
    minilm: Any, small_sts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Plain:
        def encode(self, texts: list[str]) -> np.ndarray:
            return minilm.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)

    results = evalkit.evaluate({"plain": Plain(), "spec": "sbert:all-MiniLM-L6-v2"}, [small_sts], progress=False)
    got = scores(results)
    assert got["obj:plain"] == pytest.approx(got["sbert:all-MiniLM-L6-v2"], abs=1e-6)
    err = capsys.readouterr().err
    assert "obj:plain: embedding cache off" in err


def test_a_changed_model_gets_a_new_identity(minilm: Any, small_sts: Path) -> None:
    """A model changed in place (a training step) is a different encoder: new spec, no stale vectors from the cache."""
    import copy

    import torch

    from evalkit.encoders import from_transformers

    model = copy.deepcopy(minilm[0].auto_model)
    before = evalkit.evaluate({"m": from_transformers(model, minilm.tokenizer)}, [small_sts], progress=False)
    with torch.no_grad():
        model.encoder.layer[0].attention.self.query.weight.mul_(0.5)
    after = evalkit.evaluate({"m": from_transformers(model, minilm.tokenizer)}, [small_sts], progress=False)
    (b,), (a,) = before.cells, after.cells
    assert a.encoder != b.encoder and a.main_score != b.main_score
    assert a.throughput.get("cached_fraction", 0) == 0


def test_results_tables_save_and_gate(tmp_path: Path, small_sts: Path) -> None:
    from evalkit.results import ResultStore

    results = evalkit.evaluate(["tfidf:lexical", "static:tokenlearn-static"], [small_sts], output=tmp_path / "a", progress=False)
    frame = results.to_pandas()
    assert {"encoder", "task", "split", "main_metric", "main_score", "ci_low", "ci_high", "sentences_per_second"} <= set(frame.columns)
    assert len(frame) == 2 and frame["main_score"].notna().all()
    board = results.leaderboard()
    assert list(board.index) == sorted(board.index, key=lambda e: -frame.set_index("encoder").at[e, "main_score"])
    saved = results.save(tmp_path / "copy")
    assert len(ResultStore(saved).load_all()) == 2
    report = results.compare(saved)
    assert report.exit_code == 0 and len(report.checks) == 2


def test_tasks_may_be_names_paths_or_taskspecs(small_sts: Path) -> None:
    spec = TaskIndex().get(str(small_sts))
    results = evalkit.evaluate("tfidf:lexical", [spec], progress=False)
    assert [c.task for c in results.cells] == ["SmallSTSB"]


def test_bad_input_raises_before_any_model_loads(small_sts: Path) -> None:
    with pytest.raises(EvalkitError, match="did you mean"):
        evalkit.evaluate("hf:all-MiniLM-L6-v2?pooling=meen", [small_sts], progress=False)
    with pytest.raises(EvalkitError, match="encode"):
        evalkit.evaluate([object()], [small_sts], progress=False)
    with pytest.raises(EvalkitError):
        evalkit.evaluate("tfidf:lexical", ["NoSuchTask"], progress=False)
