"""When Python's cycle collector runs — only inside a run context (:mod:`evalkit.context`).

Importing torch and transformers and loading a model creates ~370k long-lived
objects. Left alone, the cycle collector walks that growing graph again and again
during the import (0.7 s of a 3.2 s import on the 2-core reference machine), again
in the first young-generation passes after it (0.4 s), and once more when the
interpreter exits (0.8 s). So, inside a run, the collector is paused while a backend
loads; if modules were imported, everything alive is then frozen (moved to the
permanent generation, which no collection visits); and the command line freezes the
heap again just before the process ends.

A frozen object is never collected, and transformer modules hold reference cycles,
so closing a model thaws the heap (:func:`closed`): its cycles become collectable
by the next collection, which :func:`release` runs at once when the memory is
needed for the next model.

Outside a run context every function here does nothing: a library call leaves the
caller's collector exactly as it found it. Inside one whose caller had frozen objects
(``gc.freeze()`` before ``evaluate``), nothing is frozen or thawed either: ``gc.unfreeze``
thaws the whole permanent generation and would undo the caller's freeze.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

from evalkit.context import active, may_freeze


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Pause collection while libraries import and weights load; freeze what exists if modules were imported."""
    if active() is None:
        yield
        return
    was_enabled, modules = gc.isenabled(), len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > modules and may_freeze():  # a second load imports nothing: its few objects stay collectable
            gc.freeze()
        if was_enabled:
            gc.enable()


def closed() -> None:
    """A model was dropped: thaw the heap so its reference cycles can be collected (no walk now; see ``release``)."""
    if may_freeze():
        gc.unfreeze()


def release() -> None:
    """Collect closed models and hand freed heap back to the OS, so RSS stays flat from group to group.

    glibc keeps freed memory in per-thread arenas (torch's intra-op threads each have
    one); without ``malloc_trim`` a long matrix shows RSS climbing by the size of the
    activations even though every model was released (scripts/memory_profile.py).
    """
    if active() is None:
        return
    if may_freeze():  # a caller's frozen objects stay frozen: unfreeze() cannot tell theirs from ours
        gc.unfreeze()
    gc.collect()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
