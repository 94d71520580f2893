"""The README's Python example runs as written (in a fresh interpreter, from a scratch folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_python_example_runs(tmp_path: Path) -> None:
    (example,) = python_blocks()
    done = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, env=os.environ, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "minilm" in done.stdout and "tfidf:lexical" in done.stdout
    assert list((tmp_path / "out" / "notebook").glob("*/STSBenchmark.test.json"))
