"""OpenClaw sessions: the Pi v3 layout with OpenClaw's own ``custom`` entries."""

from __future__ import annotations

from typing import Any

from teich.schema import TrainingExample
from teich.traces import pi

NAME = "openclaw"
PER_ROW = False


def matches(records: list[dict[str, Any]]) -> bool:
    return bool(records) and records[0].get("type") == "session" and pi.is_openclaw(records)


def convert(records: list[dict[str, Any]]) -> TrainingExample | None:
    return pi.convert(records, NAME)
