"""Reading inputs with clear errors, and writing outputs atomically, so that an interrupted run never
leaves a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from teich.errors import TeichError


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """A text file's content, or a one-line :class:`TeichError` naming it."""
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise TeichError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TeichError(f"{path}: cannot be read ({error})") from None


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines to a temporary file beside ``path``, then move it into place."""
    count = 0
    with _replaced(Path(path)) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to a temporary file beside ``path``, then move it into place."""
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then move it into place."""
    with _replaced(Path(path)) as out:
        out.write(text)


@contextmanager
def _replaced(path: Path) -> Iterator[TextIO]:
    """A text file that replaces ``path`` when the block ends normally, and vanishes otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
