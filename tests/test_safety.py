"""Untrusted inputs: pickle weights, remote code, and texts that look like code, HTML or shell.

Model folders are real (a tiny random BERT saved by ``save_pretrained``); every
"payload" would leave a marker file if it ever ran, and the tests check it did not.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.encoders import load_encoder
from evalkit.errors import ModelUnavailableError

REPO = Path(__file__).resolve().parent.parent


def tiny_bert(folder: Path, *, safe: bool, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from evalkit.catalogue import resolve

    tokenizer = AutoTokenizer.from_pretrained(str(resolve("all-MiniLM-L6-v2")))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    model = BertModel(config)
    model.save_pretrained(folder)  # transformers 5 always writes safetensors here
    if not safe:  # a pickle checkpoint, as older tools and `torch.save` write them
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    tokenizer.save_pretrained(folder)
    return folder


class Payload:
    """Unpickling this runs ``touch MARKER``: what a malicious .bin would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_only_weights_are_refused_unless_allowed(tmp_path: Path) -> None:
    folder = tiny_bert(tmp_path / "pickled", safe=False)
    assert (folder / "pytorch_model.bin").exists() and not list(folder.glob("*.safetensors"))
    with pytest.raises(ModelUnavailableError, match="allow_pickle=true"):
        load_encoder(f"hf:{folder}")
    encoder = load_encoder(f"hf:{folder}?allow_pickle=true")  # the user opted in
    try:
        assert encoder.encode(["a cat", "a dog"]).shape == (2, 32)
    finally:
        encoder.close()


def test_a_malicious_pickle_never_runs(tmp_path: Path) -> None:
    folder = tiny_bert(tmp_path / "evil", safe=True)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "evalkit",
            "run",
            "-e",
            f"hf:{folder}",
            "-t",
            str(sts_task(tmp_path, SAFE_TEXTS)),
            "-o",
            str(tmp_path / "out"),
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 1, proc.stderr  # the cell failed, recorded; the payload did not run
    assert "pickle can run code" in proc.stderr and "allow_pickle=true" in proc.stderr
    assert not marker.exists()


def test_safetensors_are_preferred_over_pickle(tmp_path: Path) -> None:
    folder = tiny_bert(tmp_path / "both", safe=True, seed=0)
    tiny_bert(tmp_path / "other", safe=False, seed=1)
    (tmp_path / "other" / "pytorch_model.bin").rename(folder / "pytorch_model.bin")  # different weights, pickled
    reference = load_encoder(f"hf:{tiny_bert(tmp_path / 'safe-only', safe=True, seed=0)}")
    encoder = load_encoder(f"hf:{folder}")
    try:
        texts = ["a cat sits", "stocks fell"]
        np.testing.assert_array_equal(encoder.encode(texts), reference.encode(texts))
    finally:
        encoder.close()
        reference.close()


def test_remote_code_is_off_unless_the_spec_asks(tmp_path: Path) -> None:
    folder = tiny_bert(tmp_path / "custom", safe=True)
    marker = tmp_path / "custom-code-ran"
    code = (
        f"open({str(marker)!r}, 'w').close()\nfrom transformers import BertConfig\nclass EvilConfig(BertConfig):\n    model_type = 'evil'\n"
    )
    (folder / "configuration_evil.py").write_text(code)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "evil"  # no built-in class: only the folder's code could load it
    config["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "configuration_evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelUnavailableError, match="trust_remote_code=true"):
        load_encoder(f"hf:{folder}")
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 - opted in: the code runs (then fails: it is no real model)
        load_encoder(f"hf:{folder}?trust_remote_code=true")
    assert marker.exists()  # proves the check above could have seen the code run


SAFE_TEXTS = [
    ("$(touch {m}-shell)", "`touch {m}-backtick`"),
    ("{__import__('os').system('touch {m}-format')}", "__import__('os').system('touch {m}-eval')"),
    ("<script>alert('x')</script>", "<img src=x onerror=alert(1)>"),
    ("'; DROP TABLE results; --", "%s %d {0} ${HOME}"),
]


def sts_task(folder: Path, texts: list[tuple[str, str]], marker: Path | None = None) -> Path:
    m = str(marker or folder / "marker")
    rows = ["sentence1\tsentence2\tscore"] + [
        f"{a.replace('{m}', m)}\t{b.replace('{m}', m)}\t{i % 5}" for i, (a, b) in enumerate(texts * 3)
    ]
    (folder / "evil.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    task = folder / "evil.toml"
    task.write_text('name = "<b>Evil</b> & \\"co\\""\ntype = "sts"\nsplit = "test"\n[files]\ntest = "evil.tsv"\n', encoding="utf-8")
    return task


def test_texts_and_names_are_data(tmp_path: Path) -> None:
    """Hostile texts, task name and spec go through a run and an HTML report: nothing runs, the HTML is escaped."""
    marker = tmp_path / "m"
    task = sts_task(tmp_path, SAFE_TEXTS, marker)
    out = tmp_path / "out"
    spec = "tfidf:<script>alert(1)</script>"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = [sys.executable, "-m", "evalkit", "run", "-e", spec, "-t", str(task), "-o", str(out), "--no-progress", "--no-cache"]
    proc = subprocess.run(run, capture_output=True, text=True, cwd=REPO, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    report = [sys.executable, "-m", "evalkit", "report", str(out), "--format", "html", "-o", str(tmp_path / "html")]
    proc = subprocess.run(report, capture_output=True, text=True, cwd=REPO, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.glob("m-*")), "a text was executed"
    html = "\n".join(p.read_text(encoding="utf-8") for p in (tmp_path / "html").glob("*.html"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "&lt;b&gt;Evil&lt;/b&gt;" in html and "<b>Evil" not in html


FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def test_the_source_never_evaluates_or_shells_out() -> None:
    """No eval/exec, no shell, no pickle/torch.load anywhere in evalkit: texts can only ever be data."""
    problems = []
    for path in sorted((REPO / "evalkit").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr if isinstance(node.func, ast.Attribute) else ""
            owner = node.func.value.id if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) else ""
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if name in FORBIDDEN_CALLS and (isinstance(node.func, ast.Name) or owner == "builtins"):  # not model.eval()
                problems.append(f"{where} calls {name}")
            if (owner, name) in {("os", "system"), ("os", "popen"), ("pickle", "load"), ("pickle", "loads"), ("torch", "load")}:
                problems.append(f"{where} calls {owner}.{name}")
            if any(k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords):
                problems.append(f"{where} uses shell=True")
    assert not problems, problems
