"""Encoder spec strings: ``BACKEND:MODEL?key=value&key=value``.

A spec is the identity of an encoder everywhere: result files, caches, reports and
the gate all key on its canonical form (options sorted, defaults kept as written),
so two spellings of the same options compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

from evalkit.errors import SpecError


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed encoder spec."""

    backend: str
    model: str
    options: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> EncoderSpec:
        raw = text.strip()
        backend, sep, rest = raw.partition(":")
        if not sep or not backend:
            raise SpecError(
                f"encoder spec {text!r} has no backend",
                hint="write BACKEND:MODEL[?key=value&...], e.g. hf:all-MiniLM-L6-v2?pooling=cls",
            )
        model, _, query = rest.partition("?")
        if not model:
            raise SpecError(f"encoder spec {text!r} names no model", hint="write BACKEND:MODEL")
        options: dict[str, str] = {}
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError as exc:
            raise SpecError(f"encoder spec {text!r}: malformed options {query!r}", hint="use key=value&key=value") from exc
        for key, value in pairs:
            if not key:
                raise SpecError(f"encoder spec {text!r}: malformed options {query!r} (empty key)", hint="use key=value&key=value")
            if key in options:
                raise SpecError(f"encoder spec {text!r} sets option '{key}' twice")
            options[key] = value
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
        if not self.options:
            return f"{self.backend}:{self.model}"
        query = "&".join(f"{k}={quote(v, safe='-_.,/:')}" for k, v in self.options)
        return f"{self.backend}:{self.model}?{query}"

    def slug(self) -> str:
        """A file-name-safe form of the spec (stable, readable, unique)."""
        import hashlib

        text = str(self)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        return f"{safe[:80]}-{digest}"


class Options:
    """Typed access to a spec's options; reports unknown or malformed keys by name."""

    def __init__(self, spec: EncoderSpec, allowed: dict[str, str]) -> None:
        self.spec = spec
        unknown = sorted(set(spec.opts) - set(allowed))
        if unknown:
            import difflib

            key = unknown[0]
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(f"{k} ({v})" for k, v in allowed.items())
            raise SpecError(f"backend '{spec.backend}' has no option '{key}' (in spec {str(spec)!r})", hint=hint)

    def text(self, key: str, default: str) -> str:
        return self.spec.opts.get(key, default)

    def optional(self, key: str) -> str | None:
        return self.spec.opts.get(key)

    def integer(self, key: str, default: int) -> int:
        value = self.spec.opts.get(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise SpecError(f"option '{key}' must be an integer, got {value!r} (in spec {str(self.spec)!r})") from None

    def flag(self, key: str, default: bool) -> bool:
        value = self.spec.opts.get(key)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SpecError(f"option '{key}' must be true or false, got {value!r} (in spec {str(self.spec)!r})")

    def choice(self, key: str, default: str, choices: list[str] | tuple[str, ...]) -> str:
        value = self.spec.opts.get(key, default)
        if value not in choices:
            import difflib

            close = difflib.get_close_matches(value, list(choices), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "choose one of: " + ", ".join(choices)
            raise SpecError(f"option '{key}' cannot be {value!r} (in spec {str(self.spec)!r})", hint=hint)
        return value
