"""SIGTERM is handled like Ctrl-C, so a run stopped by a scheduler ends cleanly.

Batch systems (Slurm, Kubernetes, systemd) stop jobs with SIGTERM. Python's default
is to die on the spot; here it raises :class:`Terminated` instead, a
``KeyboardInterrupt`` subclass, so every ``finally`` runs: the temporary file of a
result being written is removed, models are closed, a Ray cluster started by the
run is shut down, and the CLI says how to resume and exits with 143 (128 + 15).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGTERM_EXIT_CODE = 128 + signal.SIGTERM
SIGINT_EXIT_CODE = 128 + signal.SIGINT


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""

    exit_code = SIGTERM_EXIT_CODE


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"received signal {signal.Signals(signum).name}")


def install() -> None:
    """(Re)install the SIGTERM handler; libraries such as Ray replace it in ``ray.init``."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def graceful_termination() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` inside the block; the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    install()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
