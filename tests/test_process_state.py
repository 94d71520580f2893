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
import gc, hashlib, logging, os, random, signal, sys, json
import numpy as np
import torch, transformers

def digest(data):
    return hashlib.sha256(data).hexdigest()[:16]

def state():
    mask = os.umask(0); os.umask(mask)
    log = transformers.utils.logging
    numpy_state = np.random.get_state()
    return {
        "gc_enabled": gc.isenabled(),
        "gc_frozen": gc.get_freeze_count(),
        "random": digest(repr(random.getstate()).encode()),
        "numpy_random": digest(numpy_state[1].tobytes() + repr(numpy_state[2:]).encode()),
        "torch_random": digest(torch.get_rng_state().numpy().tobytes()),
        "torch_threads": torch.get_num_threads(),
        "umask": mask,
        "transformers_verbosity": log.get_verbosity(),
        "transformers_bars": log.is_progress_bar_enabled(),
        "root_level": logging.getLogger().level,
        "logger_levels": {n: logging.getLogger(n).level for n in ("torch.onnx", "transformers", "sentence_transformers")},
        "stdout": repr(sys.stdout), "stderr": repr(sys.stderr),
        "sigterm": repr(signal.getsignal(signal.SIGTERM)),
    }

torch.set_num_threads(2)
random.seed(1234); np.random.seed(1234); torch.manual_seed(1234)  # the caller's own generators, drawn from once
random.random(); np.random.rand(); torch.rand(1)
import evalkit.encoders, evalkit.execution  # everything imported before the caller freezes its heap
import sentence_transformers  # its import draws from `random` (sklearn -> rich: getrandbits at import): not evalkit's doing
gc.freeze()
before = state()
from evalkit.encoders import load_encoder
for spec in sys.argv[1:]:
    encoder = load_encoder(spec)
    encoder.encode(["a first sentence", "and a second, longer one with more words in it", "third"] * 8)
    encoder.close()
after_library = state()
import evalkit
evaluated = evalkit.evaluate([sys.argv[1], sys.argv[-1]], ["STS12"], progress=False, cache=False)
assert set(evaluated.to_pandas()["status"]) == {"ok"}, evaluated.to_pandas()
after_evaluate = state()
print(json.dumps({"before": before, "library": after_library, "evaluate": after_evaluate}))
"""


def test_library_calls_and_evaluate_leave_process_state_unchanged(tiny_bert: Path) -> None:
    """Generators (cells seed them to 0), the caller's gc.freeze(), threads, logging, streams and umask, with the onnx backend too."""
    import json

    env = {**os.environ, "EVALKIT_CPU_STREAMS": "2"}
    specs = [f"hf:{tiny_bert}", "sbert:all-MiniLM-L6-v2", f"onnx:{tiny_bert}"]
    done = subprocess.run([sys.executable, "-c", PROBE, *specs], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    states = json.loads(done.stdout.strip().splitlines()[-1])
    frozen = {name: state.pop("gc_frozen") for name, state in states.items()}
    assert states["library"] == states["before"]
    assert states["evaluate"] == states["before"]
    # the caller's frozen objects stay frozen (a frozen object that dies leaves the count; none is thawed)
    assert frozen["before"] > 10_000
    assert frozen["evaluate"] >= 0.95 * frozen["before"], frozen


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


def test_the_run_context_puts_the_generators_back_and_a_cell_seeds_them_only_for_itself() -> None:
    import random

    import numpy as np
    import torch

    from evalkit.context import RunContext, seeded

    def draws() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    def seed(value: int) -> None:
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)

    seed(7)
    expected = draws()
    seed(7)
    with RunContext(signals=False):
        seed(0)  # as a model load or a library inside the run might
        draws()
    assert draws() == expected
    seed(0)
    zero = draws()
    seed(7)
    with seeded(0):
        assert draws() == zero  # inside a cell: the deterministic seed
    assert draws() == expected  # after it: the caller's stream, untouched
