"""Reading trace files into JSON records, tolerating damage line by line.

Plain, gzip (``.gz``) and Zstandard (``.zst``) files are read as a stream of lines. A record nested
deeper than :data:`MAX_DEPTH` is skipped; lone UTF-16 surrogates (``\\ud800`` escaped in JSON, or
their raw UTF-8 bytes) are replaced by U+FFFD, so nothing downstream (Arrow, tokenizers) meets them.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from teich.errors import RecordError

_BINARY_SNIFF_BYTES = 8192
COMPRESSED_SUFFIXES = (".gz", ".zst")
#: How deeply a record may nest objects and lists; real traces stay far below it.
MAX_DEPTH = 100
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    #: Records used after a change (lone surrogates replaced), with where they are.
    repairs: list[Problem] = field(default_factory=list)


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
        with open_decompressed(path) as stream:
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
    with open_decompressed(path) as stream:
        return stream.read()


def _read_document_or_lines(trace: TraceFile, data: bytes) -> None:
    if _is_binary(data):
        _binary(trace)
    elif not _read_whole_json(trace, data):
        _read_lines(trace, io.BytesIO(data))


@contextmanager
def open_decompressed(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for reading bytes, decompressed when it ends in ``.gz`` or ``.zst``."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as stream:
            yield cast(IO[bytes], stream)
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
    except RecursionError:
        trace.problems.append(Problem(str(trace.path), None, _too_deep()))
        return True
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        if isinstance(item, dict):
            _add(trace, item, 0, needs_scan=True)
        else:
            trace.problems.append(Problem(str(trace.path), None, f"item {index} is not a JSON object"))
    return True


def _read_line(trace: TraceFile, number: int, line: bytes, is_last_unterminated: bool) -> None:
    try:
        text = _decoded(line)
        records = _json_values(text)
    except UnicodeDecodeError:
        trace.problems.append(Problem(str(trace.path), number, "invalid UTF-8"))
        return
    except json.JSONDecodeError as error:
        reason = "truncated JSON (file cut off?)" if is_last_unterminated else f"malformed JSON ({error.msg})"
        trace.problems.append(Problem(str(trace.path), number, reason))
        return
    except RecursionError:
        trace.problems.append(Problem(str(trace.path), number, _too_deep()))
        return
    for record in records:
        if not isinstance(record, dict):
            message = f"expected a JSON object, got {type(record).__name__}"
            trace.problems.append(Problem(str(trace.path), number, message))
            continue
        _add(trace, record, number, needs_scan=_may_hold_surrogates(line))


def _may_hold_surrogates(line: bytes) -> bool:
    """Whether a line may hold a surrogate: escaped (``\\ud800``) or encoded raw (``ED A0 80``; the
    byte ``ED`` also leads some valid characters, which only costs a needless scan)."""
    return b"\\ud" in line or b"\\uD" in line or b"\xed" in line


def _decoded(line: bytes) -> str:
    """UTF-8 text; surrogates encoded in UTF-8 (``ED A0 80``, invalid but written by some tools) pass,
    to be replaced like escaped ones."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("utf-8", "surrogatepass")


def _add(trace: TraceFile, record: dict[str, Any], number: int, needs_scan: bool) -> None:
    """Keep a record unless it nests too deeply, its lone surrogates replaced (noted as a repair)."""
    try:
        record, replaced = checked_value(record, needs_scan)
    except RecordError as error:
        trace.problems.append(Problem(str(trace.path), number or None, str(error)))
        return
    if replaced:
        trace.repairs.append(Problem(str(trace.path), number or None, surrogates_replaced(replaced)))
    trace.records.append(record)
    trace.lines.append(number)


def checked_value(value: Any, scan_strings: bool = True) -> tuple[Any, int]:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD, and how many
    were; :class:`RecordError` when it nests deeper than :data:`MAX_DEPTH`. Without ``scan_strings``
    only the depth is checked."""
    _check_depth(value)
    if not scan_strings:
        return value, 0
    counter = [0]
    return _replace_surrogates(value, counter), counter[0]


def surrogates_replaced(count: int) -> str:
    """The note on a record whose lone surrogates were replaced."""
    return f"{count} lone UTF-16 surrogate(s) replaced by U+FFFD"


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > MAX_DEPTH:
            raise RecordError(_too_deep())
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _replace_surrogates(value: Any, counter: list[int]) -> Any:
    if isinstance(value, str):
        if value.isascii():
            return value
        value, count = _SURROGATE.subn(REPLACEMENT, value)
        counter[0] += count
        return value
    if isinstance(value, dict):
        return {_replace_surrogates(k, counter): _replace_surrogates(v, counter) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(item, counter) for item in value]
    return value


def _too_deep() -> str:
    return f"JSON nested deeper than {MAX_DEPTH} levels"


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
