"""Reading trace files into JSON records, tolerating damage line by line.

Plain, gzip (``.gz``) and Zstandard (``.zst``) files are read as a stream of lines.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

_BINARY_SNIFF_BYTES = 8192
COMPRESSED_SUFFIXES = (".gz", ".zst")


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


def data_suffix(path: Path) -> str:
    """The suffix that names a file's content, under any compression suffix (``a.jsonl.gz`` -> ``.jsonl``)."""
    if path.suffix in COMPRESSED_SUFFIXES:
        return Path(path.stem).suffix
    return path.suffix


def read_trace_file(path: Path) -> TraceFile:
    """Read a JSONL (or JSON) file, possibly compressed; bad lines are recorded as problems and skipped."""
    trace = TraceFile(path)
    try:
        if data_suffix(path) == ".json":
            _read_document_or_lines(trace, _read_all(path))
            return trace
        with _opened(path) as stream:
            _read_lines(trace, stream)
        if not trace.records and len(trace.problems) > 1:  # a pretty-printed JSON document under a .jsonl name
            document = TraceFile(path)
            if _read_whole_json(document, _read_all(path)):
                return document
    except Exception as error:  # unreadable, or a damaged compressed stream (gzip, zlib, zstd raise their own)
        reason = getattr(error, "strerror", None) or error
        trace.problems.append(Problem(str(path), None, f"cannot read file: {reason}"))
    return trace


def _read_all(path: Path) -> bytes:
    with _opened(path) as stream:
        return stream.read()


def _read_document_or_lines(trace: TraceFile, data: bytes) -> None:
    if _is_binary(data):
        _binary(trace)
    elif not _read_whole_json(trace, data):
        _read_lines(trace, io.BytesIO(data))


@contextmanager
def _opened(path: Path) -> Iterator[IO[bytes]]:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as stream:
            yield stream
    elif path.suffix == ".zst":
        import zstandard

        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
            yield io.BufferedReader(stream)
    else:
        with path.open("rb") as stream:
            yield stream


def _read_lines(trace: TraceFile, stream: IO[bytes]) -> None:
    pending: tuple[int, bytes] | None = None
    for number, line in enumerate(stream, start=1):
        if number == 1 and _is_binary(line[:_BINARY_SNIFF_BYTES]):
            _binary(trace)
            return
        if pending:
            _read_line(trace, *pending, is_last_unterminated=False)
        pending = (number, line) if line.strip() else None
    if pending:
        _read_line(trace, *pending, is_last_unterminated=not pending[1].endswith(b"\n"))


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:_BINARY_SNIFF_BYTES]


def _binary(trace: TraceFile) -> TraceFile:
    trace.problems.append(Problem(str(trace.path), None, "binary file, not JSON lines"))
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
        records = _json_values(line.decode("utf-8"))
    except UnicodeDecodeError:
        trace.problems.append(Problem(str(trace.path), number, "invalid UTF-8"))
        return
    except json.JSONDecodeError as error:
        reason = "truncated JSON (file cut off?)" if is_last_unterminated else f"malformed JSON ({error.msg})"
        trace.problems.append(Problem(str(trace.path), number, reason))
        return
    for record in records:
        if not isinstance(record, dict):
            message = f"expected a JSON object, got {type(record).__name__}"
            trace.problems.append(Problem(str(trace.path), number, message))
            continue
        trace.records.append(record)
        trace.lines.append(number)


def _json_values(text: str) -> list[Any]:
    """The JSON values on one line: usually one, but agents that crashed mid-write leave two
    records joined without a newline, and both are whole."""
    decoder = json.JSONDecoder()
    values, index = [], 0
    while index < len(text):
        value, index = decoder.raw_decode(text, index)
        values.append(value)
        while index < len(text) and text[index].isspace():
            index += 1
    return values
