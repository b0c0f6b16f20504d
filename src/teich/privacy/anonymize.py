"""Redacting secrets and personal data from sessions, rows and Hub-bound folders, keeping every file valid.

Each session (a file, with its sub-agents' files) gets its own placeholders: the same value becomes the
same typed placeholder throughout it (``<SECRET:aws_access_key_1>``, ``<EMAIL_1>``, ``<PHONE_1>``,
``<IP_ADDRESS_1>``, ``<NAME_1>``), and the user name of a home folder becomes ``user`` (``/home/user``,
``C:\\Users\\user``), also where it stands as a word elsewhere in the session. JSON lines and JSON documents
are parsed and their strings redacted (object keys too), so each record stays a valid record and JSON
inside a string (tool arguments) stays valid JSON; lines that are not JSON, and other text files, are
redacted as text; Parquet files row by row; ``.gz`` and ``.zst`` files inside their compression. SQLite
databases and other binary files are skipped, with the reason in the report.
"""

from __future__ import annotations

import getpass
import gzip
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, overload

import pyarrow
import pyarrow.parquet as parquet
import zstandard

from teich.errors import TeichError, first_line
from teich.parallel import can_fork, fork_map
from teich.privacy.detect import GENERIC_USERS, Finding, find_sensitive, home_users, strings
from teich.reports import Report, Tally
from teich.traces.reader import data_suffix

#: What a home folder's user name becomes.
ANONYMOUS_USER = "user"
_SNIFF_BYTES = 8192
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: A placeholder :meth:`Placeholders.placeholder` writes: ``<SECRET:kind_n>`` (group ``secret``: the
#: credential's kind) or ``<KIND_n>`` (group ``personal``: the personal data's kind, upper case).
PLACEHOLDER = re.compile(r"<SECRET:(?P<secret>[a-z0-9_]+)_\d+>|<(?P<personal>[A-Z][A-Z0-9_]*)_\d+>")


@dataclass
class Placeholders:
    """One session's mapping from each sensitive value to its typed placeholder, numbered by kind in order
    of first appearance, so that the same value reads the same throughout the session."""

    #: The user's own names (``<NAME_n>`` wherever they appear, any case).
    own_names: Sequence[str] = ()
    #: Account names redacted as words, learned from the session's home folders (see :meth:`learn`).
    users: set[str] = field(default_factory=set)
    assigned: dict[tuple[str, str], str] = field(default_factory=dict)
    numbers: Counter[str] = field(default_factory=Counter)

    def learn(self, text: str) -> None:
        """Take note of the user names of the home folders in ``text``."""
        self.users |= home_users(text)

    def findings(self, text: str) -> list[Finding]:
        """What is to be redacted in ``text``, after taking note of its home folders' user names."""
        self.learn(text)
        return find_sensitive(text, own_names=self.own_names, users=sorted(self.users))

    def placeholder(self, kind: str, secret: bool, value: str) -> str:
        """What ``value`` (of ``kind``) becomes; placeholders hold no quote or backslash, so JSON stays valid."""
        if kind == "home_user":
            return ANONYMOUS_USER
        key = (kind, value)
        if key not in self.assigned:
            self.numbers[kind] += 1
            number = self.numbers[kind]
            self.assigned[key] = f"<SECRET:{kind}_{number}>" if secret else f"<{kind.upper()}_{number}>"
        return self.assigned[key]


def placeholder_kind(match: re.Match[str]) -> str:
    """The kind of a :data:`PLACEHOLDER` match, as the report counts redactions: ``secret:KIND`` or ``KIND``.

    ``match``: a match of :data:`PLACEHOLDER`.
    """
    secret = match.group("secret")
    return f"secret:{secret}" if secret else match.group("personal").lower()


def anonymize_text(text: str, placeholders: Placeholders) -> tuple[str, Counter[str]]:
    """``text`` with each secret and piece of personal data replaced by its placeholder, and the number of
    redactions by kind (``secret:KIND`` for credentials, ``KIND`` for personal data)."""
    pieces, redactions, position = [], Counter[str](), 0
    for finding in placeholders.findings(text):
        value = text[finding.start : finding.end]
        pieces += [text[position : finding.start], placeholders.placeholder(finding.kind, finding.secret, value)]
        redactions[f"secret:{finding.kind}" if finding.secret else finding.kind] += 1
        position = finding.end
    pieces.append(text[position:])
    return "".join(pieces), redactions


def machine_names() -> tuple[list[str], list[str]]:
    """This machine's user: (own names, account names): the full name from the password database, and the
    login name, unless it is a shared or service account (``root``, ``runner``...)."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError, ImportError):
        return [], []
    accounts = [login] if login.lower() not in GENERIC_USERS else []
    try:
        import pwd

        full_name = pwd.getpwnam(login).pw_gecos.split(",")[0].strip()
    except (ImportError, KeyError):
        full_name = ""
    own = [full_name] if full_name and full_name.lower() not in GENERIC_USERS | {login.lower()} else []
    return own, accounts


# -- redacting a JSON value -----------------------------------------------------------------------


@dataclass
class _Redactor:
    """Redacts strings of one session, keeping the counts."""

    placeholders: Placeholders
    redactions: Counter[str] = field(default_factory=Counter)

    def text(self, text: str) -> str:
        redacted, found = anonymize_text(text, self.placeholders)
        self.redactions.update(found)
        return redacted

    def string(self, text: str) -> str:
        """A JSON string: as text, unless it holds a JSON document and a find spans a quote of it (several of
        its values), which is then redacted value by value (and written compact)."""
        if any('"' in text[f.start : f.end] for f in self.placeholders.findings(text)):
            document = _json_document(text)
            if document is not None:
                return json.dumps(self.value(document), ensure_ascii=False, separators=(",", ":"))
        return self.text(text)

    def value(self, value: Any, keys: bool = True) -> Any:
        """A JSON value with its strings redacted, and its objects' keys unless ``keys`` is false (Parquet
        rows, whose keys are the columns of a schema)."""
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, list):
            return [self.value(item, keys) for item in value]
        if isinstance(value, dict):
            return {(self.string(key) if keys else key): self.value(item, keys) for key, item in value.items()}
        return value


def _json_document(text: str) -> Any:
    """The object or array ``text`` holds as JSON, or None."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _dumped(value: Any, like: str) -> str:
    """``value`` as JSON written the way ``like`` was (compact or spaced, indented or not, ASCII or not)."""
    indent = 2 if "\n" in like.strip() else None
    separators = (",", ":") if indent is None and '": ' not in like else None
    return json.dumps(value, ensure_ascii=like.isascii(), indent=indent, separators=separators)


# -- one session's files -------------------------------------------------------------------------

#: Compression a file may carry, by suffix: how to open it, and how to close it again.
_CODECS: Mapping[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = MappingProxyType(
    {
        ".gz": (gzip.decompress, lambda data: gzip.compress(data, mtime=0)),
        ".zst": (zstandard.decompress, zstandard.compress),
    }
)


@dataclass
class _FileResult:
    records: int = 0
    redactions: Counter[str] = field(default_factory=Counter)
    skipped: str | None = None


@dataclass
class _Content:
    """A file's content as read: its text (or Parquet rows), and how it is written back."""

    suffix: str
    text: str = ""
    rows: list[dict[str, Any]] | None = None
    schema: Any = None

    def strings(self) -> Iterator[str]:
        if self.rows is None:
            yield self.text
        else:
            for row in self.rows:
                yield from strings(row)


def _read(path: Path) -> _Content | str:
    """A file's content, or why it is left out."""
    try:
        suffix = data_suffix(path).lower()
        if suffix == ".parquet":
            table = parquet.read_table(path)
            return _Content(suffix, rows=table.to_pylist(), schema=table.schema)
        data = path.read_bytes()
        if path.suffix in _CODECS:
            data = _CODECS[path.suffix][0](data)
        return _binary_reason(data) or _Content(suffix, text=data.decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except OSError as error:
        return f"cannot be read ({error.strerror or first_line(error)})"
    except Exception as error:  # noqa: BLE001 - damaged archives and Parquet files raise their libraries' own types
        return f"cannot be read ({first_line(error, typed=True)})"


def _binary_reason(data: bytes) -> str | None:
    if data.startswith(_SQLITE_MAGIC):
        return "SQLite database; extract its sessions first (teich extract)"
    return "binary file" if b"\x00" in data[:_SNIFF_BYTES] else None


def _redacted_lines(text: str, redactor: _Redactor) -> tuple[str, int]:
    """JSON lines: each record redacted string by string (unchanged lines kept byte for byte)."""
    lines, records = [], 0
    for line in text.splitlines(keepends=True):
        record = _json_document(line)
        if record is None:
            lines.append(redactor.text(line))
            continue
        records += 1
        redacted = redactor.value(record)
        ending = line[len(line.rstrip("\r\n")) :]
        lines.append(line if redacted == record else _dumped(redacted, line) + ending)
    return "".join(lines), records


def _redacted_text(content: _Content, redactor: _Redactor) -> tuple[str, int]:
    """A JSON document, JSON lines, or plain text, redacted; and its number of records."""
    if content.suffix == ".json":
        document = _json_document(content.text)
        if document is not None:
            redacted = redactor.value(document)
            return (content.text if redacted == document else _dumped(redacted, content.text) + "\n"), 1
    if content.suffix in {".json", ".jsonl", ".ndjson"}:
        return _redacted_lines(content.text, redactor)
    return redactor.text(content.text), 0


def _write_redacted(content: _Content, source: Path, target: Path, redactor: _Redactor) -> int:
    """Write ``content`` redacted to ``target``, in the same format as ``source``; its number of records."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if content.rows is not None:
        rows = [redactor.value(row, keys=False) for row in content.rows]
        parquet.write_table(pyarrow.Table.from_pylist(rows, schema=content.schema), target)
        return len(rows)
    text, records = _redacted_text(content, redactor)
    data = text.encode("utf-8")
    target.write_bytes(_CODECS[source.suffix][1](data) if source.suffix in _CODECS else data)
    return records


def _anonymize_session(
    files: Sequence[tuple[Path, Path]], own_names: Sequence[str], users: Sequence[str]
) -> list[_FileResult]:
    """Redact one session's files (a transcript, and its sub-agents' beside it) with one set of placeholders."""
    contents = [_read(source) for source, _ in files]
    placeholders = Placeholders(own_names, set(users))
    for content in contents:
        if isinstance(content, _Content):
            for text in content.strings():
                placeholders.learn(text)
    results = []
    for (source, target), content in zip(files, contents, strict=True):
        if isinstance(content, str):
            results.append(_FileResult(skipped=content))
            continue
        redactor = _Redactor(placeholders)
        records = _write_redacted(content, source, target, redactor)
        results.append(_FileResult(records, redactor.redactions))
    return results


def _sessions(sources: Sequence[Path]) -> list[list[int]]:
    """The files (by index) grouped by session, the transcript first: a file in a folder named after a
    transcript beside it (Claude Code's ``<session>.jsonl`` and ``<session>/subagents/*.jsonl``) goes with
    that transcript."""
    index = {source: i for i, source in enumerate(sources)}
    groups: dict[int, list[int]] = {}
    for i, source in enumerate(sources):
        transcripts = (folder.parent / f"{folder.name}.jsonl" for folder in source.parents if folder.name)
        owner = next((index[t] for t in transcripts if t in index), i)
        groups.setdefault(owner, []).append(i)
    return [sorted(members, key=lambda i: i != owner) for owner, members in groups.items()]  # transcript first


# -- the report and the entry point ---------------------------------------------------------------


@dataclass
class AnonymizeReport(Report):
    """What :func:`anonymize` read, redacted and skipped."""

    kind = "anonymize"

    files: int = 0
    records: int = 0
    #: Redactions by kind: ``secret:KIND`` for credentials, ``KIND`` for personal data.
    redactions: Counter[str] = field(default_factory=Counter)
    #: Files not copied, as ``path: reason``.
    skipped: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> int:
        """Credentials redacted."""
        return sum(n for kind, n in self.redactions.items() if kind.startswith("secret:"))

    @property
    def personal(self) -> int:
        """Pieces of personal data redacted."""
        return sum(self.redactions.values()) - self.secrets

    def summary(self) -> str:
        parts = [
            f"{self.files} files, {self.records} records",
            f"{self.secrets} secrets and {self.personal} pieces of personal data redacted",
        ]
        if self.skipped:
            parts.append(f"{len(self.skipped)} files skipped")
        return ", ".join(parts)

    def tally(self) -> Tally:
        reasons = Counter(line.rsplit(": ", 1)[-1] for line in self.skipped)
        return Tally(
            counts={"files": self.files, "records": self.records, "secrets": self.secrets, "personal": self.personal},
            reasons={"redacted": self.redactions, "skipped": reasons},
            notes={"skipped": list(self.skipped)},
        )


@overload
def anonymize(
    source: str | Path,
    out: str | Path,
    *,
    own_names: Sequence[str] = ...,
    return_report: Literal[False] = ...,
    num_proc: int | None = ...,
) -> None: ...


@overload
def anonymize(
    source: str | Path,
    out: str | Path,
    *,
    own_names: Sequence[str] = ...,
    return_report: Literal[True],
    num_proc: int | None = ...,
) -> AnonymizeReport: ...


def anonymize(
    source: str | Path,
    out: str | Path,
    *,
    own_names: Sequence[str] = (),
    return_report: bool = False,
    num_proc: int | None = None,
) -> AnonymizeReport | None:
    """Write a copy of ``source`` with its secrets and personal data replaced by placeholders.

    ``source``: a file, or a folder whose layout the copy keeps (files in hidden folders such as ``.git``
    are left out). ``out``: the file to write (a folder when ``source`` is one, or when it names an existing
    folder); it may not be, or lie inside, ``source``. Files are written to a temporary folder beside
    ``out`` and moved into place at the end, so an interrupted run leaves ``out`` as it was.
    ``own_names``: the user's own names to redact (``<NAME_n>``), besides this machine's user's full name
    and login name, which are always redacted. ``return_report``: return an :class:`AnonymizeReport`.
    ``num_proc``: redact files in that many forked processes (where the platform forks)."""
    source, out = Path(source), Path(out)
    pairs = _pairs(source, out)
    own, users = machine_names()
    names = [*own_names, *own]
    report = AnonymizeReport()
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=_existing_parent(out)))
    try:
        staged = [(path, staging / (target.relative_to(out) if target != out else out.name)) for path, target in pairs]
        sessions = sorted(_sessions([path for path, _ in pairs]), key=lambda group: -_size(pairs, group))

        def work(index: int) -> list[_FileResult]:
            return _anonymize_session([staged[i] for i in sessions[index]], names, users)

        results: dict[int, _FileResult] = {}
        for group, outcomes in zip(sessions, _run(work, len(sessions), num_proc), strict=True):
            results.update(zip(group, outcomes, strict=True))
        for i, ((path, target), (_, temporary)) in enumerate(zip(pairs, staged, strict=True)):
            _count(report, path, results[i])
            if results[i].skipped is None:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temporary, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report if return_report else None


def _size(pairs: Sequence[tuple[Path, Path]], group: list[int]) -> int:
    """How much there is to read in a session's files (the biggest go first, to spread the work evenly)."""
    return sum(pairs[i][0].stat().st_size for i in group)


def report_path(out: str | Path) -> Path:
    """Where ``teich anonymize`` writes the report of a copy written to ``out``: beside it, not inside, so
    that it is neither read as a session nor published with the data (``OUT.anonymize.json``)."""
    out = Path(out)
    return out.parent / f"{out.name}.anonymize.json"


def _existing_parent(out: Path) -> Path:
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _pairs(source: Path, out: Path) -> list[tuple[Path, Path]]:
    """Each file to redact with the file it becomes."""
    if not source.exists():
        raise TeichError(f"{source}: not found")
    if source.is_file():
        target = out / source.name if out.is_dir() else out
        if target.resolve() == source.resolve():
            raise TeichError(f"{out}: the output would replace the input; choose another --out")
        return [(source, target)]
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise TeichError(f"{out}: the output folder may not be, or lie inside, the input folder {source}")
    if out.is_file():
        raise TeichError(f"{out}: is a file; the output of a folder is a folder")
    return [(path, out / path.relative_to(source)) for path in _files(source)]


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parent.parts)
        if path.is_file() and not hidden:
            yield path


def _run(work: Callable[[int], list[_FileResult]], count: int, num_proc: int | None) -> list[list[_FileResult]]:
    if num_proc and num_proc > 1 and count > 1 and can_fork():
        return fork_map(work, count, min(num_proc, count))
    return [work(index) for index in range(count)]


def _count(report: AnonymizeReport, path: Path, result: _FileResult) -> None:
    if result.skipped is not None:
        report.skipped.append(f"{path}: {result.skipped}")
        return
    report.files += 1
    report.records += result.records
    report.redactions.update(result.redactions)
