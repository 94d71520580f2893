"""Guarantees every task type keeps, checked on each (issue 19, items 4, 6, 7, 9).

- Every vector an adapter scores passes one check in the adapter base class
  (:class:`evalkit.adapters.base.TaskAdapter`), read in the encoder's own dtype: a NaN or
  infinite vector, non-real values, width 0, a width that changes within a task, or
  all-zero vectors fail the cell in one line naming the encoder; vectors whose magnitude
  float32 arithmetic cannot score are rescaled exactly by a power of two, each vector on
  its own for the cosine task types (length-dependent metrics then not reported), all
  alike for those that compare lengths (or refused when no single factor fits).
- The embedding cache stores only what float32 holds as the scorer would read it.
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
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

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


# ---- item 6: checking a task costs work proportional to its data ---------------------------------


def check_task_cli(path: Path) -> tuple[int, str]:
    """``evalkit run`` of a task with an encoder that never loads: the exit code and stderr of the up-front check."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "evalkit", "run", "-e", "tfidf:lexical", "-t", str(path), "-o", str(path.parent / "out"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    return done.returncode, done.stderr


def test_clustering_draws_are_bounded_by_the_data(tmp_path: Path) -> None:
    """n_experiments = 10000 x max_documents_per_cluster = 1e8 planned 1e12 draws (MemoryError after 137 s): now exit 2 at once."""
    import time

    path = small_clustering(tmp_path, n_experiments=10_000, max_documents_per_cluster=100_000_000)
    start = time.perf_counter()
    code, err = check_task_cli(path)
    assert code == 2, err
    assert time.perf_counter() - start < 60
    assert "settings.max_documents_per_cluster" in err and "proportional to its data" in err and "Traceback" not in err


@pytest.mark.parametrize("n_experiments", [1, 7, 10_000])
def test_clustering_work_bound_is_proportional(tmp_path: Path, n_experiments: int) -> None:
    """Whatever the settings, what the check accepts plans at most max(2**24, 100 per document) draws."""
    from evalkit.adapters.base import WORK_FLOOR, WORK_PER_ITEM
    from evalkit.adapters.clustering import ClusteringAdapter
    from evalkit.errors import DataError
    from evalkit.taskspec import load_task_file

    for per in (300, WORK_FLOOR // n_experiments, WORK_FLOOR // n_experiments + 1):
        task = load_task_file(small_clustering(tmp_path, n_experiments=n_experiments, max_documents_per_cluster=per))
        if n_experiments * per > max(WORK_FLOOR, WORK_PER_ITEM * 2000):
            with pytest.raises(DataError, match="proportional"):
                ClusteringAdapter().load(task, "test")
        elif per <= 300 or n_experiments == 1:  # planning the largest accepted plans is slow: only the small ones run
            _, plan = ClusteringAdapter().load(task, "test")
            assert sum(len(g) for g in plan.groups) == n_experiments * per


def test_senteval_folds_are_bounded_by_the_data(tmp_path: Path) -> None:
    """SentEval's k outer x k inner folds over n examples: k_folds = 1000 on 2,000 examples is refused up front."""
    rows = [{"text": f"text {i}", "label": i % 2} for i in range(2000)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = tmp_path / "t.toml"
    path.write_text(
        'name = "SE"\ntype = "classification"\nsplit = "test"\n[files]\ntest = "d.jsonl"\n'
        '[settings]\nprotocol = "senteval"\nk_folds = 1000\n',
        encoding="utf-8",
    )
    code, err = check_task_cli(path)
    assert code == 2 and "settings.k_folds" in err and "proportional" in err, err


# ---- item 7: input that would break a scorer is refused before any model loads --------------------


def small_retrieval(tmp_path: Path, qrels: str) -> Path:
    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "title": "", "text": f"document {i}"}) + "\n" for i in range(4)), encoding="utf-8"
    )
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "a query"}) + "\n", encoding="utf-8")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels, encoding="utf-8")
    path = tmp_path / "r.toml"
    path.write_text(
        'name = "R"\ntype = "retrieval"\nsplit = "test"\n[files]\ncorpus = "corpus.jsonl"\nqueries = "queries.jsonl"\ntest = "qrels.tsv"\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("score", ["1e20", "2147483647", "1001", "-2147483649", "9223372036854775807"])
def test_qrels_relevance_beyond_pytrec_eval_is_refused(tmp_path: Path, score: str) -> None:
    """A qrels score of 1e20 passed validation, then pytrec_eval raised SystemError after the model loaded (exit 1); 2**31-1 took 56 s."""
    path = small_retrieval(tmp_path, f"q1\td1\t{score}\n")
    code, err = check_task_cli(path)
    assert code == 2, err
    assert "qrels.tsv:2" in err and "field 'score'" in err and "Traceback" not in err


def test_qrels_relevance_within_range_scores(tmp_path: Path) -> None:
    path = small_retrieval(tmp_path, "q1\td1\t1000\nq1\td2\t-3\n")
    cell = run(HashEncoder(), path)
    assert cell.status == "ok", cell.error


def test_summarization_with_constant_relevance_is_refused_up_front(tmp_path: Path) -> None:
    """Every text rating its machine summaries alike loaded the model, then failed: now exit 2 with file, line, field."""
    records = [
        {"human_summaries": ["h one", "h two"], "machine_summaries": ["m one", "m two", "m three"], "relevance": [3, 3, 3]},
        {"human_summaries": ["h three"], "machine_summaries": ["m four", "m five"], "relevance": [1.5, 1.5]},
    ]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    path = tmp_path / "s.toml"
    path.write_text('name = "S"\ntype = "summarization"\nsplit = "test"\n[files]\ntest = "s.jsonl"\n', encoding="utf-8")
    code, err = check_task_cli(path)
    assert code == 2 and "s.jsonl:1" in err and "field 'relevance'" in err, err


# ---- item 9: data facts are stated -----------------------------------------------------------------


def test_clustering_states_blank_texts_conflicting_labels_and_look_alike_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Blank texts, one text under two labels, and labels '1' / '01' clustered silently: each is now a warning."""
    from evalkit.adapters.clustering import ClusteringAdapter
    from evalkit.taskspec import load_task_file

    data = tmp_path / "c.tsv"
    data.write_text("text\tlabel\na cat\t1\na dog\t01\n \t2\na cat\t2\nan owl\t2\n", encoding="utf-8")
    task = load_task_file(small_clustering(tmp_path, data=data, max_documents_per_cluster=10))
    ClusteringAdapter().validate(task)
    err = capsys.readouterr().err
    assert f"{data}:4: empty or whitespace-only text in column 'text'" in err
    assert f"{data}:5: text repeated with a different label: 1 row: line 5 (as line 2)" in err
    assert "'1' (line 2) / '01' (line 3)" in err
    cell = run(HashEncoder(), small_clustering(tmp_path, data=data, max_documents_per_cluster=10))
    assert cell.status == "ok" and len(cell.warnings) == 3, cell.warnings


def test_clustering_sets_of_two_types_are_refused(tmp_path: Path) -> None:
    """Sets 1 and '1' would be two clustering sets: refused like labels of two types."""
    rows = [{"text": f"t{i}", "label": i % 2, "set": 1 if i < 4 else "1"} for i in range(8)]
    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = tmp_path / "legacy.toml"
    path.write_text(
        f'name = "L"\ntype = "clustering"\nsplit = "test"\n[files]\ntest = "{data}"\n[settings]\nmode = "legacy"\n', encoding="utf-8"
    )
    code, err = check_task_cli(path)
    assert code == 2 and "c.jsonl:5" in err and "field 'set'" in err, err


def test_clustering_of_the_shipped_tasks_states_nothing_new(capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.adapters.clustering import ClusteringAdapter
    from evalkit.taskspec import TaskIndex

    for name in ("EmotionClustering", "Banking77Clustering"):
        task = TaskIndex().get(name)
        assert ClusteringAdapter().load(task, task.split)[0].warnings == ()
    assert "warning" not in capsys.readouterr().err


def test_a_duplicated_summarization_record_is_stated(tmp_path: Path) -> None:
    """A record given twice counted twice without a word: now a warning in the result."""
    lines = (TASKS / "data/summarization/summeval/test.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    (tmp_path / "s.jsonl").write_text("\n".join([*lines, lines[2]]) + "\n", encoding="utf-8")
    path = tmp_path / "s.toml"
    path.write_text('name = "S"\ntype = "summarization"\nsplit = "test"\n[files]\ntest = "s.jsonl"\n', encoding="utf-8")
    cell = run(HashEncoder(), path)
    assert cell.status == "ok"
    assert any(
        "s.jsonl:7: duplicate row (same summaries and relevance as an earlier row): 1 row: line 7 (as line 3)" in w for w in cell.warnings
    )


def test_mteb_protocol_subset_must_exist(tmp_path: Path) -> None:
    """protocol = "mteb:STS17:xx-yy" loaded as if the subset existed: now exit 2 naming the protocol line."""
    from evalkit.errors import DataError
    from evalkit.taskspec import load_task_file

    data = TASKS / "data/sts/stsbenchmark/test.tsv"
    for subset, ok in (("xx-yy", False), ("en-en", True)):
        path = tmp_path / f"{subset}.toml"
        path.write_text(
            f'name = "Mine"\ntype = "sts"\nprotocol = "mteb:STS17:{subset}"\nsplit = "test"\n[files]\ntest = "{data}"\n', encoding="utf-8"
        )
        if ok:
            assert load_task_file(path).protocol == "mteb:STS17:en-en"
        else:
            with pytest.raises(DataError, match="no subset 'xx-yy'") as caught:
                load_task_file(path)
            assert caught.value.line == 3 and caught.value.field == "protocol"


def test_tasks_dir_as_one_string_is_one_folder(tmp_path: Path) -> None:
    """tasks_dir="/path" was read one character at a time ('/', 'p', ...): now it is the folder."""
    folder = tmp_path / "mytasks"
    folder.mkdir()
    small_retrieval(folder, "q1\td1\t1\n")
    for one in (str(folder), folder):
        (cell,) = list(evalkit.evaluate({"h": HashEncoder()}, ["R"], tasks_dir=one, progress=False, cache=False))  # type: ignore[arg-type]
        assert cell.status == "ok" and cell.task == "R"


# ---- the check itself, as properties ----------------------------------------------------------------


class _Fixed:
    """An encoder returning given arrays, one per call."""

    def __init__(self, *arrays: np.ndarray) -> None:
        from evalkit.spec import EncoderSpec

        self.arrays, self.spec = list(arrays), EncoderSpec.parse("tfidf:fixed")

    def encode(self, texts: Sequence[str], role: object = None) -> np.ndarray:
        return self.arrays.pop(0)


def _checked(inner: _Fixed, invariant: bool = True) -> object:
    from evalkit.adapters.base import VectorCheck

    return VectorCheck(inner, "sts" if invariant else "classification", invariant)  # type: ignore[arg-type]


finite64 = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=finite64), st.integers(-300, 300))
def test_finite_vectors_come_back_as_float32_on_one_exact_scale(base: np.ndarray, power: int) -> None:
    """Any finite vectors at any scale 2**power come back finite float32, two calls sharing one exact power of two, for a
    task type that compares lengths (k-means, dot products); refused naming the encoder only when one power of two cannot
    bring them all into 2**-16..2**32 (their lengths more than 2**47 apart)."""
    from evalkit.adapters.base import RESCALE_ABOVE, RESCALE_BELOW, VectorCheck

    scaled = np.ldexp(base, power)
    check = VectorCheck(_Fixed(scaled, scaled * 0.5), "clustering", scaling="uniform")  # type: ignore[arg-type]
    texts = [str(i) for i in range(len(base))]
    magnitudes = np.abs(scaled).max(axis=1)
    magnitudes = magnitudes[magnitudes > 0]
    in_range = bool(((magnitudes >= RESCALE_BELOW) & (magnitudes <= RESCALE_ABOVE)).all())
    if not magnitudes.size:  # cosine is undefined on zero vectors: refused
        with pytest.raises(EvalkitError, match=r"^encoder tfidf:fixed returned all-zero vectors"):
            check.encode(texts)
        return
    if not in_range and np.frexp(magnitudes.max())[1] - np.frexp(magnitudes.min())[1] > 47:
        with pytest.raises(EvalkitError, match=r"^encoder tfidf:fixed returned vectors of magnitudes .* too far apart"):
            check.encode(texts)
        return
    first, second = check.encode(texts), check.encode(texts)
    assert first.dtype == np.float32 and np.isfinite(first).all()
    exponent = check.exponent or 0
    assert np.array_equal(first, np.ldexp(scaled, -exponent).astype(np.float32))
    assert np.array_equal(second, np.ldexp(scaled * 0.5, -exponent).astype(np.float32))
    if in_range:
        assert exponent == 0  # in float32's comfortable range: untouched, so every committed number stays


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=finite64),
    st.data(),
    st.sampled_from([np.nan, np.inf, -np.inf]),
    st.booleans(),
)
def test_a_non_finite_value_anywhere_is_refused_naming_the_encoder(
    base: np.ndarray, data: st.DataObject, bad: float, invariant: bool
) -> None:
    row = data.draw(st.integers(0, base.shape[0] - 1))
    col = data.draw(st.integers(0, base.shape[1] - 1))
    spoiled = base.copy()
    spoiled[row, col] = bad
    with pytest.raises(EvalkitError, match=r"^encoder tfidf:fixed returned 1 of \d+ vectors with (NaN|infinite) values"):
        _checked(_Fixed(spoiled), invariant).encode([str(i) for i in range(len(base))])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("settings_text", "field"),
    [
        ('protocol = "cross_validation"\nk_folds = 1000\n', "settings.k_folds"),
        ('train_split = "train"\nn_experiments = 1000\nsamples_per_label = 1000000000\n', "settings.n_experiments"),
    ],
)
def test_classification_plans_are_bounded_by_the_data(tmp_path: Path, settings_text: str, field: str) -> None:
    """1000 folds or experiments over 20,000 examples would plan 2e7 indices: refused up front, naming the setting."""
    rows = [{"text": f"text {i}", "label": i % 2} for i in range(20_000)]
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = tmp_path / "t.toml"
    files = 'train = "train.jsonl"\ntest = "test.jsonl"\n' if "train_split" in settings_text else 'test = "test.jsonl"\n'
    path.write_text(f'name = "C"\ntype = "classification"\nsplit = "test"\n[files]\n{files}[settings]\n{settings_text}', encoding="utf-8")
    code, err = check_task_cli(path)
    assert code == 2 and field in err and "proportional" in err, err


# ---- vectors of any magnitude, dtype and shape: the true score or a one-line refusal naming the encoder --------
# Variants of the outside tester's W1-W4: rows of an encode() result at different magnitudes (1 and 1e25 gave STS
# 0.0265 for the true -0.1392), float64 values float32 cannot hold (1e-310 was scored as all-zero vectors, 1e40
# refused as "infinite"), zero vectors and zero-width vectors scored with ties broken by id, raw numpy errors.

WORDS = ["cat", "dog", "bird", "fish", "tree", "rock", "lake", "hill", "road", "car", "bus", "ship", "moon", "star", "sun", "rain"]


def _sentence(i: int, n: int = 4) -> str:
    return " ".join(WORDS[(i * 7 + j * 3 + i // 5) % len(WORDS)] for j in range(n)) + f" {i}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small tasks of every cosine task type (and clustering): each scored in a fraction of a second."""
    root = tmp_path_factory.mktemp("tiny")

    def write(name: str, text: str) -> Path:
        path = root / name
        path.write_text(text, encoding="utf-8")
        return path

    pairs = "".join(f"{_sentence(i)}\t{_sentence(i + 40)}\t{(i * 37) % 51 / 10}\n" for i in range(40))
    write("sts.tsv", "sentence1\tsentence2\tscore\n" + pairs)
    write("corpus.jsonl", "".join(json.dumps({"_id": f"d{i}", "title": "", "text": _sentence(100 + i, 6)}) + "\n" for i in range(30)))
    write("queries.jsonl", "".join(json.dumps({"_id": f"q{i}", "text": _sentence(200 + i)}) + "\n" for i in range(10)))
    judged = "".join(f"q{i}\td{(i * 3 + j) % 30}\t{1 + j % 2}\n" for i in range(10) for j in range(2))
    write("qrels.tsv", "query-id\tcorpus-id\tscore\n" + judged)
    lists = [{"query-id": f"q{i}", "corpus-ids": [f"d{(i * 3 + j) % 30}" for j in range(8)]} for i in range(10)]
    write("cands.jsonl", "".join(json.dumps(c) + "\n" for c in lists))
    summaries = [
        {
            "human_summaries": [_sentence(300 + 10 * t + h) for h in range(2)],
            "machine_summaries": [_sentence(400 + 10 * t + m) for m in range(5)],
            "relevance": [float((t + m * 2) % 5) for m in range(5)],
        }
        for t in range(5)
    ]
    write("summ.jsonl", "".join(json.dumps(r) + "\n" for r in summaries))
    write("clu.jsonl", "".join(json.dumps({"text": _sentence(500 + i), "label": i % 3}) + "\n" for i in range(36)))
    retrieval_files = 'corpus = "corpus.jsonl"\nqueries = "queries.jsonl"\ntest = "qrels.tsv"\n'
    heads = {
        "sts": ("sts", 'test = "sts.tsv"\n', ""),
        "retrieval": ("retrieval", retrieval_files, "k_values = [1, 3, 10]\n"),
        "retrieval_dot": ("retrieval", retrieval_files, 'k_values = [1, 3, 10]\nsimilarity = "dot"\n'),
        "reranking": ("reranking", retrieval_files + 'candidates = "cands.jsonl"\n', "k_values = [1, 3, 10]\n"),
        "summarization": ("summarization", 'test = "summ.jsonl"\n', ""),
        "clustering": ("clustering", 'test = "clu.jsonl"\n', "subsample = false\nn_experiments = 2\nmax_documents_per_cluster = 36\n"),
    }
    return {
        name: write(
            f"{name}.toml", f'name = "Tiny{name.title()}"\ntype = "{kind}"\nsplit = "test"\n\n[files]\n{files}\n[settings]\n{extra}'
        )
        for name, (kind, files, extra) in heads.items()
    }


class Scaled:
    """An Encoder-like object (``spec``, ``encode(texts, role)``) handing the adapter float64 vectors as they come.

    ``rows(texts)`` gives each text a fixed random vector (crc32-seeded); ``post`` transforms the (n, dim) array
    (per-row factors, dtype, width). Handed to ``adapter_for(...).evaluate`` directly, so no cast happens before
    the adapter's vector check, whatever the object layer does.
    """

    def __init__(self, post: object = None, dim: int = 24, name: str = "scaled") -> None:
        from evalkit.spec import EncoderSpec

        self.post, self.dim, self.spec = post, dim, EncoderSpec.parse(f"tfidf:{name}")

    def encode(self, texts: Sequence[str], role: object = None) -> object:
        rows = np.asarray([np.random.default_rng(zlib.crc32(t.encode("utf-8"))).standard_normal(self.dim) for t in texts])
        return self.post(rows, list(texts), role) if callable(self.post) else rows

    def fingerprint(self) -> dict[str, str]:
        return {"weights": "sha256:" + "0" * 64}

    def count_tokens(self, texts: Sequence[str]) -> int:
        return len(texts)

    def close(self) -> None: ...


def per_text(powers: Sequence[int]) -> object:
    """Each text's vector times 2**powers[crc32(text) % len(powers)] (exact in float64): its direction is unchanged."""

    def post(rows: np.ndarray, texts: list[str], role: object) -> np.ndarray:
        picks = np.asarray([powers[zlib.crc32(t.encode("utf-8")) % len(powers)] for t in texts])
        return np.ldexp(rows, picks[:, np.newaxis])

    return post


def score(task: Path, encoder: object) -> evalkit.adapters.TaskOutcome:  # type: ignore[name-defined]
    from evalkit.adapters import adapter_for
    from evalkit.taskspec import TaskIndex

    spec = TaskIndex().get(str(task))
    return adapter_for(spec.type).evaluate(encoder, spec, spec.split)  # type: ignore[arg-type]


COSINE_METRICS = {
    "sts": ("cosine_spearman", "cosine_pearson", "spearman", "pearson"),
    "summarization": ("cosine_spearman", "cosine_pearson", "spearman", "pearson"),
}
LENGTH_METRICS = {"sts": ("euclidean_spearman", "manhattan_pearson", "dot_spearman"), "summarization": ("dot_spearman", "dot_pearson")}


# Powers that take a vector out of the band float32 scores as MTEB does (2**-60..2**56); inside it a vector is scored as it
# is, MTEB's way: sklearn leaves one shorter than 1.2e-6 unnormalised, so its cosine is MTEB's number, not a length-free one.
OUT_OF_BAND = st.integers(-990, 990).filter(lambda p: p == 0 or p <= -70 or p >= 66)


@settings(max_examples=12, deadline=None)
@given(st.lists(OUT_OF_BAND, min_size=1, max_size=4))
def test_any_per_row_scaling_leaves_cosine_scores_unchanged(tiny: dict[str, Path], powers: list[int]) -> None:
    """W1: each vector multiplied by its own power of two (out of float32's band) scores exactly as the unscaled vectors.

    Rows already in float32's comfortable range are untouched, the others each get their own exact power of two; the
    metrics that depend on a vector's length (STS's Euclidean/Manhattan/dot, summarization's dot) are None when
    vectors were rescaled apart, and the warning names them.
    """
    for name in ("sts", "retrieval", "reranking", "summarization"):
        clean = score(tiny[name], Scaled())
        scaled = score(tiny[name], Scaled(per_text(powers)))
        assert scaled.main_score == clean.main_score, (name, powers)
        for metric in COSINE_METRICS.get(name, tuple(clean.scores)):
            assert scaled.scores[metric] == clean.scores[metric], (name, metric, powers)
        apart = [w for w in scaled.warnings if "each scaled by its own power of two" in w]
        for metric in LENGTH_METRICS.get(name, ()):
            assert (scaled.scores[metric] is None) == bool(apart), (name, metric, powers)
            assert not apart or metric in apart[0]


@pytest.mark.parametrize("task", ["sts", "retrieval", "reranking", "summarization"])
@pytest.mark.parametrize("factors", [(1.0, 1e25), (1.0, 1e12), (1.0, 1e-19, 1e-20), (1.0, 1e-25), (1e-310,), (1e40,), (1e300, 1e-300)])
def test_rows_of_different_magnitudes_give_the_true_score(tiny: dict[str, Path], task: str, factors: tuple[float, ...]) -> None:
    """The tester's variants (row i times factors[i % len]): STS was 0.0265 for the true -0.1392 at (1, 1e25)."""

    def post(rows: np.ndarray, texts: list[str], role: object) -> np.ndarray:
        return rows * np.asarray([factors[i % len(factors)] for i in range(len(rows))])[:, np.newaxis]

    clean = score(tiny[task], Scaled())
    scaled = score(tiny[task], Scaled(post))
    assert scaled.main_score == pytest.approx(clean.main_score, abs=1e-6)


def test_sts_reports_length_metrics_only_for_the_model_s_own_lengths(tiny: dict[str, Path]) -> None:
    """Rows 1 and 2**90 apart: cosine exact, Euclidean/Manhattan/dot (which per-row rescaling would change) not reported."""
    clean = score(tiny["sts"], Scaled())
    apart = score(tiny["sts"], Scaled(per_text([0, 90])))
    assert {k: v for k, v in apart.scores.items() if v is not None} == {k: clean.scores[k] for k in COSINE_METRICS["sts"]}
    (note,) = [w for w in apart.warnings if "own power of two" in w]
    assert note.startswith("encoder tfidf:scaled: ") and "euclidean_spearman" in note
    uniform = score(tiny["sts"], Scaled(per_text([90])))  # all alike: one power of two, every metric kept
    assert uniform.scores == clean.scores and any("scaled by 2**-" in w for w in uniform.warnings)


@pytest.mark.parametrize("task", ["clustering", "retrieval_dot"])
def test_types_that_compare_lengths_refuse_rows_too_far_apart(tiny: dict[str, Path], task: str) -> None:
    """k-means and dot products depend on the vectors' relative lengths: rows 2**83 apart are refused in one line; 2**20
    apart are scored as they are (all shifted alike, exactly)."""
    with pytest.raises(EvalkitError, match=r"^encoder tfidf:scaled returned vectors of magnitudes .* too far apart") as raised:
        score(tiny[task], Scaled(per_text([0, 83])))
    assert "\n" not in str(raised.value)
    unscaled = score(tiny[task], Scaled(per_text([0, -20])))  # 2**-20 is below the range: all shifted alike, exactly
    shifted = score(tiny[task], Scaled(per_text([20, 0])))
    assert unscaled.scores == shifted.scores


@pytest.mark.parametrize("task", ["sts", "retrieval", "reranking", "summarization", "clustering"])
@pytest.mark.parametrize(
    ("post", "expected"),
    [
        (lambda v, t, r: v[:, :0], "returned vectors of width 0"),
        (lambda v, t, r: v * 0.0, "returned all-zero vectors for all"),
        (lambda v, t, r: v + 1j * np.roll(v, 1, axis=1), "returned complex values"),
        (lambda v, t, r: v > 0, "returned boolean values"),
        (lambda v, t, r: v.astype(object), "returned Python object values"),
    ],
)
def test_vectors_that_cannot_be_scored_are_refused_naming_the_encoder(
    tiny: dict[str, Path], task: str, post: object, expected: str
) -> None:
    """W3/W4: zero-width and all-zero vectors were scored (ties broken by id); complex lost its imaginary part silently."""
    with pytest.raises(EvalkitError, match=f"^encoder tfidf:scaled {expected}") as raised:
        score(tiny[task], Scaled(post))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("task", ["retrieval", "reranking"])
def test_query_and_document_widths_differ(tiny: dict[str, Path], task: str) -> None:
    """Queries of width 24 and documents of width 12 ended in numpy's raw 'matmul' ValueError."""
    from evalkit.encoders.base import Role

    narrow = Scaled(lambda v, t, role: v[:, :12] if role == Role.DOCUMENT else v)
    with pytest.raises(EvalkitError, match=r"^encoder tfidf:scaled returned vectors of width 12 in this task after vectors of width 24"):
        score(tiny[task], narrow)


@pytest.mark.parametrize("task", ["sts", "summarization"])
def test_constant_similarities_blame_the_encoder_not_the_data(tiny: dict[str, Path], task: str) -> None:
    """One vector for every text made the main score undefined, reported as 'fix the data'."""
    same = Scaled(lambda v, t, r: np.ones_like(v))
    with pytest.raises(EvalkitError, match=r"^encoder tfidf:scaled gives .* the same (cosine )?similarity") as raised:
        score(tiny[task], same)
    assert "not the task's data" in (raised.value.hint or "")


def test_float64_values_beyond_float32_through_evaluate_get_the_true_score(tiny: dict[str, Path]) -> None:
    """float64 x 1e-310 (0 in float32) and x 1e40 (infinite in float32) score as the unscaled vectors, via evalkit.evaluate."""
    clean = run(Scaled(), tiny["retrieval"], name="clean")
    for factor in (1e-310, 1e40):
        cell = run(Scaled(lambda v, t, r, f=factor: v * f), tiny["retrieval"], name="tiny")
        assert cell.status == "ok" and cell.main_score == pytest.approx(clean.main_score, abs=1e-6), (factor, cell.error)


def test_classification_refuses_values_float32_reads_as_zero() -> None:
    """A scale-dependent type is never rescaled: float64 x 1e-310 (0 in float32) is refused naming the encoder, not scored."""
    from evalkit.adapters.base import VectorCheck

    check = VectorCheck(Scaled(lambda v, t, r: v * 1e-310), "classification", scaling="none")  # type: ignore[arg-type]
    with pytest.raises(EvalkitError, match=r"^encoder tfidf:scaled returned vectors of magnitude .* beyond float32's range"):
        check.encode(["a", "b"])


@settings(max_examples=80, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=st.floats(-4, 4, allow_nan=False)),
    st.lists(st.integers(-1000, 1000), min_size=1, max_size=6),
)
def test_every_vector_reaches_the_scorer_in_range_and_in_its_own_direction(base: np.ndarray, powers: list[int]) -> None:
    """Any finite float64 rows at any magnitudes: each comes back float32 with its largest value in the band float32 scores
    (2**-60..2**56, or zero), a power of two times the row as given; rows all in range come back untouched."""
    from evalkit.adapters.base import ROW_SAFE_BAND

    RESCALE_BELOW, RESCALE_ABOVE = ROW_SAFE_BAND

    picks = np.asarray([powers[i % len(powers)] for i in range(len(base))])
    rows = np.ldexp(base, picks[:, np.newaxis])
    texts = [f"t{i}" for i in range(len(rows))]
    if not rows.any():
        return
    from evalkit.adapters.base import VectorCheck

    out = VectorCheck(_Fixed(rows), "sts", scaling="row").encode(texts)  # type: ignore[arg-type]
    assert out.dtype == np.float32 and np.isfinite(out).all()
    peaks = np.abs(out).max(axis=1)
    nonzero = np.abs(rows).max(axis=1) > 0
    assert ((peaks >= RESCALE_BELOW) & (peaks <= RESCALE_ABOVE))[nonzero].all()
    for row, given_row in zip(out[nonzero], rows[nonzero], strict=True):  # 2**s times the row given (float32 may round its peak up)
        near = np.frexp(np.abs(row).max())[1] - np.frexp(np.abs(given_row).max())[1]
        assert any(np.array_equal(row, np.ldexp(given_row, s).astype(np.float32)) for s in (near - 1, near, near + 1))
    magnitudes = np.abs(rows).max(axis=1)[nonzero]
    from evalkit.adapters.base import RESCALE_ABOVE as TOP
    from evalkit.adapters.base import RESCALE_BELOW as BOTTOM

    # the largest in 2**-16..2**32 (no common factor) and every row in float32's band: scored exactly as given, as MTEB does
    if BOTTOM <= magnitudes.max() <= TOP and ((magnitudes >= RESCALE_BELOW) & (magnitudes <= RESCALE_ABOVE)).all():
        assert np.array_equal(out, rows.astype(np.float32))


# ---- the embedding cache keeps what the scorer reads, or nothing ---------------------------------------------------


@pytest.mark.parametrize("factor", [1e-310, 1e-42, 1e40, 1e300])
def test_the_cache_never_stores_what_float32_would_destroy(tmp_path: Path, factor: float) -> None:
    """The cache cast every result to float32 before the check: 1e-310 became zeros (and was stored), 1e40 infinite."""
    from evalkit.cache import CachedEncoder, EmbeddingCache

    texts = [f"text {i}" for i in range(6)]
    inner = Scaled(lambda v, t, r: v * factor)
    cache = EmbeddingCache(tmp_path)
    first = CachedEncoder(inner, cache).encode(texts)  # type: ignore[arg-type]
    assert np.array_equal(first, inner.encode(texts))  # as the encoder returned it, for the check to rescale
    again = CachedEncoder(inner, EmbeddingCache(tmp_path))  # type: ignore[arg-type]
    assert np.array_equal(again.encode(texts), first) and again.hits == 0  # nothing stored
    assert cache.info().entries == 0


def test_the_cache_stores_in_range_vectors_and_merges_without_a_cast(tmp_path: Path) -> None:
    """In-range float64 vectors are stored as float32 (what the check would make of them); a later call whose new rows need
    rescaling gets cached and fresh rows merged in float64, the fresh ones unrounded."""
    from evalkit.adapters.base import RESCALE_ABOVE, RESCALE_BELOW
    from evalkit.cache import STORED_RANGE, CachedEncoder, EmbeddingCache

    assert STORED_RANGE == (RESCALE_BELOW, RESCALE_ABOVE)
    texts = [f"text {i}" for i in range(6)]
    plain = Scaled()
    stored = CachedEncoder(plain, EmbeddingCache(tmp_path)).encode(texts[:3])  # type: ignore[arg-type]
    assert stored.dtype == np.float32 and np.array_equal(stored, plain.encode(texts[:3]).astype(np.float32))  # type: ignore[union-attr]
    tiny_rows = Scaled(lambda v, t, r: np.where(np.asarray([x in texts[3:] for x in t])[:, None], v * 1e-310, v))
    mixed = CachedEncoder(tiny_rows, EmbeddingCache(tmp_path))  # type: ignore[arg-type]
    out = mixed.encode(texts)
    assert mixed.hits == 3 and out.dtype == np.float64
    assert np.array_equal(out[3:], tiny_rows.encode(texts[3:])) and np.array_equal(out[:3], stored)
