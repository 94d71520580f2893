"""The result store: a folder of per-cell JSON files.

Files are written atomically (temporary file in the same folder, fsync, rename,
fsync of the folder), so a reader or a killed run never sees half a file; a cell
whose file exists and validates with the same configuration hash is done.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from evalkit.errors import DataError
from evalkit.faults import faultpoint
from evalkit.results.schema import CellResult
from evalkit.spec import EncoderSpec


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that ``path`` is either the old or the whole new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            half = len(text) // 2
            handle.write(text[:half])
            handle.flush()
            faultpoint("store.mid_write")
            handle.write(text[half:])
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        faultpoint("store.before_rename")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    faultpoint("store.renamed")
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class ResultStore:
    """``ROOT/<encoder slug>/<task>.<split>.json``; readers only see whole files."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_for(self, encoder: str, task: str, split: str) -> Path:
        slug = EncoderSpec.parse(encoder).slug()
        safe_task = "".join(c if c.isalnum() or c in "-_." else "_" for c in task)
        return self.root / slug / f"{safe_task}.{split}.json"

    def write(self, result: CellResult) -> Path:
        path = self.path_for(result.encoder, result.task, result.split)
        try:
            atomic_write(path, result.to_json())
        except OSError as exc:  # disk full, quota, read-only: the run stops; finished cells stay whole
            raise DataError(
                f"cannot write result file ({exc.strerror or exc})",
                path=path,
                hint="free space or fix permissions, then re-run the same command to resume",
            ) from None
        return path

    def sweep_temporary(self) -> list[Path]:
        """Delete temporary files a killed run left behind (call only while holding the folder lock)."""
        if not self.root.is_dir():
            return []
        stale = [p for p in self.root.rglob(".*.tmp") if p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def get(self, encoder: str, task: str, split: str) -> CellResult | None:
        """The stored result for a cell, or None if absent or unreadable (it will be redone)."""
        path = self.path_for(encoder, task, split)
        if not path.exists():
            return None
        try:
            return CellResult.read(path)
        except DataError:
            return None

    def files(self) -> list[Path]:
        if not self.root.exists():
            return []
        # Cells live exactly one level down (ROOT/<encoder>/<task>.<split>.json); reports saved
        # beside them (leaderboard.json, MTEB exports) are not cells.
        return sorted(p for p in self.root.glob("*/*.json") if not p.name.startswith("."))

    def __iter__(self) -> Iterator[CellResult]:
        for path in self.files():
            yield CellResult.read(path)

    def load_all(self, *, include_failed: bool = False) -> list[CellResult]:
        if not self.root.is_dir():
            raise DataError("results folder does not exist", path=self.root)
        results = [r for r in self if include_failed or r.ok]
        return results
