"""The one atomic write: a reader, or a run killed half-way, sees the old file or the whole new one, never a part.

Temporary file in the same folder, written, flushed, fsynced, renamed over the target; on any failure the temporary
file is removed and the target is untouched. The result store, the embedding cache, the model-digest memo and the
runtimes' parity memo all write through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], object]


def atomic_write(
    path: Path,
    data: bytes | Writer,
    *,
    file_mode: int | None = None,
    before_rename: Callable[[], object] | None = None,
    sync_folder: bool = False,
) -> None:
    """Write ``data`` (bytes, or a function that writes to the open binary file) to ``path`` atomically.

    ``file_mode``: the new file's permissions (``mkstemp`` makes 0600); ``before_rename``: a hook run after the
    fsync (fault points); ``sync_folder``: also fsync the folder, so the rename itself survives a power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:
                data(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if file_mode is not None:
            os.chmod(tmp, file_mode)
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_folder:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def write_memo(path: Path, data: bytes) -> bool:
    """Best effort, for memos: one that cannot be written only costs a recomputation (a torn one fails its check on read)."""
    try:
        atomic_write(path, data)
    except OSError:
        return False
    return True
