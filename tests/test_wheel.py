"""A wheel built from this repository carries its tasks and data: installed outside the checkout, it runs a built-in task."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    """pyproject lists the packages explicitly (tasks/ is mapped in): a new subpackage or data folder must not be left out.

    Data folders (tasks/data/..., report/templates) are listed too: setuptools warns about data in unlisted folders.
    """
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "evalkit").rglob("__init__.py")}
    data = {"evalkit.report.templates"} | {
        ".".join(("evalkit", *d.relative_to(REPO).parts))
        for d in [REPO / "tasks", *(REPO / "tasks").rglob("*")]
        if d.is_dir() and d.name != "__pycache__"
    }
    assert found | data == listed


def test_the_wheel_builds_without_a_setuptools_warning(tmp_path: Path) -> None:
    """The new user's 26 BuildBackendWarning blocks: a clean build prints none."""
    source = tmp_path / "src"  # a copy: an in-tree build leaves build/ and an egg-info whose entry points shadow the install
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("evalkit", "tasks"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-v",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "Warning" not in built.stdout + built.stderr, [line for line in (built.stdout + built.stderr).splitlines() if "Warning" in line][
        :5
    ]


def test_a_wheel_installed_outside_the_checkout_runs_a_builtin_task(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("evalkit", "tasks"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(source)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("evalkit-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # Dependencies (torch, transformers, ...) come from this test's environment; evalkit itself only from the wheel:
    # a plain path entry does not run the editable install's import hook that lives in that folder.
    Path(purelib, "evalkit-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    installed = subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "EVALKIT_TASKS_PATH"}}
    where = subprocess.run(
        [str(python), "-c", "import evalkit; print(evalkit.__file__)"], cwd=work, env=env, capture_output=True, text=True
    )
    assert where.returncode == 0 and where.stdout.strip().startswith(purelib), where.stdout + where.stderr

    run = subprocess.run(
        [str(venv / "bin" / "evalkit"), "run", "-e", "tfidf:lexical", "-t", "STSBenchmark", "-o", "out", "--no-progress"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert list((work / "out").glob("*/STSBenchmark.test.json"))
    api = subprocess.run(
        [
            str(python),
            "-c",
            "import evalkit; r = evalkit.evaluate('tfidf:lexical', ['SICK-R-test'], progress=False); "
            "assert not r.failed, r.failed; print(round(r.cells[0].main_score, 4))",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert api.returncode == 0, api.stderr[-3000:]
    assert 0.3 < float(api.stdout.strip()) < 0.9
