"""The trace-format protocol and its registry.

A format is one module in :mod:`teich.traces.formats` that defines ``FORMAT``, an instance of a
:class:`TraceFormat` subclass: how to recognise its records (``matches``), how to read its files
(``read``, JSON lines by default), which records it cannot use (``check``: a field it reads has the
wrong type) and how to turn a session into rows (``convert``). The registry (:data:`FORMATS`, a
:class:`~teich.registry.Registry`) imports every module of that package, so adding a format is adding
one module; ``FORMATS.registered(fmt)`` adds one for the length of a block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from teich.registry import Registry
from teich.schema import TrainingExample
from teich.traces.reader import TraceFile, read_trace_file

Record = dict[str, Any]


@dataclass
class Converted:
    """The rows one session (or one row record) yields, what was left out of them on purpose (by reason),
    and the records that were skipped or changed, each with what happened to it."""

    rows: list[TrainingExample] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    skipped: list[tuple[Record | None, str]] = field(default_factory=list)
    repaired: list[tuple[Record | None, str]] = field(default_factory=list)


class TraceFormat(ABC):
    """One native trace format. Subclasses set ``name`` and implement ``matches`` and ``convert``."""

    name: ClassVar[str]
    #: Whether each record is its own conversation (row datasets) rather than the whole file one session.
    per_row: ClassVar[bool] = False
    #: Detection order: lower is tried first, so specific formats come before the ones they resemble.
    priority: ClassVar[int] = 50
    #: File names (glob patterns) that accompany this format's sessions but are not sessions themselves.
    sidecars: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def matches(self, records: list[Record]) -> bool:
        """Whether these records (a file's, or one row) are in this format."""

    @abstractmethod
    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        """The rows of one session (or one row record); ``path`` is the file it came from, where there is one."""

    def check(self, record: Record) -> None:
        """Raise :class:`~teich.errors.RecordError` when a field of this record that ``convert`` reads has
        the wrong type; such a record is skipped (a row dropped), the rest of the session kept."""
        return None

    def read(self, path: Path) -> TraceFile:
        """The records of a file in this format (JSON lines, or one JSON document)."""
        return read_trace_file(path)


def _detection_order(trace_format: TraceFormat) -> tuple[int, str]:
    return trace_format.priority, trace_format.name


#: Every format in :mod:`teich.traces.formats`, in detection order.
FORMATS: Registry[TraceFormat] = Registry("FORMAT", ("teich.traces.formats",), order=_detection_order)


def registered_formats() -> tuple[TraceFormat, ...]:
    """Every registered format, in detection order."""
    return tuple(FORMATS)


def find_format(records: list[Record]) -> TraceFormat | None:
    """The first registered format that recognises these records."""
    return next((f for f in FORMATS if f.matches(records)), None)


def format_named(name: str) -> TraceFormat:
    """The registered format called ``name``."""
    return FORMATS[name]
