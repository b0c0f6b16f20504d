"""Writing a generation run's outputs safely: one run at a time per output folder, rows appended
durably, and answers the output cannot take (disk full, read-only) kept in a spill file.

The spill file lies beside the rows file when that folder can take it, else in the user's state
folder (``$XDG_STATE_HOME/teich/unwritten``), else in the temporary folder; its name comes from the
rows file's path, so ``--resume`` finds it, moves its rows into place and asks the model only for
the rest.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from teich.errors import OutputError, TeichError

LOCK_FILE = ".teich-generate.lock"
RESUME_HINT = "free space or make it writable, then rerun with --resume"


def cannot_write(path: Path, error: OSError, kept: str = "") -> OutputError:
    """The one-line error for ``path``, with what was kept instead (``kept``)."""
    return OutputError(f"cannot write {path}: {_reason(error)}{kept}; {RESUME_HINT}")


@contextmanager
def lock_output(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock for the block, so that a second run on it is refused rather than interleaved.

    The lock goes with the process: a run that crashes or is killed never leaves it held."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise OutputError(f"cannot write to the output folder {folder}: {_reason(error)}") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
            raise OutputError(
                f"another teich generate{f' (pid {holder})' if holder else ''} is writing to {folder}: "
                "wait for it to finish, or pass another --output"
            ) from None
        try:  # who holds it, for the message above; a folder that cannot take these bytes cannot take rows
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except OSError as error:
            raise OutputError(f"cannot write to the output folder {folder}: {_reason(error)}") from None
        yield
    finally:
        os.close(descriptor)


class RowLog:
    """The append-only JSONL file of finished rows, with spill files for the rows it could not take."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spills = spill_paths(path)
        self.failure: OSError | None = None  # why ``path`` could not be written; later rows go to a spill file
        self.kept: dict[Path, int] = {}  # rows spilled by this run, by spill file
        self.lost = 0  # rows that no spill file could take

    def rows(self) -> list[dict[str, Any]]:
        """Every complete row, written or spilled; a line cut short by a crash is cut off the file first."""
        lines = [(self.path, number, line) for number, line in enumerate(_lines(self.path, repair=True), 1)]
        lines += [(spill, number, line) for spill in self.spills for number, line in enumerate(_lines(spill), 1)]
        return [_parsed(path, number, line) for path, number, line in lines]

    def append(self, row: dict[str, Any]) -> None:
        """Write one row and sync it; a row the file cannot take goes to a spill file, then :class:`OutputError`."""
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        if self.failure is None:
            try:
                _append(self.path, line)
                return
            except OSError as error:
                self.failure = error
        self._spill(line)
        kept = f"; {_answers(sum(self.kept.values()))} received kept in {_joined(self.kept)}" if self.kept else ""
        lost = f"; {_answers(self.lost)} could not be kept anywhere" if self.lost else ""
        raise cannot_write(self.path, self.failure, kept + lost)

    def recover(self) -> None:
        """Move spilled rows into the file (unless it has them already), then remove the spill files."""
        present = [spill for spill in self.spills if spill.exists()]
        if not present:
            return
        written = set(_lines(self.path, repair=True))
        missing = [line for spill in present for line in _lines(spill) if line not in written]
        try:
            _append(self.path, b"".join(line + b"\n" for line in dict.fromkeys(missing)))
        except OSError as error:
            kept = f"; {_answers(len(missing))} still kept in {_joined(present)}"
            raise cannot_write(self.path, error, kept) from None
        for spill in present:
            with suppress(OSError):  # left behind, it is harmless: its rows are in the file now
                spill.unlink()

    def _spill(self, line: bytes) -> None:
        for spill in self.spills:
            with suppress(OSError):
                _append(spill, line)
                self.kept[spill] = self.kept.get(spill, 0) + 1
                return
        self.lost += 1


def spill_paths(target: Path, suffix: str = ".jsonl") -> list[Path]:
    """Where what ``target`` cannot take goes, best first: beside it, the state folder, the temporary
    folder (files for a rows file; folders, with ``suffix=""``, for a folder of sessions)."""
    tag = hashlib.sha256(str(target).encode()).hexdigest()[:16]
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return [
        target.with_name(f".{target.name}.unwritten"),
        state / "teich" / "unwritten" / f"{tag}{suffix}",
        Path(tempfile.gettempdir()) / f"teich-unwritten-{tag}{suffix}",
    ]


def _append(path: Path, data: bytes) -> None:
    """Append ``data`` and sync it; on failure the file is cut back, so that no partial line stays."""
    if not data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(descriptor).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        except OSError:
            with suppress(OSError):
                os.ftruncate(descriptor, size)
            raise
    finally:
        os.close(descriptor)


def _lines(path: Path, *, repair: bool = False) -> list[bytes]:
    """The complete lines of ``path`` (none if it is missing); ``repair`` cuts a partial last line off the file."""
    try:
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if repair and complete != data:
            with path.open("r+b") as handle:
                handle.truncate(len(complete))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise OutputError(f"cannot use {path}: {_reason(error)}") from None
    return complete.splitlines()


def _parsed(path: Path, number: int, line: bytes) -> dict[str, Any]:
    try:
        row: dict[str, Any] = json.loads(line)
        return row
    except json.JSONDecodeError:
        raise TeichError(f"{path}:{number}: not a JSON row; fix or remove it before resuming") from None


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _answers(count: int) -> str:
    return f"{count} answer{'' if count == 1 else 's'}"


def _joined(paths: Iterable[Path]) -> str:
    return ", ".join(map(str, paths))
