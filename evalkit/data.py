"""Generic readers for user files: TSV/CSV with a header, JSON Lines, TOML and JSON.

Every row carries its 1-based line number, so an adapter can say exactly where a
bad value is. The readers check shape (columns, JSON syntax, emptiness); adapters
check meaning (a score must be a number, a label must exist in train).

Every reader here treats its file as hostile, so that a bad file is one
:class:`~evalkit.errors.DataError` and never a traceback or a hang:

* only regular files are read (:func:`open_regular`): a directory, a FIFO (which
  would block forever), a socket, a device or a symlink to ``/dev/zero`` is refused
  before a byte is read;
* a leading UTF-8 byte-order mark is dropped, and text that is not UTF-8 names its
  line;
* one line (or one CSV field) of a data file is at most :data:`MAX_RECORD_BYTES`,
  a whole TOML or JSON file at most what its caller allows (:data:`MAX_TOML_BYTES`,
  :data:`MAX_JSON_BYTES`), so a 1 GiB field is an error, not a MemoryError. Data
  files as a whole have no size limit (a retrieval corpus is streamed);
* JSON is nested at most :data:`MAX_JSON_DEPTH` deep, numbers are finite (``NaN``,
  ``Infinity`` and ``1e999`` are refused unless the caller asks otherwise) and text
  holds no lone surrogates, which could not be written back as UTF-8.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from evalkit.errors import DataError

MAX_RECORD_BYTES = 64 << 20
"""Longest line (JSONL record, TSV/CSV row) and longest CSV field, in bytes: far above any sentence or document."""
MAX_TOML_BYTES = 4 << 20
"""Largest task or rules file."""
MAX_JSON_BYTES = 512 << 20
"""Largest JSON file (a result file with per-unit outcomes of a large task is tens of MiB)."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of a JSON document (evalkit's and MTEB's files nest about five levels)."""

BOM = b"\xef\xbb\xbf"
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")  # old Mac line ends: split after a CR that is not part of CRLF
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_csv_limit_lock = threading.Lock()


@dataclass(frozen=True)
class Row:
    """One record of a data file, with where it came from."""

    path: Path
    line: int
    values: dict[str, Any]

    def get(self, column: str) -> Any:
        if column not in self.values or self.values[column] is None:
            raise DataError("missing value", path=self.path, line=self.line, field=column)
        return self.values[column]

    def text(self, column: str) -> str:
        value = self.get(column)
        if not isinstance(value, str):
            raise DataError(f"expected text, got {type(value).__name__} {_short(value)}", path=self.path, line=self.line, field=column)
        return value

    def number(self, column: str) -> float:
        value = self.get(column)
        if isinstance(value, bool):
            raise DataError(f"expected a number, got {str(value).lower()}", path=self.path, line=self.line, field=column)
        if isinstance(value, str) and not value.isascii():  # float() also reads '２' or '٢': refuse what a person would not
            raise DataError(f"expected a number in ASCII digits, got {_short(value)}", path=self.path, line=self.line, field=column)
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"expected a number, got {_short(value)}", path=self.path, line=self.line, field=column) from None
        if number != number:  # NaN
            raise DataError("value is NaN", path=self.path, line=self.line, field=column)
        if number in (float("inf"), float("-inf")):
            raise DataError(f"value is not a finite number, got {_short(value)}", path=self.path, line=self.line, field=column)
        return number


def _short(value: Any, limit: int = 60) -> str:
    """A value's repr for a one-line message: bounded, and free of lone surrogates and control characters."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# --- opening files ---------------------------------------------------------------------------------


def open_regular(path: Path | str, kind: str = "data") -> IO[bytes]:
    """``path`` opened for binary reading, or one DataError if it is missing or not a regular file.

    Opened with ``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor, so a
    FIFO cannot block the open and a file swapped for one after a check is still caught.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{kind} file does not exist", path=path) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise DataError(f"cannot read {kind} file ({getattr(exc, 'strerror', None) or exc})", path=path) from None
    _check_regular(info.st_mode, path, kind)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DataError(f"cannot read {kind} file ({exc.strerror or exc})", path=path) from None
    try:
        _check_regular(os.fstat(fd).st_mode, path, kind)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_regular(mode: int, path: Path, kind: str) -> None:
    if stat.S_ISREG(mode):
        return
    what = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise DataError(f"{kind} file is {what}, not a regular file", path=path, hint="only regular files are read")


def _utf8(raw: bytes, path: Path, subject: str, line: int | None = None) -> str:
    """``raw`` as text; a bad byte names its line (``line`` is the line ``raw`` starts on)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = (line or 1) + raw.count(b"\n", 0, exc.start)
        raise DataError(f"{subject} is not UTF-8 text (byte {raw[exc.start]:#04x})", path=path, line=at) from None


def read_text_file(path: Path | str, kind: str, max_bytes: int = MAX_JSON_BYTES) -> str:
    """A whole regular file as UTF-8 text, byte-order mark dropped; one DataError for anything else.

    ``kind`` names the file in messages ("task", "result", "MTEB result"); a file over
    ``max_bytes`` is refused before it is read.
    """
    path = Path(path)
    with open_regular(path, kind) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise DataError(f"{kind} file is {_mib(size)}, over the limit of {_mib(max_bytes)}", path=path)
        try:
            raw = handle.read(max_bytes + 1)
        except OSError as exc:
            raise DataError(f"cannot read {kind} file ({exc.strerror or exc})", path=path) from None
    if len(raw) > max_bytes:  # grew while being read
        raise DataError(f"{kind} file is over the limit of {_mib(max_bytes)}", path=path)
    return _utf8(raw.removeprefix(BOM), path, f"{kind} file")


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB" if size >= 2**20 else f"{size:,} bytes"


# --- TOML and JSON -----------------------------------------------------------------------------------


def load_toml(path: Path | str, kind: str) -> tuple[dict[str, Any], str]:
    """A TOML file (task, rules) as a dict, and its text (for :func:`evalkit.schemas.base.parse`'s line numbers)."""
    import tomllib

    path = Path(path)
    text = read_text_file(path, kind, MAX_TOML_BYTES)
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))  # Python 3.11 keeps the line only in the message
        raise DataError(f"{kind} file is not valid TOML: {exc}", path=path, line=int(match.group(1)) if match else None) from None
    except RecursionError:
        raise DataError(f"{kind} file is nested too deeply", path=path) from None


def read_toml(path: Path | str, kind: str) -> dict[str, Any]:
    """A TOML file (task, rules) as a dict; syntax errors name the file and line."""
    return load_toml(path, kind)[0]


def load_json(
    text: str | bytes,
    *,
    path: Path | str | None = None,
    kind: str = "JSON",
    line: int | None = None,
    max_depth: int = MAX_JSON_DEPTH,
    finite: bool = True,
) -> Any:
    """Parse JSON text; anything malformed, too deep, non-finite (when ``finite``) or not writable as UTF-8 is a DataError.

    ``kind`` is the subject of the message ("result file", "line"); ``line`` is the
    line of the file that ``text`` is (JSON Lines), else the decoder's line is given.
    """
    if isinstance(text, bytes):
        text = _utf8(text.removeprefix(BOM), Path(path or "-"), kind, line)
    text = text.removeprefix("\ufeff")

    def constant(name: str) -> float:
        if finite:
            raise ValueError(f"{name} is not a finite number")
        return float(name.replace("Infinity", "inf"))

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):  # {"score": 2.5, "score": 4.9}: which one was meant is not for evalkit to guess
            seen: set[str] = set()
            twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            raise _DuplicateKey(f"key {twice!r} appears twice in one object")
        return out

    try:
        value = json.loads(text, parse_constant=constant, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        where = line if line is not None else exc.lineno
        raise DataError(f"{kind} is not valid JSON ({exc.msg}, column {exc.colno})", path=path, line=where) from None
    except RecursionError:
        raise DataError(f"{kind} is nested too deeply", path=path, line=line) from None
    except _DuplicateKey as exc:
        raise DataError(f"{kind} is ambiguous: {exc}", path=path, line=line, hint="keep one value per key") from None
    except ValueError as exc:  # a refused constant, or an integer of more than 4,300 digits
        raise DataError(f"{kind} holds a number evalkit does not read ({_first_line(exc)})", path=path, line=line) from None
    _check_tree(value, max_depth, finite, bool(_SURROGATE_ESCAPE.search(text)), path, kind, line)
    return value


class _DuplicateKey(ValueError):
    """One JSON object names a key twice (Python's json keeps the last silently)."""


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _check_tree(value: Any, max_depth: int, finite: bool, surrogates: bool, path: Path | str | None, kind: str, line: int | None) -> None:
    """Nesting depth, finite floats (``1e999`` parses as inf) and, when the text escapes a surrogate, UTF-8-safe strings.

    Iterative, so no document can exhaust the stack here.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise DataError(f"{kind} is nested more than {max_depth} levels deep", path=path, line=line)
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend(
                (child, depth + 1) for child in children if not isinstance(child, int | None) and (surrogates or not isinstance(child, str))
            )
        elif isinstance(item, float):
            if finite and not math.isfinite(item):
                raise DataError(f"{kind} holds a number that is not finite ({item})", path=path, line=line)
        elif surrogates and isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise DataError(f"{kind} holds a lone surrogate (\\ud800-\\udfff) in text", path=path, line=line) from None


def read_json_file(
    path: Path | str, kind: str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH, finite: bool = True
) -> Any:
    """A regular JSON file, BOM dropped, checked as :func:`load_json` does; ``kind`` as in "result" file."""
    text = read_text_file(path, kind, max_bytes)
    return load_json(text, path=path, kind=f"{kind} file", max_depth=max_depth, finite=finite)


# --- data files --------------------------------------------------------------------------------------


_ROWS_MEMO: dict[tuple[Any, ...], list[Row]] = {}
_ROWS_MEMO_LOCK = threading.Lock()
ROWS_MEMO_BYTES = 32 * 2**20
"""Files up to this size are kept parsed once per process (a sweep scores one task many times)."""


def read_rows(path: Path, required: Sequence[str] = ()) -> list[Row]:
    """Read a .tsv, .csv or .jsonl file; check that ``required`` columns exist and that it is not empty.

    Memoised per process on the file's content (a BLAKE2 digest of its bytes, far cheaper
    than parsing), so the cells of a sweep parse a task's data once while an edited file
    is always read again. Callers get a fresh list; rows are shared and must not be mutated.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # missing, unreadable, a NUL in the name: the reader below says which
        info = None
    if info is None or not stat.S_ISREG(info.st_mode) or info.st_size > ROWS_MEMO_BYTES:
        return _read_rows(path, required)
    try:
        with open(path, "rb") as handle:
            digest = hashlib.blake2b(handle.read(ROWS_MEMO_BYTES + 1), digest_size=20).hexdigest()
    except OSError:
        return _read_rows(path, required)
    key = (str(path.resolve()), path.suffix.lower(), digest, tuple(required))
    with _ROWS_MEMO_LOCK:
        rows = _ROWS_MEMO.get(key)
    if rows is None:
        rows = _read_rows(path, required)
        with _ROWS_MEMO_LOCK:
            if len(_ROWS_MEMO) >= 16:
                _ROWS_MEMO.clear()
            _ROWS_MEMO[key] = rows
    return list(rows)


def _read_rows(path: Path, required: Sequence[str] = ()) -> list[Row]:
    suffix = path.suffix.lower()
    if suffix in {".tsv", ".csv", ".txt"}:
        rows = _read_delimited(path, "," if suffix == ".csv" else "\t", required)
    elif suffix in {".jsonl", ".ndjson"}:
        rows = _read_jsonl(path, required)
    else:
        open_regular(path).close()  # a missing file or a device says so before its name is judged
        raise DataError(f"unknown data file type '{suffix}'", path=path, hint="use .tsv, .csv or .jsonl")
    if not rows:
        raise DataError("data file has no records", path=path)
    return rows


def read_many(paths: Iterable[Path], required: Sequence[str] = ()) -> list[Row]:
    rows: list[Row] = []
    for path in paths:
        rows.extend(read_rows(path, required))
    return rows


def _raw_lines(path: Path, handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each line, BOM dropped from the first; a line over MAX_RECORD_BYTES is an error."""
    line_no = 0
    while True:
        try:
            raw = handle.readline(MAX_RECORD_BYTES + 1)
        except OSError as exc:
            raise DataError(f"cannot read data file ({exc.strerror or exc})", path=path, line=line_no + 1) from None
        if not raw:
            return
        line_no += 1
        if len(raw) > MAX_RECORD_BYTES:
            raise DataError(f"line is longer than {_mib(MAX_RECORD_BYTES)}", path=path, line=line_no, hint="is this a data file?")
        if line_no == 1:
            raw = raw.removeprefix(BOM)
        yield line_no, raw


def _text_lines(path: Path, handle: IO[bytes]) -> Iterator[str]:
    """Decoded lines for the csv module, split at LF, CRLF and a lone CR as text mode with ``newline=""`` would."""
    for line_no, raw in _raw_lines(path, handle):
        text = _utf8(raw, path, "data file", line_no)
        if "\r" in text[:-2]:
            yield from _LONE_CR.split(text)
        else:
            yield text


@contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """The csv module's field limit is process-wide: raise it for one read, then put it back."""
    with _csv_limit_lock:
        old = csv.field_size_limit(limit)
        try:
            yield
        finally:
            csv.field_size_limit(old)


def _read_delimited(path: Path, delimiter: str, required: Sequence[str]) -> list[Row]:
    sep = "tab" if delimiter == "\t" else "comma"
    with open_regular(path) as handle, _csv_field_limit(MAX_RECORD_BYTES):
        reader = csv.reader(
            _text_lines(path, handle), delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        )
        try:
            try:
                header = next(reader)
            except StopIteration:
                raise DataError("data file is empty (no header line)", path=path, line=1) from None
            header = [h.strip() for h in header]
            twice = sorted({h for h in header if header.count(h) > 1})
            if twice:
                raise DataError(f"header names column '{twice[0]}' more than once", path=path, line=1, field=twice[0])
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(
                    f"header lacks column(s) {', '.join(missing)}; found {', '.join(map(repr, header)) or 'none'}",
                    path=path,
                    line=1,
                    field=missing[0],
                )
            rows = []
            for values in reader:
                line = reader.line_num
                if not values or (len(values) == 1 and not values[0].strip()):
                    continue
                if len(values) != len(header):
                    raise DataError(f"expected {len(header)} {sep}-separated fields, found {len(values)}", path=path, line=line)
                rows.append(Row(path, line, dict(zip(header, values, strict=True))))
        except csv.Error as exc:
            raise DataError(f"malformed {sep}-separated line ({_first_line(exc)})", path=path, line=reader.line_num) from None
    return rows


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream (line number, object) from a JSON Lines file; a bad line names file and line.

    Streaming, so a large retrieval corpus never has to be held as rows.
    """
    path = Path(path)
    with open_regular(path) as handle:
        for line_no, raw in _raw_lines(path, handle):
            if not raw.strip():
                continue
            value = load_json(raw, path=path, kind="line", line=line_no)
            if not isinstance(value, dict):
                raise DataError(f"expected a JSON object, got {type(value).__name__}", path=path, line=line_no)
            yield line_no, value


def _read_jsonl(path: Path, required: Sequence[str]) -> list[Row]:
    rows = []
    for line_no, value in iter_jsonl(path):
        for column in required:
            if column not in value:
                raise DataError("missing key", path=path, line=line_no, field=column)
        rows.append(Row(path, line_no, value))
    return rows
