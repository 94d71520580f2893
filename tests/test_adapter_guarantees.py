"""Guarantees every task type keeps, checked on each (issue 19, items 4, 6, 7, 9).

- Every vector an adapter scores passes one check in the adapter base class
  (:class:`evalkit.adapters.base.TaskAdapter`): a NaN or infinite vector fails the cell
  naming the encoder; vectors too large for float32 arithmetic are scored on a
  float32-friendly scale (exactly) by the scale-invariant task types.
- Checking a task costs work proportional to its data, whatever the settings say.
- Input that would break a scorer is refused (exit 2, file/line/field) before any model loads.
- Data facts (blank texts, conflicting labels, duplicated records) are stated as warnings.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import evalkit
from evalkit.errors import EvalkitError

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "tasks"


class HashEncoder:
    """A plain ``encode`` object: a fixed random vector per text (float64), optionally spoiled or scaled."""

    def __init__(self, dim: int = 16, scale: float = 1.0, nan: str | None = None, all_nan: bool = False) -> None:
        self.dim, self.scale, self.nan, self.all_nan = dim, scale, nan, all_nan

    def encode(self, texts: Sequence[str], **_: object) -> np.ndarray:
        rows = [np.random.default_rng(zlib.crc32(t.encode("utf-8"))).standard_normal(self.dim) for t in texts]
        out = np.asarray(rows, dtype=np.float64) * self.scale
        if self.all_nan:
            out[:] = np.nan
        elif self.nan is not None:
            out[[i for i, t in enumerate(texts) if t == self.nan]] = np.nan
        return out


def run(encoder: object, task: str | Path, name: str = "enc") -> evalkit.api.CellResult:  # type: ignore[name-defined]
    (cell,) = list(evalkit.evaluate({name: encoder}, [task], progress=False, cache=False))
    return cell


def small_clustering(tmp_path: Path, data: Path | None = None, **settings: object) -> Path:
    """A v2 clustering task on the Emotion data (or ``data``), two small experiments unless ``settings`` say otherwise."""
    values = {"subsample": False, "n_experiments": 2, "max_documents_per_cluster": 300, **settings}
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    source = data or TASKS / "data/clustering/emotion/test.jsonl"
    path = tmp_path / "clustering.toml"
    path.write_text(
        f'name = "SmallClustering"\ntype = "clustering"\nsplit = "test"\n\n[files]\ntest = {json.dumps(str(source))}\n\n'
        "[settings]\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )
    return path


def summeval_first_text() -> str:
    record = json.loads((TASKS / "data/summarization/summeval/test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    return str(record["machine_summaries"][0])


# ---- item 4: one finite-vector check for every task type ------------------------------------------


@pytest.mark.parametrize("task", ["SciFactReranking", "SummEval", "STSBenchmark"])
def test_nan_vectors_fail_the_cell_naming_the_encoder(task: str) -> None:
    """Reranking was ok 0.114 with all-NaN vectors, summarization dropped a NaN text silently, STS blamed the data."""
    spoiled = HashEncoder(nan=summeval_first_text()) if task == "SummEval" else HashEncoder(all_nan=True)
    cell = run(spoiled, task, name="nanny")
    assert cell.status == "failed", cell.main_score
    assert "encoder obj:nanny" in (cell.error or "") and "NaN" in (cell.error or "")
    assert "fix the data" not in (cell.error or "")


def test_retrieval_nan_vectors_fail() -> None:
    """Retrieval with all-NaN vectors was ok 0.0."""
    cell = run(HashEncoder(all_nan=True), "SciFact", name="nanny")
    assert cell.status == "failed" and "encoder obj:nanny" in (cell.error or "")


@pytest.mark.parametrize("task", ["SciFact", "SciFactReranking", "STSBenchmark", "SummEval", "MRPC", "clustering"])
def test_huge_vectors_score_as_the_same_vectors_at_unit_scale(task: str, tmp_path: Path) -> None:
    """Vectors x 2**100 (float32 squares overflow) score exactly as the unscaled ones: every metric of these types is scale-invariant."""
    task = small_clustering(tmp_path) if task == "clustering" else task  # type: ignore[assignment]
    clean = run(HashEncoder(), task, name="clean")
    huge = run(HashEncoder(scale=2.0**100), task, name="huge")
    assert clean.status == huge.status == "ok", huge.error
    assert huge.main_score == clean.main_score
    assert huge.scores == clean.scores
    assert any("scaled by 2**-" in w for w in huge.warnings)
    assert not any("scaled by" in w for w in clean.warnings)


@pytest.mark.parametrize("task", ["SciFact", "SciFactReranking"])
def test_vectors_beyond_float32_are_never_a_wrong_score(task: str) -> None:
    """float64 vectors x 1e200 were ok 0.0 (retrieval) and 0.114 (reranking): now the true score, or a refusal naming the encoder."""
    clean = run(HashEncoder(), task, name="clean")
    cell = run(HashEncoder(scale=1e200), task, name="big")
    if cell.status == "ok":
        assert cell.main_score == pytest.approx(clean.main_score, abs=1e-3)
    else:
        assert "encoder obj:big" in (cell.error or "") and "float32" in (cell.error or "")


def test_direct_float64_vectors_beyond_float32_are_scored() -> None:
    """An encoder handing float64 vectors x 1e200 straight to an adapter: rescaled in float64 before the float32 cast."""
    from evalkit.adapters import adapter_for
    from evalkit.spec import EncoderSpec
    from evalkit.taskspec import TaskIndex

    class Direct:
        def __init__(self, scale: float) -> None:
            self.spec = EncoderSpec.parse("tfidf:direct")
            self.inner = HashEncoder(scale=scale)

        def encode(self, texts: Sequence[str], role: object = None) -> np.ndarray:
            return self.inner.encode(texts)

    task = TaskIndex().get("SciFactReranking")
    adapter = adapter_for("reranking")
    clean = adapter.evaluate(Direct(1.0), task, task.split)  # type: ignore[arg-type]
    big = adapter.evaluate(Direct(1e200), task, task.split)  # type: ignore[arg-type]
    assert big.main_score == pytest.approx(clean.main_score, abs=1e-3)


def test_classification_refuses_vectors_it_cannot_hold() -> None:
    """Logistic regression depends on scale: vectors beyond float32 are refused, naming the encoder, never rescaled."""
    cell = run(HashEncoder(scale=1e200), "Banking77Classification", name="big")
    assert cell.status == "failed" and "encoder obj:big" in (cell.error or "")


def test_a_third_party_adapter_cannot_skip_the_check() -> None:
    """An adapter registered without subclassing TaskAdapter gets the same check from adapter_for."""
    from evalkit.adapters import ADAPTERS, adapter_for
    from evalkit.adapters.base import TaskAdapter, TaskOutcome

    class Raw:
        task_type = "raw-vectors"

        def validate(self, task: object, split: str | None = None) -> None: ...

        def score_units(self, units: object, index: np.ndarray) -> float:
            return 0.0

        def evaluate(self, encoder: object, task: object, split: str) -> TaskOutcome:
            vectors = encoder.encode(["a", "b"])  # type: ignore[attr-defined]
            return TaskOutcome("m", {"m": float(np.sum(vectors))}, 2)

    class Sub(TaskAdapter):
        task_type = "sub-vectors"

        def evaluate(self, encoder: object, task: object, split: str) -> TaskOutcome:
            return Raw.evaluate(self, encoder, task, split)  # type: ignore[arg-type]

    class Bad:
        spec = "obj:bad"

        def encode(self, texts: Sequence[str], role: object = None) -> np.ndarray:
            return np.full((len(texts), 3), np.nan)

    ADAPTERS.register("raw-vectors", Raw)
    try:
        for adapter in (adapter_for("raw-vectors"), Sub()):
            with pytest.raises(EvalkitError, match="encoder obj:bad returned 2 of 2 vectors with NaN"):
                adapter.evaluate(Bad(), None, "test")  # type: ignore[arg-type]
    finally:
        ADAPTERS._entries.pop("raw-vectors", None)  # type: ignore[attr-defined]
