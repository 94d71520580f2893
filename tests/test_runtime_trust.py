"""Runtime exports are trusted only as written: digests checked before every use, nothing written outside the cache, no traceback.

Issue 19 item 5 (a scrambled int8 weight was scored: quantised exports are not held to the
parity bound) and item 6 (``bench --compare`` with an int8 candidate), issue 17 item 5 (a first
export sat silent for a minute). Real exports of the tiny random BERT (seconds), no mocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalkit.encoders import load_encoder
from evalkit.errors import ModelUnavailableError
from tests.conftest import REPO

pytestmark = pytest.mark.slow

TEXTS = ["a first sentence", "and a second, longer one with more words in it", "third"]


def _export_dirs(cache: Path, model: Path, precision: str) -> list[Path]:
    return sorted(p for p in (cache / "runtimes").glob(f"{model.name}-{precision}-*") if p.is_dir())


def _scramble_one_int8_weight(path: Path) -> None:
    """Change one value of one quantised weight matrix; the file stays a valid model of the same size."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    tensor = next(t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and t.dims)
    values = numpy_helper.to_array(tensor).copy()
    flat = values.reshape(-1)
    flat[len(flat) // 2] = flat[len(flat) // 2] ^ np.array(0x55, dtype=flat.dtype)
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    onnx.save(model, str(path))


def test_a_corrupted_int8_export_is_refused_naming_the_file_and_the_fix(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(cache))
    spec = f"onnx:{tiny_bert}?quantize=int8"
    encoder: Any = load_encoder(spec)
    try:
        clean = encoder.encode(TEXTS)
    finally:
        encoder.close()
    (int8,) = _export_dirs(cache, tiny_bert, "int8")
    _scramble_one_int8_weight(int8 / "model.onnx")
    with pytest.raises(ModelUnavailableError) as caught:
        load_encoder(spec)
    message = caught.value.render()
    assert "\n" not in message
    assert str(int8 / "model.onnx") in message and "digest" in message
    assert f"delete the folder {int8}" in message
    # deleting the folder, as the message says, exports again and gives the clean vectors back
    import shutil

    shutil.rmtree(int8)
    again: Any = load_encoder(spec)
    try:
        np.testing.assert_array_equal(again.encode(TEXTS), clean)
    finally:
        again.close()


def test_a_corrupted_fp32_export_is_refused_before_int8_is_derived_from_it(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(cache))
    load_encoder(f"onnx:{tiny_bert}").close()
    (fp32,) = _export_dirs(cache, tiny_bert, "fp32")
    extra = fp32 / "model.onnx"
    extra.write_bytes(extra.read_bytes() + b"\0")  # appended garbage: onnx may still parse it
    with pytest.raises(ModelUnavailableError, match="does not match the digest") as caught:
        load_encoder(f"onnx:{tiny_bert}?quantize=int8")
    assert str(extra) in caught.value.render()
    assert not _export_dirs(cache, tiny_bert, "int8"), "nothing may be quantised from a corrupted export"


def test_an_export_without_a_digest_record_is_exported_again_not_trusted(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.encoders.runtimes import DIGEST_FILE

    cache = tmp_path / "cache"
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(cache))
    load_encoder(f"onnx:{tiny_bert}").close()
    (fp32,) = _export_dirs(cache, tiny_bert, "fp32")
    record = json.loads((fp32 / DIGEST_FILE).read_text(encoding="utf-8"))
    assert set(record["files"]) == {"model.onnx"}
    (fp32 / DIGEST_FILE).unlink()  # as an export written before digests were recorded
    (fp32 / "model.onnx").write_bytes(b"not a model")
    encoder: Any = load_encoder(f"onnx:{tiny_bert}")
    encoder.close()
    assert json.loads((fp32 / DIGEST_FILE).read_text(encoding="utf-8")) == record


PROBE = r"""
import os, sys
from evalkit.encoders import load_encoder
encoder = load_encoder(sys.argv[1])
encoder.encode(["a sentence", "another one"])
encoder.close()
print(any(name in os.environ for name in ("ORT_DISABLE_TELEMETRY", "CI", "TF_BUILD", "JENKINS_URL")))
"""
TELEMETRY_SWITCHES = ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY", "CI", "TF_BUILD", "JENKINS_URL")


def test_onnx_and_openvino_runs_write_nothing_under_the_home_folder(tiny_bert: Path, tmp_path: Path) -> None:
    """onnxruntime's telemetry wrote ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` on every import; OpenVINO's
    (``openvino_telemetry``, started by ``import openvino``) ``~/intel/openvino_ga_cid`` and ``~/intel/stats``."""
    import importlib.util

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_SWITCHES}
    env |= {"HOME": str(home), "EVALKIT_CACHE_DIR": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    specs = [f"onnx:{tiny_bert}", f"onnx:{tiny_bert}?quantize=int8"]
    if importlib.util.find_spec("openvino") is not None:
        specs.append(f"openvino:{tiny_bert}")
    for spec in specs:
        done = subprocess.run([sys.executable, "-c", PROBE, spec], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == "False", "the environment is left as it was"
        written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
        assert written == [], (spec, written)


def test_openvino_import_writes_nothing_under_the_home_folder_and_keeps_what_the_user_set(tmp_path: Path) -> None:
    """``CI`` set by the user (to anything) is theirs: kept as it was; another of the package's switches is used for the import."""
    home = tmp_path / "home"
    home.mkdir()
    probe = (
        "import os; from evalkit.encoders.runtimes import import_openvino; import_openvino(); "
        "print(os.environ.get('CI'), 'TF_BUILD' in os.environ)"
    )
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_SWITCHES} | {"HOME": str(home)}
    for ci, expected in ((None, "None False"), ("false", "false False"), ("0", "0 False")):
        done = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=REPO,
            env=env if ci is None else env | {"CI": ci},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == expected
        written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
        assert written == [], (ci, written)


# --- the parity memo: sealed, bound to its export, never trusted when it does not verify (issue 19, W7) --------------


def _memo(encoder: Any) -> Path:
    from evalkit import runtime_parity

    return runtime_parity.memo_dir() / f"{encoder._parity_key()[:32]}.json"


def _load_twice_with_an_edited_memo(spec: str, edit: Any, capsys: pytest.CaptureFixture[str]) -> tuple[Any, Any, str]:
    """Load ``spec`` (export + parity measured + memo), edit its memo, load again: both parities and what was said."""
    first: Any = load_encoder(spec)
    try:
        memo = _memo(first)
        data = json.loads(memo.read_text(encoding="utf-8"))
        edit(data)
        memo.write_text(json.dumps(data), encoding="utf-8")
    finally:
        first.close()
    capsys.readouterr()
    second: Any = load_encoder(spec)
    second.close()
    return first.parity, second.parity, capsys.readouterr().err


def _said_once(err: str, memo: Path) -> None:
    lines = [line for line in err.splitlines() if "parity memo" in line]
    assert len(lines) == 1 and str(memo) in lines[0] and "measured again" in lines[0], err


def test_an_edited_parity_memo_is_not_trusted_and_parity_is_measured_again(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The outside tester's case: an int8 memo edited to parity 1e-9 / 1.0 reached the result's fingerprint."""
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    spec = f"onnx:{tiny_bert}?quantize=int8"

    def fake(data: dict[str, Any]) -> None:
        data["parity"] |= {"max_abs_delta_cosine": 1e-9, "spearman": 1.0}

    true, after, err = _load_twice_with_an_edited_memo(spec, fake, capsys)
    assert true.max_abs_delta_cosine > 1e-6, "the tiny int8 export drifts: the fake is distinguishable"
    assert after == true
    again: Any = load_encoder(spec)
    try:
        _said_once(err, _memo(again))
        assert again.parity == true and again.fingerprint()["parity_max_abs_delta_cosine"] == f"{true.max_abs_delta_cosine:.3e}"
    finally:
        again.close()
    assert "parity memo" not in capsys.readouterr().err, "the memo measured again is stored and trusted from then on"


def test_a_parity_memo_edited_to_fail_does_not_refuse_a_good_fp32_export(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))

    def spoil(data: dict[str, Any]) -> None:
        data["parity"] |= {"max_abs_delta_cosine": 0.5, "spearman": 0.1}

    true, after, err = _load_twice_with_an_edited_memo(f"onnx:{tiny_bert}", spoil, capsys)
    assert true.within() and after == true
    assert [line for line in err.splitlines() if "parity memo" in line and "does not match its digest" in line], err


def test_a_parity_memo_of_another_export_is_not_used(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sealed anew (a valid digest) but naming another export, or copied over another export's memo: measured again."""
    from evalkit import runtime_parity

    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    fp32: Any = load_encoder(f"onnx:{tiny_bert}")
    int8: Any = load_encoder(f"onnx:{tiny_bert}?quantize=int8")
    fp32.close()
    int8.close()
    assert fp32.parity != int8.parity
    # the int8 memo's content (sealed, valid) put in the fp32 memo's place
    _memo(fp32).write_bytes(_memo(int8).read_bytes())
    capsys.readouterr()
    again: Any = load_encoder(f"onnx:{tiny_bert}")
    again.close()
    assert again.parity == fp32.parity
    _said_once(capsys.readouterr().err, _memo(fp32))
    # a memo resealed for another export record: the seal verifies, the binding does not
    data = json.loads(_memo(int8).read_text(encoding="utf-8"))
    parity = runtime_parity.Parity.model_validate(data["parity"]).model_copy(update={"max_abs_delta_cosine": 1e-9})
    forged = runtime_parity.ParityMemo(
        format=data["format"],
        key=data["key"],
        export="0" * 64,
        parity=parity,
        digest=runtime_parity.memo_digest(data["key"], "0" * 64, parity),
    )
    _memo(int8).write_text(forged.model_dump_json(), encoding="utf-8")
    again = load_encoder(f"onnx:{tiny_bert}?quantize=int8")
    again.close()
    assert again.parity == int8.parity
    err = capsys.readouterr().err
    _said_once(err, _memo(int8))
    assert "another export" in err


def test_a_first_export_says_what_it_is_doing(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalkit.context import RunContext

    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    spec = f"onnx:{tiny_bert}?quantize=int8"
    with RunContext(signals=False):
        load_encoder(spec).close()
    lines = capsys.readouterr().err.splitlines()
    steps = ["exporting the transformer to ONNX", "quantising the ONNX export to int8", "measuring parity against torch fp32"]
    for step in steps:
        assert any(spec in line and step in line for line in lines), (step, lines)
    with RunContext(signals=False):  # cached: nothing to say
        load_encoder(spec).close()
    assert not [line for line in capsys.readouterr().err.splitlines() if any(step in line for step in steps)]
    with RunContext(signals=False, progress=False):  # --no-progress: quiet
        load_encoder(f"onnx:{tiny_bert}?max_length=16").close()
    assert capsys.readouterr().err == ""


# --- bench --compare: a side that fails is one line; the issue's own command runs, twice in one cache -----------------

QUICK = ["--rounds", "4", "--texts", "16", "--warmup", "0", "--repeats", "1", "--n-boot", "200"]


def test_bench_compare_a_side_that_fails_to_load_is_one_line_not_a_traceback(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from evalkit.cli import main

    broken = tmp_path / "broken-bert"
    shutil.copytree(tiny_bert, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a truncated download
    for candidate in (f"hf:{broken}", f"onnx:{broken}?quantize=int8"):
        out = tmp_path / "out"
        code = main(["bench", "--compare", f"hf:{tiny_bert}", candidate, *QUICK, "--memory-probes", "0", "-o", str(out)])
        err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("bench: ")]
        assert code == 2, err
        assert len(err) == 1 and "Traceback" not in err[0], err
        assert f"candidate {candidate}" in err[0] or f"cannot export '{broken}'" in err[0], err
        assert not list(out.glob("speed-compare.*")), "no comparison file from a side that did not run"


def test_bench_compare_hf_against_onnx_int8_runs_and_runs_again_from_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's command (fewer rounds): the second run reuses the export and the parity memo (the path that raised)."""
    from evalkit.cli import main
    from evalkit.speed import comparison_files, read_comparison

    for attempt in (1, 2):
        out = tmp_path / f"out{attempt}"
        code = main(["bench", "--compare", "hf:all-MiniLM-L6-v2", "onnx:all-MiniLM-L6-v2?quantize=int8", *QUICK, "-o", str(out)])
        err = capsys.readouterr().err
        assert code == 0 and "Traceback" not in err, err[-3000:]
        (path,) = comparison_files(out)
        comparison = read_comparison(path)
        assert comparison.candidate == "onnx:all-MiniLM-L6-v2?quantize=int8" and comparison.memory is not None
