"""When Python's cycle collector runs, and when freed heap goes back to the OS.

Importing torch and transformers and loading a model allocates a few million
long-lived objects. Left alone, the cycle collector walks that growing graph again
and again (0.7 s of a 3 s import on the 2-core reference machine) and once more
when the interpreter exits (0.8 s). So the collector is paused while a backend
loads, and the command line freezes the heap (moves it to the permanent
generation, which no collection visits) just before the process ends.

Models are not frozen while they are in use: transformer modules hold reference
cycles, and a frozen cycle would never be freed when its model is released.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Pause collection while libraries import and weights load (nothing they build is garbage yet)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def release() -> None:
    """Collect closed models and hand freed heap back to the OS, so RSS stays flat from group to group.

    glibc keeps freed memory in per-thread arenas (torch's intra-op threads each have
    one); without ``malloc_trim`` a long matrix shows RSS climbing by the size of the
    activations even though every model was released (scripts/memory_profile.py).
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def before_exit() -> None:
    """Spare the interpreter its final walk over every object: the process is ending and the OS frees it all."""
    gc.freeze()
