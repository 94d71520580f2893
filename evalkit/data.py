"""Generic readers for user data: TSV/CSV with a header, and JSON Lines.

Every row carries its 1-based line number, so an adapter can say exactly where a
bad value is. The readers check shape (columns, JSON syntax, emptiness); adapters
check meaning (a score must be a number, a label must exist in train).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import DataError

csv.field_size_limit(1 << 30)


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
            raise DataError(f"expected text, got {type(value).__name__} {value!r}", path=self.path, line=self.line, field=column)
        return value

    def number(self, column: str) -> float:
        value = self.get(column)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DataError(f"expected a number, got {value!r}", path=self.path, line=self.line, field=column) from None
        if number != number:  # NaN
            raise DataError("value is NaN", path=self.path, line=self.line, field=column)
        return number


def read_toml(path: Path, kind: str) -> dict[str, Any]:
    """A TOML file (task, rules) as a dict; syntax errors name the file and line."""
    import re
    import tomllib

    if not path.is_file():
        raise DataError(f"{kind} file does not exist", path=path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))  # Python 3.11 keeps the line only in the message
        raise DataError(f"{kind} file is not valid TOML: {exc}", path=path, line=int(match.group(1)) if match else None) from None
    except UnicodeDecodeError:
        raise DataError(f"{kind} file is not UTF-8 text", path=path) from None


def read_rows(path: Path, required: Sequence[str] = ()) -> list[Row]:
    """Read a .tsv, .csv or .jsonl file; check that ``required`` columns exist and that it is not empty."""
    if not path.exists():
        raise DataError("data file does not exist", path=path)
    suffix = path.suffix.lower()
    if suffix in {".tsv", ".csv", ".txt"}:
        rows = _read_delimited(path, "," if suffix == ".csv" else "\t", required)
    elif suffix in {".jsonl", ".ndjson"}:
        rows = _read_jsonl(path, required)
    else:
        raise DataError(f"unknown data file type '{suffix}'", path=path, hint="use .tsv, .csv or .jsonl")
    if not rows:
        raise DataError("data file has no records", path=path)
    return rows


def read_many(paths: Iterable[Path], required: Sequence[str] = ()) -> list[Row]:
    rows: list[Row] = []
    for path in paths:
        rows.extend(read_rows(path, required))
    return rows


def _read_delimited(path: Path, delimiter: str, required: Sequence[str]) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError("data file is empty (no header line)", path=path, line=1) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text ({exc.reason})", path=path) from None
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(
                f"header lacks column(s) {', '.join(missing)}; found {', '.join(header)}",
                path=path,
                line=1,
                field=missing[0],
            )
        rows = []
        try:
            for values in reader:
                line = reader.line_num
                if not values or (len(values) == 1 and not values[0].strip()):
                    continue
                if len(values) != len(header):
                    raise DataError(
                        f"expected {len(header)} {'tab' if delimiter == chr(9) else 'comma'}-separated fields, found {len(values)}",
                        path=path,
                        line=line,
                    )
                rows.append(Row(path, line, dict(zip(header, values, strict=True))))
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text ({exc.reason})", path=path, line=reader.line_num + 1) from None
    return rows


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream (line number, object) from a JSON Lines file; a bad line names file and line.

    Streaming, so a large retrieval corpus never has to be held as rows.
    """
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"line is not valid JSON ({exc})", path=path, line=line_no) from None
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
