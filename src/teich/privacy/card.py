"""The dataset card for a folder of sessions or rows that has none: what it holds, per format."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teich.errors import OutputError, first_line
from teich.files import write_text_atomic
from teich.generate.card import CARD, LOAD_SECTION, front_matter
from teich.schema import TrainingExample
from teich.traces.sources import LoadReport, iter_examples

MAX_MODELS_SHOWN = 4


@dataclass
class _FormatCount:
    """What a folder holds in one trace format."""

    files: set[str] = field(default_factory=set)
    sessions: int = 0
    messages: int = 0
    models: Counter[str] = field(default_factory=Counter)


def _count_formats(examples: Iterable[TrainingExample]) -> dict[str, _FormatCount]:
    """Files, sessions (or rows), messages and models per trace format, formats in name order."""
    counts: defaultdict[str, _FormatCount] = defaultdict(_FormatCount)
    for example in examples:
        meta = example.metadata
        count = counts[str(meta.get("trace_type", "unknown"))]
        count.files.add(str(meta.get("source_file", "")))
        count.sessions += 1
        count.messages += len(example.messages)
        if meta.get("model"):
            count.models[str(meta["model"])] += 1
    return dict(sorted(counts.items()))


def render_folder_card(folder: str | Path, *, pretty_name: str | None = None) -> str:
    """The card's text for the sessions or rows in ``folder``, as :func:`~teich.load_traces` reads them:
    front matter (``pretty_name``, default the folder's name, and tags), a table per trace format
    (files, sessions, messages, models), what loading leaves out, and how to load it."""
    folder = Path(folder)
    report = LoadReport()
    counts = _count_formats(iter_examples(folder, report))
    name = pretty_name or folder.resolve().name
    front: dict[str, Any] = {
        "pretty_name": name,
        "tags": ["agent-traces", *counts, "teich"],
        "task_categories": ["text-generation"],
    }
    return f"""{front_matter(front)}
# {name}

Coding-agent sessions, shared with [Teich](https://pypi.org/project/teich/) (`teich publish`).

{_format_table(counts)}{_left_out(report)}
{LOAD_SECTION}"""


def write_folder_card(folder: str | Path, *, pretty_name: str | None = None) -> None:
    """Write :func:`render_folder_card`'s card for ``folder`` as its ``README.md``, to read or edit before
    :func:`~teich.publish` (which uploads a folder's own card as it is). ``pretty_name`` is the card's
    title (default: the folder's name). Raises :class:`~teich.errors.OutputError` when ``folder``
    cannot be written."""
    folder = Path(folder)
    text = render_folder_card(folder, pretty_name=pretty_name)
    try:
        write_text_atomic(folder / CARD, text)
    except OSError as error:
        raise OutputError(f"cannot write {folder / CARD}: {first_line(error)}") from None


def _format_table(counts: dict[str, _FormatCount]) -> str:
    lines = ["| format | files | sessions | messages | models |", "| --- | --- | --- | --- | --- |"]
    for name, count in counts.items():
        cells = (f"`{name}`", len(count.files), count.sessions, count.messages, _models(count.models))
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    every = counts.values()
    totals = (sum(len(c.files) for c in every), sum(c.sessions for c in every), sum(c.messages for c in every))
    lines.append("| all | {} | {} | {} | |".format(*totals))
    return "\n".join(lines) + "\n"


def _models(models: Counter[str]) -> str:
    shown = [f"`{model}`" for model, _ in models.most_common(MAX_MODELS_SHOWN)]
    more = len(models) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def _left_out(report: LoadReport) -> str:
    """One line on what ``load_traces`` leaves out of this folder, or nothing."""
    parts = [f"{count} sessions ({reason})" for reason, count in sorted(report.dropped.items())]
    if report.problems:
        unreadable = len({problem.path for problem in report.problems})
        parts.append(f"what it cannot read in {unreadable} {'file' if unreadable == 1 else 'files'}")
    return f"\n`load_traces` leaves out {', '.join(parts)}.\n" if parts else ""
