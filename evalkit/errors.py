"""User-facing errors.

Every problem a user can fix (a bad spec, a malformed data file, an unknown task)
raises :class:`EvalkitError`. The CLI prints it as one line and exits with code 2,
so nothing here should ever surface as a traceback.
"""

from __future__ import annotations

from pathlib import Path

USAGE_EXIT_CODE = 2


class EvalkitError(Exception):
    """An error the user can act on: says what is wrong and where."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """One line, always: control characters from data (a newline in a path, an ANSI escape) are shown escaped."""
        return one_line(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "")
        field = f"field '{self.field}': " if self.field else ""
        text = f"{where}: {field}{self.message}" if where else f"{field}{self.message}"
        return f"{text} ({self.hint})" if self.hint else text


def one_line(text: str) -> str:
    """``text`` with control characters (C0, C1, DEL, line/paragraph separators) and lone surrogates escaped."""
    out = []
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029) or 0xD800 <= code < 0xE000:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


class DataError(EvalkitError):
    """A data, task or result file that does not parse or validate."""


class SpecError(EvalkitError):
    """An encoder spec that names no known backend or has bad options."""


class ModelUnavailableError(EvalkitError):
    """A model that cannot be loaded here (offline, not packaged, not a folder)."""
