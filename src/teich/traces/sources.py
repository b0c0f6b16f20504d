"""Where rows come from: files, folders, Hugging Face dataset ids and ``datasets.Dataset`` objects.

:func:`iter_examples` turns any of them into normalized :class:`TrainingExample` rows, read as one
:class:`LoadOptions` says, recording in a :class:`LoadReport` what it read, what it dropped and why,
and which inputs it could not use.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, overload

import datasets
from pydantic import ValidationError

from teich.errors import RecordError, TeichError, first_line
from teich.reports import Report, Tally
from teich.schema import FEATURES, TrainingExample, drop_nulls
from teich.traces import TraceFormat, find_format, registered_formats
from teich.traces.catalog import offered_tools
from teich.traces.conversation import complete_tool_schemas, tool_name
from teich.traces.reader import (
    COMPRESSED_SUFFIXES,
    Problem,
    TraceFile,
    checked_value,
    data_suffix,
    read_trace_file,
    surrogates_replaced,
)

Source: TypeAlias = str | Path | datasets.Dataset | datasets.DatasetDict | dict[str, Any] | list[dict[str, Any]]
Outcome = TrainingExample | str  # a row, or the reason it was dropped
TRACE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")  # JSON lines and JSON also gzip- or zstd-compressed
TOOLS_SNAPSHOT = "tools.json"
# A dataset's own files, and the manifest `teich extract` writes beside the sessions it gathers.
_NOT_TRACES = frozenset(
    {TOOLS_SNAPSHOT, "dataset_info.json", "state.json", "dataset_dict.json", "config.json", "manifest.jsonl"}
)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_SPLITS = ("train", "test", "validation", "valid", "dev", "eval")
logger = logging.getLogger("teich")


@dataclass(frozen=True)
class LoadOptions:
    """How sources are read: which Hub split, revision and token, how many rows, which rows are kept,
    and whom to tell about each file."""

    split: str = "train"
    revision: str | None = None
    token: str | None = None
    max_examples: int | None = None
    drop_incomplete_traces: bool = True
    on_file: Callable[[str], None] | None = None


@dataclass
class LoadReport(Report):
    """What loading read, kept and dropped."""

    kind = "load"

    rows: int = 0
    files: int = 0
    #: Whole sessions or rows that yielded nothing, by reason.
    dropped: Counter[str] = field(default_factory=Counter)
    #: Parts of sessions left out of the rows on purpose (abandoned branches, API-error turns...), by reason.
    left_out: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    #: Records used after a change (lone surrogates replaced, arguments that are not JSON wrapped, a missing
    #: link restored), with where they are.
    repairs: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.rows} rows from {self.files} files"]
        parts += [f"dropped {n} ({reason})" for reason, n in sorted(self.dropped.items())]
        parts += [f"left out {n} ({reason})" for reason, n in sorted(self.left_out.items())]
        if self.problems:
            parts.append(f"{len(self.problems)} input problems")
        if self.repairs:
            parts.append(f"{len(self.repairs)} records repaired")
        return ", ".join(parts)

    def tally(self) -> Tally:
        return Tally(
            counts={"rows": self.rows, "files": self.files},
            reasons={"dropped": self.dropped, "left_out": self.left_out},
            notes={"skipped": [str(p) for p in self.problems], "repaired": [str(r) for r in self.repairs]},
        )


def iter_examples(
    source: Source | Iterable[Source], report: LoadReport, options: LoadOptions = LoadOptions()
) -> Iterator[TrainingExample]:
    """Normalized rows from every input in ``source``, at most ``options.max_examples``; see the module docstring.

    A session stored twice (a copied or migrated folder) yields its rows once.
    """
    seen: set[str] = set()
    kept = 0
    for outcome in _raw_examples(source, report, options):
        if isinstance(outcome, str):
            report.dropped[outcome] += 1
        elif options.drop_incomplete_traces and not trace_is_complete(outcome):
            report.dropped["ends on a tool result"] += 1
        elif _already_seen(outcome, seen):
            report.dropped["same session already loaded from another file"] += 1
        else:
            report.rows += 1
            yield outcome
            kept += 1
            if options.max_examples is not None and kept >= options.max_examples:
                return  # before reading any further input


def _already_seen(example: TrainingExample, seen: set[str]) -> bool:
    """Whether a session row with the same id and messages came before (row datasets may repeat rows on purpose)."""
    session = example.metadata.get("session_id")
    if session is None:
        return False
    key = hashlib.sha256(f"{session}\0".encode() + example.model_dump_json(include={"messages"}).encode()).hexdigest()
    if key in seen:
        return True
    seen.add(key)
    return False


def trace_is_complete(row: TrainingExample | dict[str, Any]) -> bool:
    """Whether the conversation of ``row`` (a :class:`TrainingExample` or its record) ends on an
    assistant turn, not on a tool result or a user turn."""
    if isinstance(row, TrainingExample):
        return bool(row.messages) and row.messages[-1].role == "assistant"
    messages = row["messages"]
    return bool(messages) and messages[-1].get("role") == "assistant"


def _raw_examples(source: Source | Iterable[Source], report: LoadReport, options: LoadOptions) -> Iterator[Outcome]:
    if isinstance(source, datasets.DatasetDict):
        source = _split_of(source, options.split, "dataset")
    if isinstance(source, datasets.Dataset):
        yield from _dataset_examples(source, "<dataset>", report)
    elif isinstance(source, dict):  # one row, as a plain dict
        yield from _row_examples([source], "<rows>", report)
    elif isinstance(source, list) and source and all(isinstance(item, dict) for item in source):
        yield from _row_examples(source, "<rows>", report)
    elif isinstance(source, (str, Path)):
        yield from _path_examples(source, report, options)
    elif isinstance(source, Iterable):
        for item in source:
            yield from _raw_examples(item, report, options)
    else:
        raise TeichError(f"cannot load traces from a {type(source).__name__}")


def _path_examples(source: str | Path, report: LoadReport, options: LoadOptions) -> Iterator[Outcome]:
    path = Path(source).expanduser()
    if not path.exists():
        if isinstance(source, str) and _HUB_ID.match(source) and data_suffix(path) not in TRACE_SUFFIXES:
            path = _download(source, options.revision, options.token)
            files = _split_files(_trace_files(path), options.split)
        else:
            report.problems.append(Problem(str(source), None, "no such file or folder"))
            return
    elif path.is_dir() and (path / "dataset_info.json").exists():
        saved = datasets.load_from_disk(str(path))
        if isinstance(saved, datasets.DatasetDict):
            saved = _split_of(saved, options.split, str(path))
        yield from _dataset_examples(saved, str(path), report)
        return
    else:
        files = _trace_files(path) if path.is_dir() else [path]
    if not files:
        report.problems.append(Problem(str(path), None, f"no trace files ({', '.join(TRACE_SUFFIXES)}) found"))
        return
    for file in files:
        if options.on_file:
            options.on_file(str(file))
        report.files += 1
        yield from _file_examples(file, report, _tool_snapshot(file, path))


def _trace_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and _is_trace_file(p))


def _is_trace_file(path: Path) -> bool:
    """Whether a file found in a folder holds traces: a trace suffix, and neither a dataset's own
    files nor a file that accompanies a format's sessions (``agent-*.meta.json``)."""
    if data_suffix(path) not in TRACE_SUFFIXES or path.name in _NOT_TRACES:
        return False
    if path.suffix in COMPRESSED_SUFFIXES and data_suffix(path) == ".parquet":  # compressed inside already
        return False
    sidecars = (pattern for f in registered_formats() for pattern in f.sidecars)
    return not any(fnmatch.fnmatch(path.name, pattern) for pattern in sidecars)


def _split_files(files: list[Path], split: str) -> list[Path]:
    """Files of one split in a Hub dataset laid out with split names (``data/train-*.parquet``)."""
    named = [f for f in files if any(re.search(rf"\b{s}\b", f.as_posix()) for s in _SPLITS)]
    if not named:
        return files
    chosen = [f for f in named if re.search(rf"\b{re.escape(split)}\b", f.as_posix())]
    if not chosen:
        raise TeichError(f"split {split!r} not found among {len(files)} files")
    return chosen


def _split_of(dataset_dict: datasets.DatasetDict, split: str, where: str) -> datasets.Dataset:
    if split not in dataset_dict:
        raise TeichError(f"{where}: split {split!r} not found (have {', '.join(dataset_dict)})")
    return dataset_dict[split]


def _download(repo_id: str, revision: str | None, token: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = [f"*{suffix}{packed}" for suffix in TRACE_SUFFIXES for packed in ("", *COMPRESSED_SUFFIXES)]
    try:
        folder = snapshot_download(
            repo_id, repo_type="dataset", revision=revision, token=token, allow_patterns=patterns
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:
        raise TeichError(f"{repo_id}: cannot download Hugging Face dataset ({error.__class__.__name__})") from None
    return Path(folder)


def _tool_snapshot(file: Path, root: Path) -> list[dict[str, Any]] | None:
    """The nearest ``tools.json`` in the file's folder or a parent folder up to the input root."""
    for folder in [file.parent, *file.parent.parents]:
        snapshot = folder / TOOLS_SNAPSHOT
        if snapshot.is_file():
            try:
                tools = json.loads(snapshot.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                return None
            return tools if isinstance(tools, list) else tools.get("tools")
        if folder == root or folder == folder.parent:
            return None
    return None


def _file_examples(file: Path, report: LoadReport, snapshot: list[dict[str, Any]] | None) -> Iterator[Outcome]:
    if file.suffix == ".parquet":
        try:
            rows = datasets.Dataset.from_parquet(str(file))
        except Exception as error:  # pyarrow raises many types for damaged files
            report.problems.append(Problem(str(file), None, f"unreadable parquet file ({error})"))
            return
        yield from _dataset_examples(rows, str(file), report)
        return
    trace = read_trace_file(file)
    report.problems.extend(trace.problems)
    report.repairs.extend(trace.repairs)
    for outcome in _convert_trace(trace, report):
        if isinstance(outcome, TrainingExample):
            _complete_offered_tools(outcome, snapshot)
        yield outcome


def _complete_offered_tools(example: TrainingExample, snapshot: list[dict[str, Any]] | None) -> None:
    """For a session that declared no tools itself, the tools its agent offered: a dataset's
    ``tools.json`` snapshot where there is one, else the catalog of the agent's version."""
    meta = example.metadata
    if meta.get("tool_schema_source") not in ("inferred", "none"):
        return
    if snapshot is not None:
        offered, meta["tool_schema_source"] = snapshot, "snapshot"
    else:
        catalog = offered_tools(meta.get("trace_type", ""), meta.get("cli_version"))
        if catalog is None:
            return
        offered, meta["tool_schema_source"] = catalog.tools, "catalog"
        meta["tool_catalog"] = {"agent": catalog.agent, "version": catalog.version, "source": catalog.source}
    example.tools = complete_tool_schemas(offered, example.messages)
    meta["inferred_tools"] = [tool_name(t) for t in example.tools[len(offered) :]]


def _convert_trace(trace: TraceFile, report: LoadReport) -> Iterator[Outcome]:
    if not trace.records:
        if not trace.problems:
            report.problems.append(Problem(str(trace.path), None, "empty file"))
        return
    trace_format = find_format(trace.records) or _row_format(trace.records)
    if trace_format is None:
        report.problems.append(Problem(str(trace.path), None, "unknown trace format"))
        return
    if not trace_format.per_row:
        yield from _convert(trace_format, trace.records, trace.lines, str(trace.path), report, trace.path)
        return
    for record, line in zip(trace.records, trace.lines, strict=True):
        row_format = find_format([record])
        if row_format is None or not row_format.per_row:
            report.problems.append(Problem(str(trace.path), line or None, _unknown_row(trace_format, record)))
            continue
        yield from _convert(row_format, [record], [line], str(trace.path), report)


def _row_format(records: list[dict[str, Any]]) -> TraceFormat | None:
    """The format of a row dataset whose first rows are damaged: the first row format any row is in."""
    formats = (find_format([record]) for record in records)
    return next((f for f in formats if f is not None and f.per_row), None)


def _unknown_row(file_format: TraceFormat, row: dict[str, Any]) -> str:
    """Why a row of a row dataset is in no format: what the file's format finds wrong with it, where it says."""
    try:
        file_format.check(row)
    except RecordError as error:
        return f"unusable {file_format.name} row: {error}"
    return "unknown row format"


def _dataset_examples(dataset: datasets.Dataset, where: str, report: LoadReport) -> Iterator[Outcome]:
    """Rows of an Arrow table, where ``null`` marks keys a row never had (and no text holds a lone surrogate:
    Arrow text is UTF-8)."""
    yield from _row_examples((drop_nulls(row) for row in dataset), where, report, checked=True)


def _row_examples(
    rows: Iterable[dict[str, Any]], where: str, report: LoadReport, checked: bool = False
) -> Iterator[Outcome]:
    """Rows as they are, each first checked for nesting and lone surrogates as a file's records are when
    read, unless ``checked`` (Arrow rows: their text is UTF-8, their nesting the schema's)."""
    report.files += 1
    for number, row in enumerate(rows, start=1):
        if not checked:
            try:
                row, replaced = checked_value(row)
            except RecordError as error:
                report.problems.append(Problem(where, number, str(error)))
                continue
            if replaced:
                report.repairs.append(Problem(where, number, surrogates_replaced(replaced)))
        row_format = find_format([row])
        if row_format is None or not row_format.per_row:
            report.problems.append(Problem(where, number, "unknown row format"))
            continue
        for outcome in _convert(row_format, [row], [number], where, report):
            if isinstance(outcome, TrainingExample):
                _complete_offered_tools(outcome, None)
            yield outcome


def _convert(
    trace_format: TraceFormat,
    records: list[dict[str, Any]],
    lines: list[int],
    where: str,
    report: LoadReport,
    path: Path | None = None,
) -> Iterator[Outcome]:
    """The rows of one session (or one row), its unusable records skipped and every note placed on its line."""
    line_of = {id(record): line or None for record, line in zip(records, lines, strict=True)}
    usable = _usable(trace_format, records, line_of, where, report)
    if not usable:  # each is reported already
        yield "unconvertible"
        return
    try:
        converted = trace_format.convert(usable, path)
    except Exception as error:  # damage the checks let through: report it, keep going
        message = f"cannot convert {trace_format.name} trace: {_describe(error)}"
        report.problems.append(Problem(where, lines[0] or None, message))
        yield "unconvertible"
        return
    report.left_out.update(converted.left_out)
    for record, message in converted.skipped:
        report.problems.append(Problem(where, line_of.get(id(record), lines[0] or None), message))
    for record, message in converted.repaired:
        report.repairs.append(Problem(where, line_of.get(id(record), lines[0] or None), message))
    if not converted.rows:
        yield "no assistant turn"
    for example in converted.rows:
        example.metadata.setdefault("source_file", where)
        example.metadata.setdefault("source_line", lines[0])
        yield example


def _usable(
    trace_format: TraceFormat,
    records: list[dict[str, Any]],
    line_of: dict[int, int | None],
    where: str,
    report: LoadReport,
) -> list[dict[str, Any]]:
    """The records the format can use; each other one is reported on its line and, in a session, counted as left out."""
    usable = []
    for record in records:
        try:
            trace_format.check(record)
        except RecordError as error:
            kind = "row" if trace_format.per_row else "record"
            message = f"unusable {trace_format.name} {kind}: {error}"
            report.problems.append(Problem(where, line_of[id(record)], message))
            if not trace_format.per_row:
                report.left_out["unusable record (see the input problems)"] += 1
        else:
            usable.append(record)
    return usable


def _describe(error: Exception) -> str:
    if isinstance(error, TeichError):
        return str(error)
    if isinstance(error, ValidationError):
        detail = error.errors()[0]
        return f"{'.'.join(map(str, detail['loc']))}: {detail['msg']}"
    return first_line(error, typed=True)


@overload
def load_traces(
    source: Source | Iterable[Source],
    split: str = ...,
    revision: str | None = ...,
    token: str | None = ...,
    max_examples: int | None = ...,
    drop_incomplete_traces: bool = ...,
    return_report: Literal[False] = ...,
) -> datasets.Dataset: ...


@overload
def load_traces(
    source: Source | Iterable[Source],
    split: str = ...,
    revision: str | None = ...,
    token: str | None = ...,
    max_examples: int | None = ...,
    drop_incomplete_traces: bool = ...,
    *,
    return_report: Literal[True],
) -> tuple[datasets.Dataset, LoadReport]: ...


def load_traces(
    source: Source | Iterable[Source],
    split: str = "train",
    revision: str | None = None,
    token: str | None = None,
    max_examples: int | None = None,
    drop_incomplete_traces: bool = True,
    return_report: bool = False,
) -> datasets.Dataset | tuple[datasets.Dataset, LoadReport]:
    """Load agent traces or chat rows from any source into a normalized ``datasets.Dataset``.

    Rows are in the storage form of :meth:`TrainingExample.to_record`; read one back with
    :meth:`TrainingExample.from_record`. What was dropped and which inputs could not be read are logged.

    ``source``: a file, a folder (searched recursively), a Hugging Face dataset id, a
    ``datasets.Dataset`` (or ``DatasetDict``), row dicts, or a list of these.
    ``split``, ``revision``, ``token``: which split and revision of a Hub dataset (or a
    ``DatasetDict``) to read, and the Hub token to read it with.
    ``max_examples``: stop after this many rows (no further input is read).
    ``drop_incomplete_traces``: drop rows that end on a tool result or a user turn.
    ``return_report``: also return the :class:`LoadReport`.
    """
    report = LoadReport()
    options = LoadOptions(
        split=split,
        revision=revision,
        token=token,
        max_examples=max_examples,
        drop_incomplete_traces=drop_incomplete_traces,
    )
    rows = [example.to_record() for example in iter_examples(source, report, options)]
    if not rows and report.problems and not report.dropped:
        raise TeichError(f"no traces could be read: {report.problems[0]}")
    _log(report)
    dataset = _to_dataset(rows)
    return (dataset, report) if return_report else dataset


def _to_dataset(rows: list[dict[str, Any]]) -> datasets.Dataset:
    """Rows in storage form as a dataset; with no rows, an empty one (``from_list`` rejects ``[]``)."""
    if not rows:
        return datasets.Dataset.from_dict({name: [] for name in FEATURES}, features=FEATURES)
    return datasets.Dataset.from_list(rows, features=FEATURES)


def _log(report: LoadReport) -> None:
    for problem in report.problems:
        logger.warning("skipped %s", problem)
    for repair in report.repairs:
        logger.warning("repaired %s", repair)
    if report.dropped:
        logger.warning("load_traces: %s", report.summary())
