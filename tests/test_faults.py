"""Fault injection: real `evalkit run` processes killed by real signals, corrupted files, a full disk, two writers.

After every fault the invariants are the same: each result file present is whole and
valid, no temporary file survives the next run, cells finished before the fault are
kept byte for byte, and resuming ends with the same results as a clean run
(``CellResult.comparable``: everything but timestamps, timings and environment).

Exact moments (half a file written, just before the rename) are reached with
``EVALKIT_FAULT`` (evalkit/faults.py): the process sends itself the signal there.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit.results.schema import CellResult

REPO = Path(__file__).resolve().parent.parent
STSB = REPO / "tasks" / "data" / "sts" / "stsbenchmark" / "test.tsv"
# Two TF-IDF variants: real encoders with no model to load, so a run is ~2 s and killing it is cheap.
ENCODERS = ("tfidf:lexical", "tfidf:lexical?ngram_max=2")
N_CELLS = 4


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("fault-tasks")
    lines = STSB.read_text(encoding="utf-8").splitlines()
    files = []
    for name, rows in (("FaultA", lines[1:41]), ("FaultB", lines[41:101])):  # B's result files are the larger
        (folder / f"{name}.tsv").write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
        toml = folder / f"{name}.toml"
        toml.write_text(f'name = "{name}"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "{name}.tsv"\n', encoding="utf-8")
        files.append(toml)
    return files


def run_args(out: Path, tasks: list[Path], encoders: tuple[str, ...] = ENCODERS) -> list[str]:
    args = [sys.executable, "-m", "evalkit", "run", "-o", str(out), "--no-progress", "--no-report", "--no-cache"]
    for encoder in encoders:
        args += ["-e", encoder]
    for task in tasks:
        args += ["-t", str(task)]
    return args


def run(out: Path, tasks: list[Path], fault: str | None = None, encoders: tuple[str, ...] = ENCODERS) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("EVALKIT_FAULT", None)
    if fault:
        env["EVALKIT_FAULT"] = fault
    return subprocess.Popen(run_args(out, tasks, encoders), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=180)
    return proc.returncode, err


def state(out: Path) -> dict[str, bytes]:
    """Every file in the results folder; asserts that each result file present is whole and valid."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = str(path.relative_to(out))
        files[rel] = path.read_bytes()
        if path.suffix == ".json" and not path.name.startswith("."):
            CellResult.read(path)  # raises on a half-written or corrupt file
    return files


def results(out: Path) -> dict[str, dict[str, object]]:
    files = state(out)
    assert not [f for f in files if f.endswith(".tmp")], files.keys()
    assert set(files) - {".evalkit.lock"} == {f for f in files if f.endswith(".json")}
    return {f: CellResult.read(out / f).comparable() for f in files if f.endswith(".json")}


@pytest.fixture(scope="module")
def clean(tasks: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, object]]]:
    out = tmp_path_factory.mktemp("clean") / "out"
    code, err = finish(run(out, tasks))
    assert code == 0, err
    expected = results(out)
    assert len(expected) == N_CELLS and all(r["status"] == "ok" for r in expected.values())
    return out, expected


def resume_and_compare(out: Path, tasks: list[Path], before: dict[str, bytes], expected: dict[str, dict[str, object]]) -> None:
    code, err = finish(run(out, tasks))
    assert code == 0, err
    assert results(out) == expected
    after = state(out)
    for name, content in before.items():  # no finished cell lost or redone
        if name.endswith(".json") and not name.startswith(".") and "/." not in name:
            assert after[name] == content, f"{name} changed on resume"


@pytest.mark.parametrize(
    ("fault", "code", "message"),
    [
        ("run.locked:1:TERM", 143, "terminated (SIGTERM)"),  # lock taken, nothing evaluated yet
        ("model.loaded:2:INT", 130, "interrupted"),  # second model loaded, first group done
        ("cell.evaluated:3:KILL", -9, None),  # a cell scored but not yet written
        ("store.mid_write:2:KILL", -9, None),  # half of a result file written and flushed
        ("store.mid_write:3:TERM", 143, "terminated (SIGTERM)"),  # graceful stop in the middle of a write
        ("store.before_rename:4:KILL", -9, None),  # whole temporary file, not yet renamed
        ("store.renamed:1:KILL", -9, None),  # renamed, folder not yet fsynced
    ],
)
def test_killed_run_resumes_to_the_clean_result(tasks, clean, tmp_path, fault, code, message) -> None:
    out = tmp_path / "out"
    rc, err = finish(run(out, tasks, fault))
    assert rc == code, err
    assert "Traceback" not in err
    if message:
        assert message in err and "re-run the same command to resume" in err
    before = state(out)  # validates every result file the killed run left
    finished = [f for f in before if f.endswith(".json") and not f.startswith(".") and "/." not in f]
    assert len(finished) < N_CELLS
    if fault.startswith("store.mid_write:2:KILL"):
        partial = [f for f in before if f.endswith(".tmp")]
        assert len(partial) == 1 and len(finished) == 1, before.keys()  # the kill really hit mid-write
        with pytest.raises(ValueError):
            json.loads(before[partial[0]])
    resume_and_compare(out, tasks, before, clean[1])


def test_kill_at_a_random_moment_resumes(tasks, clean, tmp_path) -> None:
    out = tmp_path / "out"
    delay = random.uniform(0.3, 3.0)
    proc = run(out, tasks)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    rc, _ = finish(proc)
    print(f"SIGKILL after {delay:.2f} s, exit {rc}, {len(list(out.rglob('*.json')))} cells written")
    before = state(out) if out.exists() else {}
    resume_and_compare(out, tasks, before, clean[1])


def test_corrupt_result_files_are_redone(tasks, clean, tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(clean[0], out)
    files = sorted(p for p in out.rglob("*.json"))
    files[0].write_text(files[0].read_text()[:200])  # truncated
    files[1].write_bytes(b"\x00\xff garbage")  # not text
    data = json.loads(files[2].read_text())
    files[2].write_text(json.dumps({**data, "main_score": str(data["main_score"])}))  # valid JSON, wrong type
    with pytest.raises(Exception, match="main_score"):
        CellResult.read(files[2])
    untouched = files[3].read_bytes()
    code, err = finish(run(out, tasks))
    assert code == 0, err
    assert err.count("is unreadable or invalid") == 3, err  # the user is told which files were redone
    assert results(out) == clean[1]
    assert files[3].read_bytes() == untouched


def test_disk_full_mid_run_loses_nothing(tasks, clean, tmp_path) -> None:
    """A tmpfs of 64 KiB, filled but for a few pages: the run fails cleanly, then resumes once space is freed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode == 0
    try:
        out = disk / "out"
        filler = disk / "filler"
        if mounted:
            filler.write_bytes(b"\0" * (64 - 3 * 4) * 1024)  # room for the lock file and about two results
            proc = run(out, tasks)
        else:  # no mount allowed: a per-file size limit fails the write the same way (EFBIG instead of ENOSPC)
            sizes = {p.name: p.stat().st_size for p in clean[0].rglob("*.json")}
            limit_kib = (sizes["FaultA.test.json"] + sizes["FaultB.test.json"]) // 2048  # A's results fit, B's do not
            script = f'ulimit -f {limit_kib} && exec "$@"'
            proc = subprocess.Popen(["bash", "-c", script, "bash", *run_args(out, tasks)], stderr=subprocess.PIPE, text=True, cwd=REPO)
        rc, err = finish(proc)
        assert rc == 2, err
        assert "Traceback" not in err and "cannot write result file" in err, err
        assert "No space left on device" in err or "File too large" in err, err
        before = state(out)
        assert not [f for f in before if f.endswith(".tmp")]  # the failed write removed its temporary file
        written = [f for f in before if f.endswith(".json")]
        assert 1 <= len(written) < N_CELLS, before.keys()
        filler.unlink(missing_ok=True)
        if not mounted:
            shutil.move(str(out), tmp_path / "out")
            out = tmp_path / "out"
        resume_and_compare(out, tasks, before, clean[1])
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


def test_two_writers_on_one_folder_collide_loudly(tasks, clean, tmp_path) -> None:
    out = tmp_path / "out"
    first = run(out, tasks, "cell.evaluated:2:STOP")  # stops itself holding the lock, one cell written
    deadline = time.monotonic() + 120
    while _state_of(first.pid) != "T":
        assert first.poll() is None and time.monotonic() < deadline, "first writer did not reach its stop point"
        time.sleep(0.05)
    before = state(out)
    code, err = finish(run(out, tasks))
    assert code == 2, err
    assert f"in use by another evalkit run (pid {first.pid}" in err and "Traceback" not in err
    assert state(out) == before  # the second run wrote nothing
    first.send_signal(signal.SIGCONT)
    code, err = finish(first)
    assert code == 0, err
    resume_and_compare(out, tasks, before, clean[1])


def _state_of(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()[0]


def test_a_failing_cell_is_recorded_and_the_matrix_continues(tasks, clean, tmp_path) -> None:
    out = tmp_path / "out"
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    code, err = finish(run(out, tasks, encoders=("tfidf:lexical", f"static:{broken}")))
    assert code == 1, err
    assert "cell failed: static:" in err and "Traceback" not in err
    stored = {f: CellResult.read(out / f) for f in state(out) if f.endswith(".json")}
    failed = [r for r in stored.values() if not r.ok]
    assert len(stored) == N_CELLS and len(failed) == 2
    assert all(r.error and r.main_score is None for r in failed)
    good = {f: r.comparable() for f, r in stored.items() if r.ok}
    assert good == {f: r for f, r in clean[1].items() if f.startswith("tfidf_lexical-")}
