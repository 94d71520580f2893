"""``evalkit --help`` and ``evalkit list`` stay fast: they must not import torch (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "sentence_transformers", "mteb", "sklearn", "datasets", "ray")

PROBE = """
import contextlib, io, json, sys
from evalkit.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as exc:
        code = exc.code
print(json.dumps({{"code": code, "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["run", "--help"], ["bench", "--help"], ["cache", "--help"]])
def test_light_commands_import_no_heavy_library(argv: list[str]) -> None:
    probe = PROBE.format(argv=argv, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["code"] == 0
    assert outcome["loaded"] == [], f"`evalkit {' '.join(argv)}` imported {outcome['loaded']}"


def test_the_probe_can_fail() -> None:
    """The same probe sees torch when a command does import it (so the test above can fail)."""
    probe = PROBE.format(argv=["--help"], heavy=HEAVY).replace("from evalkit.cli import main", "import torch\nfrom evalkit.cli import main")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert "torch" in json.loads(done.stdout.strip().splitlines()[-1])["loaded"]
