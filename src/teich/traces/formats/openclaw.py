"""OpenClaw sessions: the Pi v3 layout with OpenClaw's own ``custom`` entries."""

from __future__ import annotations

from pathlib import Path

from teich.traces.formats.pi import check_entry, convert_session, is_openclaw
from teich.traces.protocol import Converted, Record, TraceFormat


class OpenClaw(TraceFormat):
    name = "openclaw"
    priority = 20

    def matches(self, records: list[Record]) -> bool:
        return bool(records) and records[0].get("type") == "session" and is_openclaw(records)

    def check(self, record: Record) -> None:
        check_entry(record)

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        return convert_session(records, self.name)


FORMAT = OpenClaw()
