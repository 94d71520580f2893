"""Encoder spec strings: ``BACKEND:MODEL?key=value&key=value``.

A spec is the identity of an encoder everywhere: result files, caches, reports and
the gate all key on its canonical form (``str(spec)``), so two spellings of the same
options compare equal and two different option values never do.

The rule, in full:

* ``BACKEND`` is everything before the first ``:`` (ASCII letters, digits, ``. _ + -``;
  case-insensitive, kept lowercased). ``MODEL`` is everything up to the first ``?``,
  kept as written (it may hold ``/``, ``:``, ``@``, ``&``, ``%``), without surrounding
  whitespace; it may not hold control characters.
* After ``?``, options are ``key=value`` pairs joined by ``&``. Keys and values are
  taken literally — ``+`` is a plus, spaces (leading and trailing ones too) are spaces,
  ``?``, ``#``, ``:`` and ``/`` mean nothing special — except that ``%XX`` escapes
  (UTF-8 bytes in hex) are decoded. So ``&`` must be written ``%26``, a literal ``%``
  ``%25``, and ``=`` in a key ``%3D``; a ``%`` that does not start an escape is an error,
  never a guess. A value may hold further ``=`` as is.
* The canonical form sorts options by key and escapes exactly ``%``, ``&``, ``=``,
  control characters (C0, DEL, C1), line/paragraph separators and bidirectional
  controls, and whitespace at either end of a key or value (so a trailing space is
  visible). Hence ``parse(str(spec)) == spec`` for every spec, and
  ``str(parse(text))`` is the same string for every spelling of one encoder.
* A spec that is not valid UTF-8 text (a lone surrogate, e.g. undecodable bytes from
  the command line) is a :class:`~evalkit.errors.SpecError`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from evalkit.errors import SpecError

_BACKEND = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE_HINT = "in option keys and values write & as %26, % as %25 and = in a key as %3D"
# A fixed set (not Unicode categories, which move between Python versions), so a canonical
# form never changes with the interpreter: C0, DEL, C1, line/paragraph separators, bidi controls.
_INVISIBLE = frozenset(
    [chr(c) for c in range(0x20)]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + ["\u061c", "\u200e", "\u200f", "\u2028", "\u2029", "\ufeff"]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
)
_SPACE = frozenset(" \u00a0\u1680\u202f\u205f\u3000" + "".join(chr(c) for c in range(0x2000, 0x200B)))
_SPECIAL = frozenset("%&=")


def _show(text: str, limit: int = 120) -> str:
    """A spec as one printable, bounded line for an error message."""
    shown = repr(text[:limit])
    return shown + ("…" if len(text) > limit else "")


def escape(text: str) -> str:
    """``text`` as written in a canonical spec: escapes exactly what parsing would otherwise change."""
    last = len(text) - 1
    out = []
    for i, char in enumerate(text):
        if char in _SPECIAL or char in _INVISIBLE or (char in _SPACE and i in (0, last)):
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass")))
        else:
            out.append(char)
    return "".join(out)


def unescape(text: str, spec: str) -> str:
    """A key or value as written in ``spec`` → the text the backend gets (``%XX`` decoded, nothing else)."""
    if "%" not in text:
        return text
    if _BAD_PERCENT.search(text):
        raise SpecError(f"encoder spec {_show(spec)}: '%' must start an escape such as %25 or %26", hint=_ESCAPE_HINT)
    try:
        return unquote(text, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise SpecError(f"encoder spec {_show(spec)}: percent-escapes that are not UTF-8", hint=_ESCAPE_HINT) from None


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed encoder spec (options hold the decoded text the backend gets)."""

    backend: str
    model: str
    options: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> EncoderSpec:
        if not isinstance(text, str):
            raise SpecError(f"encoder spec must be text, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise SpecError(
                f"encoder spec {_show(text)} is not valid UTF-8 text", hint="write the spec in UTF-8; escape other bytes as %XX"
            ) from None
        backend, sep, rest = text.partition(":")
        backend = backend.strip()
        if not sep or not backend:
            raise SpecError(
                f"encoder spec {_show(text)} has no backend",
                hint="write BACKEND:MODEL[?key=value&...], e.g. hf:all-MiniLM-L6-v2?pooling=cls",
            )
        if not _BACKEND.match(backend):
            raise SpecError(
                f"encoder spec {_show(text)}: backend {_show(backend)} is not a backend name",
                hint="a backend name is ASCII letters, digits, '.', '_', '+' and '-'; see `evalkit list`",
            )
        model, _, query = rest.partition("?")
        model = model.strip()
        if not model:
            raise SpecError(f"encoder spec {_show(text)} names no model", hint="write BACKEND:MODEL")
        if any(char in _INVISIBLE for char in model):
            raise SpecError(f"encoder spec {_show(text)}: the model name holds a control character", hint="write BACKEND:MODEL")
        options: dict[str, str] = {}
        for piece in query.split("&") if query else ():
            raw_key, eq, raw_value = piece.partition("=")
            if not eq or not raw_key:
                what = "an empty option" if not piece else f"{_show(piece, 40)} has no " + ("key" if eq else "'='")
                raise SpecError(f"encoder spec {_show(text)}: malformed options: {what}", hint="use key=value&key=value; " + _ESCAPE_HINT)
            key = unescape(raw_key, text)
            if key in options:
                raise SpecError(f"encoder spec {_show(text)} sets option {_show(key, 40)} twice")
            options[key] = unescape(raw_value, text)
        return cls(backend.lower(), model, tuple(sorted(options.items())))

    @property
    def opts(self) -> dict[str, str]:
        return dict(self.options)

    def with_options(self, **updates: str) -> EncoderSpec:
        merged = {**self.opts, **updates}
        return EncoderSpec(self.backend, self.model, tuple(sorted(merged.items())))

    def without(self, *keys: str) -> EncoderSpec:
        return EncoderSpec(self.backend, self.model, tuple(kv for kv in self.options if kv[0] not in keys))

    def __str__(self) -> str:
        """The canonical form: ``parse(str(spec)) == spec``; see the module docstring for the escaping rule."""
        if not self.options:
            return f"{self.backend}:{self.model}"
        query = "&".join(f"{escape(k)}={escape(v)}" for k, v in self.options)
        return f"{self.backend}:{self.model}?{query}"

    def slug(self) -> str:
        """The folder name of this encoder's results: a readable ASCII prefix and a digest of ``str(self)``.

        Distinct specs differ in the digest; a digest collision (32 bits) is refused by the
        result store, never merged. ASCII specs keep the names evalkit always gave them.
        """
        text = str(self)
        safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in text)
        if safe.startswith("."):
            safe = "_" + safe[1:]
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        return f"{safe[:80]}-{digest}"
