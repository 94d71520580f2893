"""The result store: a folder of per-cell JSON files.

Files are written atomically (temporary file in the same folder, fsync, rename,
fsync of the folder), so a reader or a killed run never sees half a file; a cell
whose file exists and validates with the same configuration hash is done.

A cell's identity (canonical encoder spec, task name, split) maps to one path,
``ROOT/<encoder slug>/<task>.<split>.json``, and the mapping is injective and stays
inside ROOT:

* the encoder folder is :meth:`EncoderSpec.slug` (ASCII, never a leading dot, with a
  digest of the canonical spec; a digest collision is refused, not merged);
* task and split keep ``A-Z a-z 0-9 _ -`` (the task also ``.``, except first) and
  write every other character as ``%XX`` escapes of its UTF-8 bytes, so ``My Task`` is
  ``My%20Task`` and ``My_Task`` stays itself, ``../x`` or ``/etc`` as a split is
  ``%2E%2E%2Fx`` / ``%2Fetc``, and names like ``STSBenchmark``, ``SICK-R``, ``test``
  are unchanged. An escaped part over 100 bytes is cut to 80 plus ``~`` and a digest,
  so file names stay far below 255 bytes;
* a cell scored on a subset (``--limit N``, :mod:`evalkit.subset`) is another cell:
  ``<task>.<split>@limit<N>.json``, beside the full ``<task>.<split>.json`` (``@`` is
  escaped in both parts, so no task or split name produces it).

File names are case-sensitive (Linux); two cells of one run whose paths differ only in
case are refused anyway (:meth:`ResultStore.check_identities`), so a results folder
can be copied to a case-insensitive file system. Every path the store writes is one
that :meth:`ResultStore.files` and the report/gate reader see, and a file read back
must sit at the path of the identity it holds (:func:`check_placement`).
"""

from __future__ import annotations

import hashlib
import os
import re
import string
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from evalkit.errors import DataError, EvalkitError
from evalkit.faults import faultpoint
from evalkit.io.atomic import atomic_write as io_atomic_write
from evalkit.results.schema import CellResult
from evalkit.spec import EncoderSpec

Identity = tuple[str, str, str, int | None]
"""(canonical encoder spec, task name, split, subset limit or None): what a result file is the result of."""

PART_MAX = 100  # bytes of one escaped task or split before it is shortened
_KEEP = frozenset(string.ascii_letters + string.digits + "_-")
_CUT_ESCAPE = re.compile(r"%[0-9A-F]?\Z")


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that ``path`` is either the old or the whole new file."""
    data = text.encode("utf-8")

    def write(handle: BinaryIO) -> None:
        half = len(data) // 2
        handle.write(data[:half])
        handle.flush()
        faultpoint("store.mid_write")
        handle.write(data[half:])

    # 0666 less the umask: mkstemp makes 0600, and results are meant to be shared
    io_atomic_write(path, write, file_mode=0o666 & ~_umask(), before_rename=lambda: faultpoint("store.before_rename"))
    faultpoint("store.renamed")
    dir_fd = os.open(path.parent, os.O_RDONLY)  # the rename itself made durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    """The process umask, read without changing it (``/proc/self/status``; setting it, even back, races other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc (macOS): the only portable read is a write; put it back at once
    os.umask(mask)
    return mask


def _escape_part(text: str, *, dots: bool) -> str:
    """``text`` as one injective, safe piece of a file name (see the module docstring)."""
    out = []
    for i, char in enumerate(text):
        if char in _KEEP or (dots and char == "." and i > 0):
            out.append(char)
        else:
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass")))
    escaped = "".join(out)
    if len(escaped) > PART_MAX:  # '~' is escaped everywhere else, so a cut name never equals a whole one
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        escaped = f"{_CUT_ESCAPE.sub('', escaped[:80])}~{digest}"
    return escaped


def file_name(task: str, split: str, limit: int | None = None) -> str:
    """``<task>.<split>.json`` (``<task>.<split>@limit<N>.json`` for a subset); the split holds no '.' or '@'."""
    for what, value in (("task name", task), ("split", split)):
        if not isinstance(value, str) or not value:
            raise DataError(f"a result needs a non-empty {what}, got {value!r}", field="split" if what == "split" else "task")
    suffix = "" if limit is None else f"@limit{int(limit)}"
    return f"{_escape_part(task, dots=True)}.{_escape_part(split, dots=False)}{suffix}.json"


def identity(encoder: str, task: str, split: str, limit: int | None = None) -> Identity:
    """The identity a result path is a function of (the encoder in its canonical form)."""
    return (str(EncoderSpec.parse(encoder)), task, split, limit)


def limit_of(result: CellResult) -> int | None:
    """The ``--limit`` a result was scored with (None: the full task)."""
    return result.subset.limit if result.subset is not None else None


def identity_of(result: CellResult) -> Identity | None:
    """A stored result's identity, or None if its encoder is not a spec."""
    try:
        return identity(result.encoder, result.task, result.split, limit_of(result))
    except EvalkitError:
        return None


def _raw_identity(result: CellResult) -> Identity:
    return (result.encoder, result.task, result.split, limit_of(result))


def show(ident: Identity) -> str:
    """An identity as one printable line (names from a file may hold anything)."""
    encoder, task, split = (repr(part)[1:-1] if isinstance(part, str) else repr(part) for part in ident[:3])
    return f"{encoder} × {task}/{split}" + (f" (--limit {ident[3]})" if ident[3] is not None else "")


def _legacy_slug(encoder: str) -> str:
    """The encoder folder evalkit wrote before canonical specs escaped only what they must."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder)
    return f"{safe[:80]}-{hashlib.sha1(encoder.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def _legacy_name(task: str, split: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task)
    return f"{safe}.{split}.json"


def check_placement(result: CellResult, path: Path) -> None:
    """DataError unless ``path`` is where the store puts ``result`` (or where earlier evalkit versions did).

    A file copied or renamed into another cell's place is refused, not attributed to
    whatever its folder suggests, and not left for a later run to overwrite.
    """
    path = Path(path)
    ident = identity_of(result)
    if ident is None:
        raise DataError(f"result file names encoder {result.encoder!r}, which is not an encoder spec", path=path, field="encoder")
    try:
        expected = Path(EncoderSpec.parse(ident[0]).slug()) / file_name(result.task, result.split, ident[3])
    except EvalkitError as exc:
        raise DataError(exc.message, path=path, field=exc.field) from None
    if path.parent.name == expected.parent.name and path.name == expected.name:
        return
    legacy = ({_legacy_slug(result.encoder), expected.parent.name}, {_legacy_name(result.task, result.split), expected.name})
    if path.parent.name in legacy[0] and path.name in legacy[1] and ident[3] is None:  # subsets are newer than those names
        return
    raise DataError(
        f"holds the result of {show(ident)}, whose file is {expected}, not {Path(path.parent.name) / path.name}",
        path=path,
        hint="a result file copied or renamed by hand is not attributed; move it back, or re-run the cell",
    )


class CellLike(Protocol):
    """What :meth:`ResultStore.check_identities` needs of a cell (``evalkit.execution.Cell``)."""

    @property
    def encoder(self) -> EncoderSpec: ...

    @property
    def split(self) -> str: ...

    @property
    def task(self) -> TaskLike: ...


class TaskLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def limit(self) -> int | None: ...

    @property
    def source(self) -> Path | None: ...


C = TypeVar("C", bound=CellLike)


class ResultStore:
    """``ROOT/<encoder slug>/<task>.<split>.json``; readers only see whole files."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._read_memo: dict[tuple[str, int, int, int], CellResult] = {}

    def relative_path(self, encoder: str, task: str, split: str, limit: int | None = None) -> Path:
        return Path(EncoderSpec.parse(encoder).slug()) / file_name(task, split, limit)

    def path_for(self, encoder: str, task: str, split: str, limit: int | None = None) -> Path:
        """The one file of this cell: injective in (canonical encoder, task, split, subset limit), always inside ROOT."""
        return self.root / self.relative_path(encoder, task, split, limit)

    def _read(self, path: Path) -> CellResult | None:
        """The result in ``path`` if it is a readable, valid regular file (memoised per inode, size and mtime)."""
        try:
            stat = path.stat()
        except OSError:
            return None
        if not path.is_file():
            return None
        key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key in self._read_memo:
            return self._read_memo[key]
        try:
            result = CellResult.read(path)
        except (EvalkitError, OSError, RecursionError, ValueError):
            return None
        self._read_memo[key] = result
        return result

    def write(self, result: CellResult) -> Path:
        path = self.path_for(result.encoder, result.task, result.split, limit_of(result))
        existing = self._read(path)
        if existing is not None and identity_of(existing) != identity_of(result):  # never overwrite another cell
            raise DataError(
                f"holds the result of {show(identity_of(existing) or _raw_identity(existing))}; "
                f"refusing to overwrite it with {show(identity_of(result) or _raw_identity(result))}",
                path=path,
                hint="move that file where it belongs, or write to another results folder",
            )
        try:
            atomic_write(path, result.to_json())
        except OSError as exc:  # disk full, quota, read-only: the run stops; finished cells stay whole
            raise DataError(
                f"cannot write result file ({exc.strerror or exc})",
                path=path,
                hint="free space or fix permissions, then re-run the same command to resume",
            ) from None
        return path

    def commit(self, result: CellResult) -> CellResult:
        """Write a fresh result, unless it failed where a good result of the same cell is stored: that one is kept.

        A rerun (``--overwrite``, or a changed configuration) that fails must not destroy
        the result it was meant to replace. The failed attempt is returned, not written,
        with ``details["kept"]`` (the kept file, its score and date) and a warning saying
        so; the caller reports both. Every other result is written (:meth:`write`).
        """
        if not result.ok:
            path = self.path_for(result.encoder, result.task, result.split, limit_of(result))
            existing = self._read(path)
            if existing is not None and existing.ok and identity_of(existing) == identity_of(result):
                return with_kept(result, existing, path)
        self.write(result)
        return result

    def check_identities(self, cells: Sequence[C]) -> list[C]:
        """The distinct cells, after refusing (before any model loads) any two that would share a file.

        Two task files with one ``name``, two task names equal but for case, two encoder
        specs whose folders collide, and a result file in a cell's place that holds
        another cell all stop the run with one line naming both sides. The same cell
        listed twice (``-t X -t X``) is run once.
        """
        if self.root.exists() and not self.root.is_dir():
            raise DataError("the results folder is not a folder", path=self.root, hint="pass -o a folder; it is created if missing")
        seen: dict[str, C] = {}
        unique: list[C] = []
        for cell in cells:
            rel = self.relative_path(str(cell.encoder), cell.task.name, cell.split, cell.task.limit)
            first = seen.setdefault(str(rel).casefold(), cell)
            if first is cell:
                unique.append(cell)
            elif not _same_cell(first, cell):
                raise _clash(first, cell, rel)
        for cell in unique:
            self._check_place(cell)
        return unique

    def _check_place(self, cell: CellLike) -> None:
        path = self.path_for(str(cell.encoder), cell.task.name, cell.split, cell.task.limit)
        if path.parent.exists() and not path.parent.is_dir():
            raise DataError("is not a folder, but the results of an encoder go in it", path=path.parent, hint="move it away")
        if path.is_dir():
            raise DataError(f"is a folder, but the result file of {show(_ident(cell))} goes there", path=path, hint="move it away")
        existing = self._read(path)
        if existing is not None and identity_of(existing) != _ident(cell):
            other = identity_of(existing) or _raw_identity(existing)
            raise DataError(
                f"holds the result of {show(other)}; running {show(_ident(cell))} would overwrite it",
                path=path,
                hint="move that file where it belongs, delete it, or write to another results folder (-o)",
            )

    def sweep_temporary(self) -> list[Path]:
        """Delete temporary files a killed run left behind (call only while holding the folder lock)."""
        if not self.root.is_dir():
            return []
        stale = [p for p in self.root.rglob(".*.tmp") if p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def get(self, encoder: str, task: str, split: str, limit: int | None = None) -> CellResult | None:
        """The stored result for a cell, or None if absent, unreadable or another cell's (it will be redone)."""
        result = self._read(self.path_for(encoder, task, split, limit))
        if result is None or identity_of(result) != identity(encoder, task, split, limit):
            return None
        return result

    def files(self) -> list[Path]:
        if not self.root.exists():
            return []
        # Cells live exactly one level down (ROOT/<encoder>/<task>.<split>.json); reports saved
        # beside them (leaderboard.json, MTEB exports) are not cells. The same selection as the
        # report/gate reader (evalkit.reading.result_files): what one sees, the other sees;
        # a folder or device named like a cell is refused when read, not skipped.
        return sorted(p for p in self.root.glob("*/*.json") if not p.name.startswith(".") and p.parent.is_dir())

    def __iter__(self) -> Iterator[CellResult]:
        """Every stored result, each checked to sit at its own path (DataError naming the file otherwise)."""
        for path in self.files():
            result = CellResult.read(path)
            check_placement(result, path)
            yield result

    def load_all(self, *, include_failed: bool = False) -> list[CellResult]:
        if not self.root.is_dir():
            raise DataError("results folder does not exist", path=self.root)
        results = [r for r in self if include_failed or r.ok]
        return results


def with_kept(failed: CellResult, kept: CellResult, path: Path) -> CellResult:
    """The failed attempt, marked with the earlier good result that stays in ``path``."""
    same = kept.config_hash == failed.config_hash
    score = "none" if kept.main_score is None else f"{kept.main_metric} {kept.main_score:.4f}"
    note = (
        f"this rerun failed, so the earlier result in {path} ({score}, {kept.created_at}"
        f"{'' if same else ', of another configuration'}) was kept, not replaced"
    )
    details = {
        **failed.details,
        "kept": {"path": str(path), "main_score": kept.main_score, "created_at": kept.created_at, "same_config": same},
    }
    return failed.replace(details=details, warnings=[*failed.warnings, note])


def kept_note(result: CellResult) -> str | None:
    """The warning :meth:`ResultStore.commit` added to a failed attempt whose earlier result was kept (None otherwise)."""
    if result.ok or not isinstance(result.details.get("kept"), dict):
        return None
    return next((w for w in reversed(result.warnings) if w.startswith("this rerun failed, so the earlier result")), None)


def _ident(cell: CellLike) -> Identity:
    return (str(cell.encoder), cell.task.name, cell.split, cell.task.limit)


def _source(cell: CellLike) -> str:
    source = cell.task.source
    return str(Path(source).resolve()) if source is not None else f"<task {cell.task.name}>"


def _same_cell(a: CellLike, b: CellLike) -> bool:
    return _ident(a) == _ident(b) and _source(a) == _source(b)


def _clash(a: CellLike, b: CellLike, rel: Path) -> DataError:
    """One line naming both cells that would write ``rel``."""
    if str(a.encoder) != str(b.encoder):
        return DataError(
            f"encoders {str(a.encoder)!r} and {str(b.encoder)!r} would write the same result folder {rel.parent}",
            field="--encoder",
            hint="a digest collision; run them into separate results folders",
        )
    if a.task.name == b.task.name and a.split == b.split:
        what = f"task files {_source(a)} and {_source(b)} both declare the task {a.task.name!r}"
    else:
        what = f"tasks {a.task.name!r}/{a.split} ({_source(a)}) and {b.task.name!r}/{b.split} ({_source(b)}) differ only in case"
    return DataError(
        f"{what}; their results would share {rel}",
        path=b.task.source,
        field="name",
        hint="give each task its own name; names are compared case-insensitively",
    )
