"""Reading a results folder for reports and the gate: every file validated, nothing skipped.

``ResultStore`` skips unreadable files (a run simply redoes them); a report or a gate
must not, or a truncated baseline file would quietly drop a task from the check.
Only the store's own layout (``ROOT/<encoder slug>/<task>.<split>.json``) is read,
so a ``leaderboard.json`` or an MTEB export written next to the cells is not mistaken
for a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evalkit.errors import DataError
from evalkit.results.schema import CellResult
from evalkit.results.store import check_placement


def result_files(root: Path) -> list[Path]:
    # Not only regular files: a directory or a symlink to a device named like a cell is refused when read, not skipped.
    return sorted(p for p in Path(root).glob("*/*.json") if not p.name.startswith(".") and p.parent.is_dir())


def load_results(root: Path | str, *, what: str = "results") -> list[CellResult]:
    """Every cell in ``root`` (failed ones included); DataError naming the file for anything malformed."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what} folder does not exist", path=root)
    files = result_files(root)
    if not files:
        raise DataError(
            f"{what} folder holds no result files", path=root, hint="expected ROOT/<encoder>/<task>.<split>.json from `evalkit run -o ROOT`"
        )
    results = [CellResult.read(path) for path in files]
    for result, path in zip(results, files, strict=True):
        check_placement(result, path)  # a file copied into another cell's place is refused, not attributed
    check_unique(results, files)
    return results


def check_unique(results: Sequence[CellResult], files: Sequence[Path]) -> None:
    seen: dict[tuple[str, str, str], Path] = {}
    for result, path in zip(results, files, strict=True):
        key = (result.encoder, result.task, result.split)
        if key in seen:
            raise DataError(f"two result files for {result.encoder} × {result.task}/{result.split} (the other is {seen[key]})", path=path)
        seen[key] = path
