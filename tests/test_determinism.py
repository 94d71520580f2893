"""The same run twice on the same machine gives bit-identical scores, and every seed is in the result.

Two separate ``evalkit run`` processes (the real MiniLM and a seeded TF-IDF+SVD, on
an STS task and a classification task whose experiments are sampled and whose
classifier is seeded) must write results whose scores and per-unit values are equal
as floats, not approximately.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from evalkit.results import ResultStore

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tasks" / "data"
ENCODERS = ("sbert:all-MiniLM-L6-v2", "tfidf:lexical?svd=16&seed=3")


def tasks(folder: Path) -> list[Path]:
    lines = (DATA / "sts/stsbenchmark/test.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "sts.tsv").write_text("\n".join(lines[:61]) + "\n", encoding="utf-8")
    (folder / "sts.toml").write_text('name = "DetSTS"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "sts.tsv"\n')
    sst = DATA / "classification/sst2"
    (folder / "train.jsonl").write_text("".join(sst.joinpath("train.jsonl").read_text().splitlines(True)[:120]))
    (folder / "test.jsonl").write_text("".join(sst.joinpath("test.jsonl").read_text().splitlines(True)[:60]))
    (folder / "cls.toml").write_text(
        'name = "DetCls"\ntype = "classification"\nsplit = "test"\n[files]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n'
        "[settings]\nn_experiments = 3\nseed = 7\n"
    )
    return [folder / "sts.toml", folder / "cls.toml"]


def run(out: Path, task_files: list[Path]) -> None:
    # --no-cache: the second run must compute its vectors again, not read the first run's back
    args = [sys.executable, "-m", "evalkit", "run", "-o", str(out), "--no-progress", "--no-report", "--no-cache"]
    for spec in ENCODERS:
        args += ["-e", spec]
    for task in task_files:
        args += ["-t", str(task)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr


def test_two_runs_are_bit_identical_and_record_their_seeds(tmp_path: Path) -> None:
    task_files = tasks(tmp_path)
    run(tmp_path / "a", task_files)
    run(tmp_path / "b", task_files)
    first = {(r.encoder, r.task): r for r in ResultStore(tmp_path / "a").load_all()}
    second = {(r.encoder, r.task): r for r in ResultStore(tmp_path / "b").load_all()}
    assert len(first) == len(ENCODERS) * 2 and first.keys() == second.keys()
    for key, a in first.items():
        b = second[key]
        assert a.scores == b.scores, key  # exact float equality
        assert a.main_score == b.main_score and a.units == b.units, key
        assert a.comparable() == b.comparable(), key
        assert a.seeds["global"] == 0
    assert first[("tfidf:lexical?seed=3&svd=16", "DetSTS")].seeds == {"global": 0, "encoder": 3}
    assert first[("sbert:all-MiniLM-L6-v2", "DetCls")].seeds == {"global": 0, "task": 7}
