"""``teich extract``: the sessions coding agents keep on this machine (or in a copied home), gathered into one
folder, redacted by default.

Native session files are copied as they are, in their agent's layout (``OUT/<agent>/...``, relative to the
agent's own folder), sub-agent transcripts beside their sessions; sessions kept in databases (Cursor,
Hermes) become the native JSONL Teich's loaders read, one file per session. Each session is read as
:func:`~teich.load_traces` reads it, to learn its id, project, dates and turns; the same session found
twice is kept once (the fuller copy). ``OUT/manifest.jsonl`` lists what was kept. Everything is written
to a temporary folder beside ``OUT`` and moved into place at the end, so an interrupted run leaves nothing.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from teich.errors import TeichError
from teich.files import write_jsonl_atomic
from teich.privacy import anonymize as redaction
from teich.privacy.databases import DatabaseSession, cursor_projects, cursor_sessions, hermes_sessions
from teich.privacy.locations import AGENTS, Store, folder_stores, machine_stores
from teich.reports import Report, Tally
from teich.schema import TrainingExample
from teich.traces import find_format
from teich.traces.reader import read_trace_file
from teich.traces.sources import LoadOptions, LoadReport, iter_examples

MANIFEST = "manifest.jsonl"
#: The trace formats each agent's sessions are in.
AGENT_FORMATS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "claude": frozenset({"claude_code"}),
        "codex": frozenset({"codex"}),
        "pi": frozenset({"pi", "openclaw"}),
        "cursor": frozenset({"cursor"}),
        "hermes": frozenset({"hermes"}),
    }
)
_SUB_AGENT = "agent-*.jsonl"  # Claude Code's sub-agent transcripts (beside .meta.json sidecars)
_HOME_USER = re.compile(r"(?:^|[\\/])(?:home|Users)[\\/]([^\\/]+)")
logger = logging.getLogger("teich")
#: Told ``(done, total, what)`` as sessions are read.
Progress = Callable[[int, int, str], None]
Record = dict[str, Any]


@dataclass
class ExtractReport(Report):
    """What :func:`extract` found, kept, skipped (by reason) and redacted (by kind)."""

    kind = "extract"

    #: Sessions found (sub-agent transcripts come along with theirs and are counted apart).
    found: int = 0
    kept: int = 0
    sub_agents: int = 0
    #: Sessions kept, by agent.
    by_agent: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    #: One line per input that could not be used (unreadable, not a session), naming it.
    problems: list[str] = field(default_factory=list)
    anonymized: bool = True
    #: The folder written, or ``None`` when nothing was kept (then nothing is written).
    out: str | None = None

    def tally(self) -> Tally:
        counts: dict[str, int | float] = {
            "sessions_found": self.found,
            "sessions_kept": self.kept,
            "sub_agent_transcripts": self.sub_agents,
            "redactions": sum(self.redactions.values()),
        }
        reasons: dict[str, Mapping[str, int]] = {
            "kept": self.by_agent,
            "skipped": self.skipped,
            "redacted": self.redactions,
        }
        return Tally(counts, reasons, {"skipped": list(self.problems)})

    def summary(self) -> str:
        parts = [f"kept {self.kept} of {self.found} sessions"]
        parts += [f"skipped {n} ({reason})" for reason, n in sorted(self.skipped.items())]
        parts.append(f"{sum(self.redactions.values())} redactions" if self.anonymized else "not anonymized")
        return ", ".join(parts) + (f"; wrote {self.out}" if self.out else "; nothing written")


@dataclass
class _Candidate:
    """A session found, before it is read."""

    agent: str | None  # None: any agent, told by the file's format
    source: Path  # where it was found: its file, or its database
    place: PurePosixPath  # its place in the output, under its agent's folder
    home: Path
    file: Path | None = None  # the session as native JSONL, where that is not ``source`` itself
    header: Record | None = None  # a first record the native file lacks (Cursor transcripts)
    companions: list[Path] = field(default_factory=list)  # sub-agent transcripts, beside ``source``
    session_id: str | None = None
    project: str | None = None


@dataclass
class _Session:
    """A session read: what the manifest says of it and the filters look at."""

    candidate: _Candidate
    file: Path
    agent: str
    session_id: str
    version: str | None
    project: str | None
    first: datetime
    last: datetime
    turns: int
    digest: str


@dataclass(frozen=True)
class _Filters:
    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_turns: int = 0

    def reason(self, session: _Session) -> str | None:
        """Why ``session`` is filtered out, or ``None`` when it is kept."""
        if self.project is not None and not _project_matches(session.project, self.project):
            return "filtered (project)"
        if (self.since and session.last < self.since) or (self.until and session.first > self.until):
            return "filtered (dates)"
        if session.turns < self.min_turns:
            return "filtered (turns)"
        return None


def extract(
    out: str | Path,
    agents: str | Sequence[str] = "all",
    *,
    source: str | Path | None = None,
    project: str | None = None,
    since: str | date | None = None,
    until: str | date | None = None,
    min_turns: int = 0,
    anonymize: bool = True,
    own_names: Sequence[str] = (),
    on_progress: Progress | None = None,
) -> ExtractReport:
    """Gather the sessions coding agents keep into ``out``, redacted; see the module docstring.

    ``out``: the folder to write; it must not exist, be empty, or hold an earlier extract (replaced).
    ``agents``: ``"all"``, or one or more of ``claude``, ``codex``, ``pi``, ``cursor``, ``hermes``.
    ``source``: read this folder (a copied home, or any folder of session files) instead of this
    machine's agent folders and environment overrides.
    ``project``: keep sessions run in this folder or below it, or whose folder matches this glob.
    ``since``, ``until``: keep sessions active on or after / on or before these dates (``YYYY-MM-DD``,
    UTC, inclusive) or times.
    ``min_turns``: keep sessions with at least this many user turns.
    ``anonymize``: redact secrets and personal data with :func:`~teich.privacy.anonymize.anonymize`.
    ``own_names``: the user's own names, redacted too.
    ``on_progress``: told ``(done, total, what)`` as sessions are read.
    """
    out = Path(out).expanduser()
    chosen = _agents(agents)
    filters = _Filters(project, _moment(since), _moment(until, end=True), min_turns)
    _check_out(out)
    stores = _stores(chosen, source)
    report = ExtractReport(anonymized=anonymize)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        scratch = staging / "scratch"
        outputs = (out.resolve(), staging.resolve())  # never read back what this run writes
        candidates = [c for store in stores for c in _candidates(store, scratch, report, outputs)]
        sessions = _read_all(candidates, chosen, scratch, report, on_progress)
        kept = _chosen(sessions, filters, report)
        if kept:
            if on_progress:
                on_progress(len(candidates), len(candidates), "redacting" if anonymize else "copying")
            written = _write(kept, staging, anonymize, own_names, report)
            _move_into_place(written, out)
            report.out = str(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for problem in report.problems:
        logger.warning("skipped %s", problem)
    return report


def _agents(agents: str | Sequence[str]) -> tuple[str, ...]:
    names = [agents] if isinstance(agents, str) else list(agents)
    chosen = AGENTS if "all" in names else tuple(dict.fromkeys(names))
    unknown = [name for name in chosen if name not in AGENTS]
    if unknown:
        raise TeichError(f"unknown agent {unknown[0]!r} (choose from all, {', '.join(AGENTS)})")
    return chosen


def _moment(value: str | date | None, *, end: bool = False) -> datetime | None:
    """A date or time given by the user, in UTC; a date alone means its first moment (its last with ``end``)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment, whole_day = value, False
    elif isinstance(value, date):
        moment, whole_day = datetime.combine(value, time.min), True
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise TeichError(f"{value!r} is not a date (use YYYY-MM-DD or an ISO time)") from None
        whole_day = len(value.strip()) == len("YYYY-MM-DD")
    if whole_day and end:
        moment += timedelta(days=1, microseconds=-1)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _check_out(out: Path) -> None:
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / MANIFEST).is_file())):
        raise TeichError(f"{out}: exists and is not an earlier extract (no {MANIFEST}); choose a new folder")


def _stores(agents: tuple[str, ...], source: str | Path | None) -> list[Store]:
    if source is None:
        return machine_stores(agents)
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise TeichError(f"{folder}: no such folder")
    return folder_stores(agents, folder)


def _candidates(store: Store, scratch: Path, report: ExtractReport, outputs: tuple[Path, ...]) -> list[_Candidate]:
    """The sessions a store holds (none from ``outputs``); a database that cannot be read is one skipped,
    unreadable input."""
    if store.kind == "cursor_db":
        return _cursor_candidates(store, scratch, report)
    if store.kind == "files":
        return _file_candidates(store, outputs)
    try:
        sessions = hermes_sessions(store.path, scratch)
    except TeichError as error:
        _unreadable(report, error)
        return []
    folder = PurePosixPath(store.path.parent.relative_to(store.root).as_posix(), "sessions")
    return _database_candidates(store, sessions, folder, scratch)


def _cursor_candidates(store: Store, scratch: Path, report: ExtractReport) -> list[_Candidate]:
    """The composer conversations of every database in a Cursor ``User`` folder, each with its workspace."""
    projects = cursor_projects(store.path, scratch)
    databases = [
        store.path / "globalStorage" / "state.vscdb",
        *sorted(store.path.glob("workspaceStorage/*/state.vscdb")),
    ]
    found = []
    for database in (d for d in databases if d.is_file()):
        try:
            sessions = cursor_sessions(database, scratch, projects)
        except TeichError as error:
            _unreadable(report, error)
            continue
        found += _database_candidates(store, sessions, PurePosixPath("composers"), scratch, database)
    return found


def _database_candidates(
    store: Store, sessions: list[DatabaseSession], folder: PurePosixPath, scratch: Path, database: Path | None = None
) -> list[_Candidate]:
    """Database sessions written as native JSONL files in ``scratch``, to go in ``folder`` of their agent's:
    Hermes' beside their database (``sessions/``, ``profiles/<name>/sessions/``), Cursor's in ``composers/``."""
    found = []
    for session in sessions:
        name = re.sub(r"[^\w.-]", "_", session.session_id) + ".jsonl"
        file = Path(tempfile.mkdtemp(dir=_made(scratch))) / name
        write_jsonl_atomic(file, session.records)
        found.append(
            _Candidate(
                store.agent,
                database or store.path,
                folder / name,
                store.home,
                file=file,
                session_id=session.session_id,
                project=session.project,
            )
        )
    return found


def _unreadable(report: ExtractReport, error: TeichError) -> None:
    """A database that could not be read: one input found and skipped, its sessions unknown."""
    report.found += 1
    _skip(report, "unreadable", str(error))


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _file_candidates(store: Store, outputs: tuple[Path, ...]) -> list[_Candidate]:
    """The session files in a folder but in ``outputs``: Cursor's agent transcripts, or every other JSONL
    file but sub-agent transcripts (which come along with their sessions)."""
    found = (p for p in store.path.rglob("*.jsonl") if not p.is_dir())
    files = sorted(p for p in found if not any(p.resolve().is_relative_to(o) for o in outputs))
    if store.agent == "cursor":
        return [_cursor_transcript(store, p) for p in files if _is_cursor_transcript(p)]
    sidechains = _sidechains([p for p in files if fnmatch.fnmatch(p.name, _SUB_AGENT)])
    return [
        _Candidate(
            store.agent, path, _place_of(store, path), store.home, companions=_claude_companions(path, sidechains)
        )
        for path in files
        if not fnmatch.fnmatch(path.name, _SUB_AGENT)
    ]


def _place_of(store: Store, path: Path) -> PurePosixPath:
    """A native file's place in the output: as it lies in the agent's own folder (or the folder given)."""
    return PurePosixPath(path.relative_to(store.root).as_posix())


def _sidechains(files: list[Path]) -> dict[tuple[Path, str], list[Path]]:
    """Claude Code 1.0's sub-agent transcripts (``agent-*.jsonl`` beside the sessions), by folder and the
    session their first record names."""
    found: dict[tuple[Path, str], list[Path]] = {}
    for path in files:
        if path.parent.name != "subagents":
            found.setdefault((path.parent, str(_first_record(path).get("sessionId"))), []).append(path)
    return found


def _claude_companions(session: Path, sidechains: Mapping[tuple[Path, str], list[Path]]) -> list[Path]:
    """A session's sub-agent transcripts and their ``.meta.json`` files: ``<session>/subagents/`` (Claude
    Code 2.1), or ``agent-*.jsonl`` beside it naming it (1.0)."""
    folder = session.parent / session.stem / "subagents"
    own = sorted(p for p in folder.glob("agent-*.json*") if p.is_file()) if folder.is_dir() else []
    return own + sidechains.get((session.parent, session.stem), [])


def _first_record(path: Path) -> Record:
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            record = json.loads(lines.readline())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _is_cursor_transcript(path: Path) -> bool:
    """``agent-transcripts/<id>.jsonl`` or ``agent-transcripts/<id>/<id>.jsonl``; other files inside
    ``<id>/`` are its sub-agents'."""
    parent = path.parent
    return parent.name == "agent-transcripts" or (
        parent.name == path.stem and parent.parent.name == "agent-transcripts"
    )


def _cursor_transcript(store: Store, path: Path) -> _Candidate:
    """A Cursor agent transcript, given the session record the loader knows Cursor by; its project is the
    folder Cursor named after the workspace (``~/.cursor/projects/<project>/``)."""
    transcripts = path.parent if path.parent.name == "agent-transcripts" else path.parent.parent
    own = path.parent if path.parent.name == path.stem else transcripts / path.stem
    companions = sorted(p for p in own.rglob("*.jsonl") if p != path) if own.is_dir() else []
    header = {"type": "cursor_session_meta", "source": "cursor", "session_id": path.stem}
    project = transcripts.parent.name
    return _Candidate("cursor", path, _place_of(store, path), store.home, None, header, companions, path.stem, project)


def _read_all(
    candidates: list[_Candidate],
    agents: tuple[str, ...],
    scratch: Path,
    report: ExtractReport,
    on_progress: Progress | None,
) -> list[_Session]:
    sessions = []
    for done, candidate in enumerate(candidates, start=1):
        if on_progress:
            what = candidate.session_id or candidate.source.name
            on_progress(done - 1, len(candidates), f"{candidate.agent or 'reading'} {what}")
        outcome = _read(candidate, agents, scratch)
        if outcome is None:
            continue
        report.found += 1
        if isinstance(outcome, _Session):
            sessions.append(outcome)
        else:
            _skip(report, *outcome)
    return sessions


def _read(candidate: _Candidate, agents: tuple[str, ...], scratch: Path) -> _Session | tuple[str, str | None] | None:
    """The session a candidate holds, or why it is skipped (with a line naming it where the input is bad);
    ``None`` for a file of an agent not asked for."""
    try:
        file = _native_file(candidate, scratch)
    except OSError as error:
        return "unreadable", f"{candidate.source}: cannot read file: {error.strerror or error}"
    trace = read_trace_file(file)
    if not trace.records:
        if not trace.problems:
            return "not a session", f"{candidate.source}: empty file"
        problem = trace.problems[0]
        where = f"{candidate.source}:{problem.line}" if problem.line else str(candidate.source)
        return "unreadable", f"{where}: {problem.message}"
    trace_format = find_format(trace.records)
    agent = candidate.agent or _agent_of(trace_format.name if trace_format else None)
    if agent is None:
        return "not a session", f"{candidate.source}: not a session"
    if agent not in agents:
        return None
    if trace_format is None or trace_format.name not in AGENT_FORMATS[agent]:
        return "not a session", f"{candidate.source}: not a {agent} session"
    rows = list(iter_examples(file, LoadReport(), LoadOptions(drop_incomplete_traces=False)))
    main = [row for row in rows if not row.metadata.get("sub_agent")]
    if not main:
        return "no assistant turn", None
    times = sorted(t for t in map(_when, _time_values(trace.records)) if t is not None) or [_modified(candidate)]
    return _Session(
        candidate=candidate,
        file=file,
        agent=agent,
        session_id=candidate.session_id or str(main[0].metadata.get("session_id") or candidate.source.stem),
        version=_text(main[0].metadata.get("cli_version")),
        project=candidate.project or _text(main[0].metadata.get("cwd") or trace.records[0].get("cwd")),
        first=times[0],
        last=times[-1],
        turns=sum(_user_turns(row) for row in main),
        digest=hashlib.sha256(file.read_bytes()).hexdigest(),
    )


def _native_file(candidate: _Candidate, scratch: Path) -> Path:
    """The session as the loaders read it: its own file, or a copy in ``scratch`` that starts with the
    header it lacks."""
    if candidate.header is None:
        return candidate.file or candidate.source
    copy = Path(tempfile.mkdtemp(dir=_made(scratch))) / candidate.source.name
    _place(candidate.source, copy, candidate.header)
    return copy


def _place(source: Path, target: Path, header: Record | None = None) -> None:
    """Copy ``source`` to ``target``, after a ``header`` line where one is given."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if header is None:
        shutil.copyfile(source, target)
        return
    body = source.read_bytes()
    separator = b"\n" if body and not body.endswith(b"\n") else b""
    target.write_bytes(json.dumps(header, ensure_ascii=False).encode() + b"\n" + body + separator)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _agent_of(format_name: str | None) -> str | None:
    return next((agent for agent, names in AGENT_FORMATS.items() if format_name in names), None)


def _user_turns(row: TrainingExample) -> int:
    """The user messages of a row that were not carried over from the context before a compaction."""
    carried = int(row.metadata.get("carried_messages") or 0)
    return sum(1 for message in row.messages[carried:] if message.role == "user")


def _time_values(records: list[Record]) -> Iterator[Any]:
    """The times a session's records carry: their own (``timestamp``, Hermes' ``started_at``/``ended_at``,
    Cursor's ``created_at``/``updated_at``), and those of the messages of an exported Hermes row."""
    for record in records:
        yield from (record.get(key) for key in ("timestamp", "started_at", "ended_at", "created_at", "updated_at"))
        messages = record.get("messages")
        if isinstance(messages, list):
            yield from (m.get("timestamp") for m in messages if isinstance(m, dict))


def _when(value: Any) -> datetime | None:
    """A recorded time (ISO text, or seconds or milliseconds since 1970) in UTC, or ``None``."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, timezone.utc)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _modified(candidate: _Candidate) -> datetime:
    """When a session without recorded times was last written: its file's (or database's) modification time."""
    try:
        return datetime.fromtimestamp(candidate.source.stat().st_mtime, timezone.utc)
    except OSError:
        return datetime.fromtimestamp(0, timezone.utc)


def _project_matches(project: str | None, pattern: str) -> bool:
    """Whether a session's folder matches ``--project``: a glob, or a folder the session ran in or below."""
    if project is None:
        return False
    project = project.replace("\\", "/").rstrip("/")
    pattern = os.path.expanduser(pattern).replace("\\", "/")
    if glob.has_magic(pattern):
        return fnmatch.fnmatchcase(project, pattern)
    folder = str(Path(pattern).resolve()) if not os.path.isabs(pattern) else pattern.rstrip("/")
    return project == folder or project.startswith(folder + "/")


def _chosen(sessions: list[_Session], filters: _Filters, report: ExtractReport) -> list[_Session]:
    """Each session once (the fuller copy: more turns, then later, then bigger), then those the filters keep."""
    seen: set[object] = set()
    kept = []
    for session in sorted(sessions, key=_fuller_first):
        keys = {(session.agent, session.session_id), session.digest}
        if keys & seen:
            _skip(report, "duplicate")
            continue
        seen |= keys
        reason = filters.reason(session)
        if reason:
            _skip(report, reason)
        else:
            kept.append(session)
    return sorted(kept, key=lambda s: (s.agent, s.first, s.session_id))


def _fuller_first(session: _Session) -> tuple[int, float, int, str]:
    return -session.turns, -session.last.timestamp(), -session.file.stat().st_size, str(session.candidate.source)


def _skip(report: ExtractReport, reason: str, problem: str | None = None) -> None:
    report.skipped[reason] += 1
    if problem:
        report.problems.append(problem)


def _write(
    kept: list[_Session], staging: Path, anonymize: bool, own_names: Sequence[str], report: ExtractReport
) -> Path:
    """The kept sessions (and their sub-agent transcripts) copied into ``staging``, redacted unless told
    not to, with their manifest; returns the folder that becomes ``OUT``."""
    raw = staging / "raw"
    names = _user_names(kept, own_names) if anonymize else set()
    entries = [_place_session(session, raw, names, report) for session in kept]
    if not anonymize:
        write_jsonl_atomic(raw / MANIFEST, entries)
        return raw
    clean = staging / "clean"
    redacted = redaction.anonymize(raw, clean, own_names=own_names, return_report=True)
    report.redactions.update(redacted.redactions)
    report.problems += [line for lines in redacted.tally().notes.values() for line in lines]
    write_jsonl_atomic(staging / "manifest" / MANIFEST, entries)
    redaction.anonymize(staging / "manifest" / MANIFEST, clean / MANIFEST, own_names=own_names)
    return clean


def _place_session(session: _Session, raw: Path, names: set[str], report: ExtractReport) -> Record:
    """Copy one session and its sub-agent transcripts to their places under ``raw``; its manifest entry."""
    candidate = session.candidate
    target = _renamed(PurePosixPath(session.agent) / candidate.place, names)
    _place(session.file, raw / target)
    sub_agents = []
    for companion in candidate.companions:
        place = _renamed(target.parent / companion.relative_to(candidate.source.parent).as_posix(), names)
        header = _companion_header(candidate, companion)
        _place(companion, raw / place, header)
        if companion.suffix == ".jsonl":
            sub_agents.append(place.as_posix())
    report.kept += 1
    report.sub_agents += len(sub_agents)
    report.by_agent[session.agent] += 1
    return {
        "agent": session.agent,
        "agent_version": session.version,
        "session_id": session.session_id,
        "project": session.project,
        "first": _iso(session.first),
        "last": _iso(session.last),
        "turns": session.turns,
        "file": target.as_posix(),
        "sub_agents": sub_agents,
        "source": _renamed(_tilde(candidate.source, candidate.home), names).as_posix(),
    }


def _companion_header(candidate: _Candidate, companion: Path) -> Record | None:
    """The header a Cursor sub-agent transcript needs to load, naming its session."""
    if candidate.header is None:
        return None
    return {**candidate.header, "session_id": f"{candidate.session_id}/{companion.stem}"}


def _user_names(sessions: Iterable[_Session], own_names: Sequence[str]) -> set[str]:
    """The user names in the sessions' home folders (``/home/NAME``, ``/Users/NAME``, ``C:\\Users\\NAME``)
    and the user's own names: agents write them into folder names (``-home-NAME-project``)."""
    names = {name for name in own_names if name}
    for session in sessions:
        for path in (session.project or "", str(session.candidate.home)):
            names.update(match.group(1) for match in _HOME_USER.finditer(path))
    return names


def _renamed(path: PurePosixPath, names: set[str]) -> PurePosixPath:
    """``path`` with each of ``names`` standing alone in a folder or file name replaced by ``user``."""
    for name in sorted(names, key=len, reverse=True):
        pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])")
        path = PurePosixPath(*(pattern.sub("user", part) for part in path.parts))
    return path


def _tilde(path: Path, home: Path) -> PurePosixPath:
    """``path`` with its home folder written as ``~``."""
    try:
        return PurePosixPath("~") / path.relative_to(home).as_posix()
    except ValueError:
        return PurePosixPath(path.as_posix())


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _move_into_place(folder: Path, out: Path) -> None:
    """Make ``folder`` the new ``out``; an earlier extract there is replaced as a whole."""
    _check_out(out)
    if out.exists():
        previous = folder.with_name(folder.name + ".previous")
        os.replace(out, previous)
        os.replace(folder, out)
        shutil.rmtree(previous)
    else:
        os.replace(folder, out)
