"""One shape for every report Teich hands back: what a step counted, why it set things aside, what it noted.

Each report (:class:`~teich.traces.sources.LoadReport`, :class:`~teich.training.prepare.PrepareReport`,
:class:`~teich.training.dataset_labels.MaskAudit`, the generation :class:`~teich.generate.runner.Summary`)
keeps its own fields and says what they amount to in a :class:`Tally`; :class:`Report` turns that into
JSON (:meth:`Report.to_dict`) or a table (:meth:`Report.table`), the same way for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.markup import escape
from rich.table import Table


@dataclass(frozen=True)
class Tally:
    """What a report amounts to, in names a JSON reader and a table share."""

    #: Plain counts (and totals such as a cost), in reading order.
    counts: dict[str, int | float]
    #: Things set aside or changed, by group (``dropped``, ``left_out``...), each a reason -> count mapping.
    reasons: dict[str, Mapping[str, int]] = field(default_factory=dict)
    #: One line per input problem, repair or failure, by what was done (``skipped``, ``repaired``, ``failed``).
    notes: dict[str, list[str]] = field(default_factory=dict)


class Report(ABC):
    """A report of one step: :meth:`tally` per report, the rest shared."""

    #: What the report is about (``load``, ``prepare``, ``audit``, ``generate``): its JSON ``report`` and table title.
    kind: ClassVar[str]

    @abstractmethod
    def tally(self) -> Tally:
        """The report's counts, reasons and notes."""

    @abstractmethod
    def summary(self) -> str:
        """The report in one line."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, with the keys ``report``, ``counts``, ``reasons`` and ``notes``;
        reasons are ordered most frequent first."""
        tally = self.tally()
        return {
            "report": self.kind,
            "counts": dict(tally.counts),
            "reasons": {group: _by_count(counts) for group, counts in tally.reasons.items()},
            "notes": {verb: list(lines) for verb, lines in tally.notes.items()},
        }

    def table(self) -> Table:
        """The counts, then each reason with its count, as a table titled by the report's kind."""
        data = self.to_dict()
        table = Table("", "count", "reason", box=None, title=self.kind, title_justify="left")
        for name, value in data["counts"].items():
            table.add_row(_label(name), _number(value), "")
        for group, counts in data["reasons"].items():
            for reason, count in counts.items():
                table.add_row(_label(group), str(count), escape(reason))
        return table


def _by_count(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _label(name: str) -> str:
    return name.replace("_", " ")


def _number(value: int | float) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
