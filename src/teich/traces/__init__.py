"""Native trace formats: detection and conversion into :class:`~teich.schema.TrainingExample` rows.

Each format is one module in :mod:`teich.traces.formats` implementing :class:`TraceFormat`; the
registry (:data:`FORMATS`, listed by :func:`registered_formats`) finds them all.
"""

from __future__ import annotations

from typing import Any

from teich.traces.protocol import FORMATS, Converted, TraceFormat, find_format, format_named, registered_formats


def format_names() -> tuple[str, ...]:
    """The names of the registered formats, in detection order."""
    return FORMATS.names()


def detect_trace_type(events: list[dict[str, Any]]) -> str | None:
    """The format ``events`` (a session's parsed records) are in: one of :func:`format_names`, or ``None``."""
    trace_format = find_format(events)
    return trace_format.name if trace_format else None


__all__ = [
    "FORMATS",
    "Converted",
    "TraceFormat",
    "detect_trace_type",
    "find_format",
    "format_named",
    "format_names",
    "registered_formats",
]
