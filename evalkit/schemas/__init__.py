"""Typed descriptions of every input evalkit reads (pydantic v2), validated in one place."""

from evalkit.schemas.base import Finite, LaxSchema, Name, Schema, Seed, Text, parse

__all__ = ["Finite", "LaxSchema", "Name", "Schema", "Seed", "Text", "parse"]
