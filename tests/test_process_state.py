"""A library call leaves the process as it found it; only a run context changes process-wide settings, and restores them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

PROBE = r"""
import gc, logging, os, signal, sys, json
import torch, transformers

def state():
    mask = os.umask(0); os.umask(mask)
    log = transformers.utils.logging
    return {
        "gc_enabled": gc.isenabled(),
        "gc_frozen": gc.get_freeze_count(),
        "torch_threads": torch.get_num_threads(),
        "umask": mask,
        "transformers_verbosity": log.get_verbosity(),
        "transformers_bars": log.is_progress_bar_enabled(),
        "root_level": logging.getLogger().level,
        "sigterm": repr(signal.getsignal(signal.SIGTERM)),
    }

torch.set_num_threads(2)
before = state()
from evalkit.encoders import load_encoder
for spec in sys.argv[1:]:
    encoder = load_encoder(spec)
    encoder.encode(["a first sentence", "and a second, longer one with more words in it", "third"] * 8)
    encoder.close()
after_library = state()
import evalkit
evalkit.evaluate(sys.argv[1:2], ["STS12"], progress=False, cache=False)
after_evaluate = state()
print(json.dumps({"before": before, "library": after_library, "evaluate": after_evaluate}))
"""


def test_library_calls_and_evaluate_leave_process_state_unchanged(tiny_bert: Path) -> None:
    import json

    env = {**os.environ, "EVALKIT_CPU_STREAMS": "2"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, f"hf:{tiny_bert}", "sbert:all-MiniLM-L6-v2"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    states = json.loads(done.stdout.strip().splitlines()[-1])
    assert states["library"] == states["before"]
    assert states["evaluate"] == states["before"]


def test_the_cli_run_context_restores_what_it_changed() -> None:
    import gc
    import signal

    import transformers

    from evalkit.context import RunContext, quiet_libraries

    log = transformers.utils.logging
    level, bars, handler = log.get_verbosity(), log.is_progress_bar_enabled(), signal.getsignal(signal.SIGTERM)
    frozen = gc.get_freeze_count()
    with RunContext():
        quiet_libraries()
        assert log.get_verbosity() == log.ERROR
        assert signal.getsignal(signal.SIGTERM) is not handler
    assert (log.get_verbosity(), log.is_progress_bar_enabled(), signal.getsignal(signal.SIGTERM)) == (level, bars, handler)
    assert gc.get_freeze_count() == frozen and gc.isenabled()
