"""CPU streams (several whole batches at once, results in order, the same vectors) and the collector policy around loading."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from evalkit.encoders import load_encoder
from evalkit.encoders.streams import ENV_VAR, run_batches, stream_count
from evalkit.errors import EvalkitError
from tests.conftest import sts_sentences


@pytest.fixture
def two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_results_come_back_in_input_order_with_threads_restored(two_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "2")
    seen: dict[int, tuple[str, int]] = {}

    def work(i: int) -> int:
        seen[i] = (threading.current_thread().name, torch.get_num_threads())
        time.sleep(0.002 * (i % 3))  # later items often finish first
        return i * i

    assert list(run_batches(work, iter(range(20)), "cpu")) == [i * i for i in range(20)]
    assert {name for name, _ in seen.values()} <= {"evalkit-stream_0", "evalkit-stream_1"}
    assert len({name for name, _ in seen.values()}) == 2, "both streams must have run batches"
    assert {threads for _, threads in seen.values()} == {1}, "each stream runs on its share of the threads"
    assert torch.get_num_threads() == 2


def test_a_failing_batch_raises_in_the_caller_and_threads_are_restored(two_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "2")

    def work(i: int) -> int:
        if i == 5:
            raise ValueError("batch 5 is bad")
        return i

    with pytest.raises(ValueError, match="batch 5 is bad"):
        list(run_batches(work, range(12), "cpu"))
    assert torch.get_num_threads() == 2


def test_one_batch_or_one_thread_runs_inline(two_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A single batch keeps every intra-op thread; GPU batches and EVALKIT_CPU_STREAMS=1 never leave the caller's thread."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    names: list[str] = []

    def work(i: int) -> int:
        names.append(threading.current_thread().name)
        assert torch.get_num_threads() == 2
        return i

    assert list(run_batches(work, [7], "cpu")) == [7]
    assert list(run_batches(work, range(4), "cuda")) == [0, 1, 2, 3]
    monkeypatch.setenv(ENV_VAR, "1")
    assert list(run_batches(work, range(4), "cpu")) == [0, 1, 2, 3]
    assert set(names) == {threading.current_thread().name}


def test_stream_count_follows_the_thread_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert [stream_count(t) for t in (1, 2, 3, 16)] == [1, 2, 3, 4]
    monkeypatch.setenv(ENV_VAR, "8")
    assert stream_count(2) == 2, "never more streams than threads"
    monkeypatch.setenv(ENV_VAR, "two")
    with pytest.raises(EvalkitError, match="EVALKIT_CPU_STREAMS must be a positive integer"):
        stream_count(2)


def test_streams_give_the_same_vectors_as_one_batch_at_a_time(tiny_bert: Path, two_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = sts_sentences(120)
    encoder = load_encoder(f"hf:{tiny_bert}?pooling=mean&batch_size=8")
    threads: set[str] = set()
    hook = encoder.backbone.model.register_forward_pre_hook(lambda *_: threads.add(threading.current_thread().name))
    try:
        monkeypatch.setenv(ENV_VAR, "1")
        inline = encoder.encode(texts)
        assert threads == {threading.current_thread().name}
        monkeypatch.setenv(ENV_VAR, "2")
        threads.clear()
        streamed = encoder.encode(texts)
        assert threads == {"evalkit-stream_0", "evalkit-stream_1"}
    finally:
        hook.remove()
        encoder.close()
    np.testing.assert_allclose(streamed, inline, rtol=0, atol=1e-6)


def test_loading_pauses_the_collector_and_restores_it(tiny_bert: Path) -> None:
    """Collection is off while a model loads (the import-time speed-up) and back on afterwards, even if loading fails."""
    from evalkit.encoders import BACKENDS

    states: list[bool] = []

    def probe(spec: object) -> object:
        states.append(gc.isenabled())
        raise RuntimeError("cannot load")

    from evalkit.context import RunContext

    BACKENDS.register("gc-probe", probe)
    try:
        with RunContext(signals=False), pytest.raises(RuntimeError, match="cannot load"):
            load_encoder("gc-probe:x")
        with pytest.raises(RuntimeError, match="cannot load"):
            load_encoder("gc-probe:x")  # outside a run context: the caller's collector is left alone
    finally:
        BACKENDS._entries.pop("gc-probe", None)
    assert states == [False, True] and gc.isenabled()
    with RunContext(signals=False):
        load_encoder(f"hf:{tiny_bert}").close()
    assert gc.isenabled()


def test_streams_share_the_token_budget(tiny_bert: Path, two_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``token_budget`` bounds the padded positions in flight: two streams get half of it per batch each."""
    from evalkit.bench import bench_texts

    texts = bench_texts(64)  # STS-B sentences and SciFact abstracts: the budget binds on the abstracts
    sizes = {}
    for streams in ("1", "2"):
        monkeypatch.setenv(ENV_VAR, streams)
        encoder = load_encoder(f"hf:{tiny_bert}?batch_size=16&token_budget=600")
        try:
            sizes[streams] = [(len(idx), batch["input_ids"].numel()) for idx, batch in encoder.backbone.batches(texts)]
        finally:
            encoder.close()
    assert all(padded <= 600 or n == 1 for n, padded in sizes["1"])
    assert all(padded <= 300 or n == 1 for n, padded in sizes["2"])
    assert max(padded for _, padded in sizes["1"]) > 300, "the budget must bind for this test to mean anything"


def test_a_load_that_imports_freezes_the_heap_and_closing_thaws_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit import collector
    from evalkit.context import RunContext

    (tmp_path / "evalkit_probe_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gc.unfreeze()
    with RunContext(signals=False):
        _freeze_and_thaw(collector, monkeypatch)
    assert gc.get_freeze_count() == 0


def _freeze_and_thaw(collector: object, monkeypatch: pytest.MonkeyPatch) -> None:
    with collector.loading():  # type: ignore[attr-defined]
        pass  # imports nothing: nothing is frozen
    assert gc.get_freeze_count() == 0
    try:
        with collector.loading():  # type: ignore[attr-defined]
            import evalkit_probe_module  # noqa: F401
        assert gc.get_freeze_count() > 0
    finally:
        collector.closed()  # type: ignore[attr-defined]
        monkeypatch.delitem(__import__("sys").modules, "evalkit_probe_module")
    assert gc.get_freeze_count() == 0


PROBE = """
import gc, sys, weakref
from evalkit.context import RunContext
from evalkit.encoders import load_encoder
RunContext(signals=False).__enter__()  # as the CLI does: collector policy on for the whole process
encoder = load_encoder(sys.argv[1])  # the first load in this interpreter imports torch and transformers: the heap is frozen
assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()
model = weakref.ref(encoder.backbone.model)
encoder.close()
gc.collect()
assert model() is None, "a closed model must be collectable, reference cycles and all"
print("freed")
"""


def test_a_closed_model_is_freed_although_it_loaded_frozen(tiny_bert: Path) -> None:
    """In a fresh interpreter (so loading really imports and freezes): close + collect frees the model's cycles."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, "-c", PROBE, f"hf:{tiny_bert}"], cwd=REPO, env=os.environ, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "freed", done.stderr[-2000:]


@pytest.mark.parametrize("command", ["run", "bench"])
def test_a_malformed_stream_count_is_exit_2_before_any_model_loads(command: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    out = tmp_path / "out"
    args = [sys.executable, "-m", "evalkit", command, "-e", "hf:all-MiniLM-L6-v2", "-o", str(out)]
    env = {**os.environ, ENV_VAR: "two"}
    done = subprocess.run(args + (["-t", "STSBenchmark"] if command == "run" else []), cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("evalkit: error: field 'EVALKIT_CPU_STREAMS'") and "got 'two'" in line
    assert "Traceback" not in done.stderr and not list(out.rglob("*.json"))
