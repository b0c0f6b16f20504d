"""Native trace formats: detection and conversion into :class:`~teich.schema.TrainingExample` rows.

Each format module exposes ``NAME``, ``PER_ROW`` (whether every record is its own conversation, as
in row datasets, or the whole file is one session), ``matches(records)`` and ``convert(records)``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from teich.traces import (
    claude_code,
    codex,
    cursor,
    droid,
    hermes,
    openai,
    openclaw,
    pi,
    sharegpt,
    teich_chat,
)

# Most specific first: Teich chat and Hermes rows are OpenAI-style rows with extra columns.
FORMATS: tuple[ModuleType, ...] = (
    codex,
    openclaw,
    pi,
    claude_code,
    droid,
    cursor,
    hermes,
    teich_chat,
    sharegpt,
    openai,
)
FORMAT_NAMES = tuple(f.NAME for f in FORMATS)


def detect_trace_type(events: list[dict[str, Any]]) -> str | None:
    """The name of the format these records are in (one of :data:`FORMAT_NAMES`), or ``None``."""
    trace_format = find_format(events)
    return trace_format.NAME if trace_format else None


def find_format(events: list[dict[str, Any]]) -> ModuleType | None:
    return next((f for f in FORMATS if f.matches(events)), None)


__all__ = ["FORMATS", "FORMAT_NAMES", "detect_trace_type", "find_format"]
