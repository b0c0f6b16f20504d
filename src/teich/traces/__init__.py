"""Native trace formats: detection and conversion into :class:`~teich.schema.TrainingExample` rows.

Each format is one module in :mod:`teich.traces.formats` implementing :class:`TraceFormat`; the
registry (:func:`registered_formats`) finds them all.
"""

from __future__ import annotations

from typing import Any

from teich.traces.protocol import Converted, TraceFormat, find_format, format_named, registered_formats


def format_names() -> tuple[str, ...]:
    """The names of the registered formats, in detection order."""
    return tuple(f.name for f in registered_formats())


def detect_trace_type(events: list[dict[str, Any]]) -> str | None:
    """The name of the format these records are in (one of :func:`format_names`), or ``None``."""
    trace_format = find_format(events)
    return trace_format.name if trace_format else None


__all__ = [
    "Converted",
    "TraceFormat",
    "detect_trace_type",
    "find_format",
    "format_named",
    "format_names",
    "registered_formats",
]
