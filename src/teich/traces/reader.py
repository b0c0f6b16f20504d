"""Reading trace files into JSON records, tolerating damage line by line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BINARY_SNIFF_BYTES = 8192


@dataclass
class Problem:
    """Something in the input that could not be used, with where it is."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass
class TraceFile:
    """The JSON records of one file, each with its 1-based line number (0 for a whole-file JSON)."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_trace_file(path: Path) -> TraceFile:
    """Read a JSONL (or JSON) file; bad lines are recorded as problems and skipped."""
    trace = TraceFile(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        trace.problems.append(Problem(str(path), None, f"cannot read file: {error.strerror or error}"))
        return trace
    if b"\0" in data[:_BINARY_SNIFF_BYTES]:
        trace.problems.append(Problem(str(path), None, "binary file, not JSON lines"))
        return trace
    if path.suffix == ".json" and _read_whole_json(trace, data):
        return trace
    lines = data.splitlines()
    cut_off = not data.endswith(b"\n")
    for number, line in enumerate(lines, start=1):
        if line.strip():
            _read_line(trace, number, line, cut_off and number == len(lines))
    return trace


def _read_whole_json(trace: TraceFile, data: bytes) -> bool:
    """A ``.json`` file holding one object or a list of objects; ``False`` if it is JSON lines instead."""
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        if isinstance(item, dict):
            trace.records.append(item)
            trace.lines.append(0)
        else:
            trace.problems.append(Problem(str(trace.path), None, f"item {index} is not a JSON object"))
    return True


def _read_line(trace: TraceFile, number: int, line: bytes, is_last_unterminated: bool) -> None:
    try:
        record = json.loads(line)
    except UnicodeDecodeError:
        trace.problems.append(Problem(str(trace.path), number, "invalid UTF-8"))
        return
    except json.JSONDecodeError as error:
        reason = "truncated JSON (file cut off?)" if is_last_unterminated else f"malformed JSON ({error.msg})"
        trace.problems.append(Problem(str(trace.path), number, reason))
        return
    if not isinstance(record, dict):
        trace.problems.append(Problem(str(trace.path), number, f"expected a JSON object, got {type(record).__name__}"))
        return
    trace.records.append(record)
    trace.lines.append(number)
