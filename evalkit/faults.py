"""Named fault points, so tests can kill a real run at an exact moment (e.g. mid-write).

``EVALKIT_FAULT=POINT[:NTH[:SIGNAL]]`` makes the process send itself ``SIGNAL``
(default KILL; TERM, INT and STOP also make sense) the NTH time (default 1) it
reaches fault point ``POINT``. Unset, a fault point is one dictionary lookup.
Timing-based kills cannot hit the few microseconds between writing a temporary
file and renaming it; this can, with a real signal and a real process.

``SIGNAL`` may instead be an errno name (``ENOSPC``, ``EROFS``): from the NTH time on,
the point raises that ``OSError``, as a full or read-only disk would.

Points: ``run.locked``, ``model.loaded``, ``cell.evaluated``, ``store.mid_write``
(half the file written and flushed), ``store.before_rename``, ``store.renamed``,
``cache.write`` (an embedding cache file written, before its fsync), ``lock.write`` (the
results-folder lock taken, before its holder line is written).
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "EVALKIT_FAULT"
_seen: dict[str, int] = {}


def faultpoint(name: str) -> None:
    """Send this process the configured signal if ``name`` is the armed point and its turn has come."""
    armed = os.environ.get(ENV)
    if not armed or not armed.startswith(name):
        return
    point, _, rest = armed.partition(":")
    if point != name:
        return
    nth, _, sig = rest.partition(":")
    _seen[name] = _seen.get(name, 0) + 1
    if sig.upper().startswith("E") and isinstance(getattr(errno, sig.upper(), None), int):  # an errno: fail like a full disk
        if _seen[name] >= int(nth or 1):
            code = getattr(errno, sig.upper())
            raise OSError(code, os.strerror(code))
        return
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), getattr(signal, f"SIG{(sig or 'KILL').upper()}"))
