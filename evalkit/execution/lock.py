"""One writer per results folder: a second run on the same folder is told, not merged.

Result files are written by rename, so two runs could never leave half a file; but
they would evaluate the same cells twice and the last one would silently win. A run
therefore holds an exclusive ``flock`` on ``ROOT/.evalkit.lock`` while it writes.
The kernel drops the lock when the process dies, whatever the signal (SIGKILL
included), so a killed run never leaves a stale lock behind and resuming needs no
clean-up. The file records who holds it, for the message the second run prints.

``flock`` is node-local on most network file systems: on a cluster, only the driver
writes results (the Ray executor returns results to it), so that is enough.

If the lock cannot be taken or its holder line cannot be written (disk full,
read-only folder, a symlink or a FIFO where the lock file should be), the run stops
with one line (exit 2) and removes the lock file and folder it had just created.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from evalkit.errors import EvalkitError
from evalkit.faults import faultpoint

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
        """Take the lock, or one EvalkitError (exit 2); a failure leaves no lock file or folder that this call made."""
        made_root = not self.root.exists()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # read-only, no permission, a file where the folder should be
            raise EvalkitError(f"cannot use this results folder ({exc.strerror or exc})", path=self.root) from None
        try:
            self._acquire()
        except BaseException:
            if made_root:
                with contextlib.suppress(OSError):
                    self.root.rmdir()  # only if still empty
            raise

    def _acquire(self) -> None:
        while True:
            fd, created = self._open()
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
                self._discard(fd, created)
                raise EvalkitError(f"cannot lock the results folder ({exc.strerror})", path=self.root) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the file we locked was removed (a run that failed to write it): lock the new one
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
        info["command"] = " ".join(sys.argv[:1] + sys.argv[1:])[:500]
        try:
            faultpoint("lock.write")
            os.ftruncate(fd, 0)
            data = (json.dumps(info) + "\n").encode("utf-8", "backslashreplace")
            if os.pwrite(fd, data, 0) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:  # disk full, quota, read-only remount: nothing could be written anyway
            self._discard(fd, created)
            raise EvalkitError(
                f"cannot write to the results folder ({exc.strerror or exc}); nothing was written",
                path=self.root,
                hint="free some space or write to another folder with -o",
            ) from None
        self._fd = fd

    def _open(self) -> tuple[int, bool]:
        """The lock file's descriptor, and whether this call created it; only a regular file, never through a symlink."""
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            try:
                fd, created = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                fd, created = os.open(self.path, flags), False
        except OSError as exc:  # read-only, no permission, a symlink or a folder named like the lock
            raise EvalkitError(f"cannot use this results folder ({exc.strerror or exc})", path=self.path) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise EvalkitError("the lock file is not a regular file", path=self.path, hint="remove it; evalkit creates it")
        return fd, created

    def _discard(self, fd: int, created: bool) -> None:
        """Give up a lock file this run could not use; remove it if this run made it (while still holding it)."""
        if created:
            with contextlib.suppress(OSError):
                self.path.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

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


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (another run may have removed the one it opened)."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "holder unknown"
    command = info.get("command")
    running = f": {str(command)[:200]}" if command else ""  # escaped to one line by EvalkitError
    return f"pid {info['pid']} on {info.get('host', '?')}, since {info.get('since', '?')}{running}"
