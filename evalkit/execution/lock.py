"""One writer per results folder: a second run on the same folder is told, not merged.

Result files are written by rename, so two runs could never leave half a file; but
they would evaluate the same cells twice and the last one would silently win. A run
therefore holds an exclusive ``flock`` on ``ROOT/.evalkit.lock`` while it writes.
The kernel drops the lock when the process dies, whatever the signal (SIGKILL
included), so a killed run never leaves a stale lock behind and resuming needs no
clean-up. The file records who holds it, for the message the second run prints.

``flock`` is node-local on most network file systems: on a cluster, only the driver
writes results (the Ray executor returns results to it), so that is enough.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from evalkit.errors import EvalkitError

LOCK_NAME = ".evalkit.lock"


class ResultsBusyError(EvalkitError):
    """Another evalkit run is writing to this results folder."""


class ResultsLock:
    """Exclusive, non-blocking lock on a results folder, held for the length of a run."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # read-only, no permission, a file where the folder should be
            raise EvalkitError(f"cannot use this results folder ({exc.strerror or exc})", path=self.root) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise ResultsBusyError(
                f"results folder is in use by another evalkit run ({holder}); nothing was written",
                path=self.root,
                hint="wait for that run to finish (re-running then resumes), or write to another folder with -o",
            ) from None
        except OSError as exc:  # a file system without flock: say so rather than run unprotected
            os.close(fd)
            raise EvalkitError(f"cannot lock the results folder ({exc.strerror})", path=self.root) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
        info["command"] = " ".join(sys.argv[:1] + sys.argv[1:])[:500]
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResultsLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "holder unknown"
    return f"pid {info['pid']} on {info.get('host', '?')}, since {info.get('since', '?')}"
