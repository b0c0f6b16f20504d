"""Cursor agent transcripts: ``cursor_session_meta`` and ``cursor_available_tools`` records, then
``{"role", "message": {"content": [...]}}`` records with Anthropic style blocks."""

from __future__ import annotations

from pathlib import Path

from teich.traces.blocks import add_assistant_blocks, add_user_blocks
from teich.traces.checks import NULL, check_blocks, check_tools, field
from teich.traces.conversation import Conversation
from teich.traces.protocol import Converted, Record, TraceFormat

_ROLES = ("user", "assistant", "system")


class Cursor(TraceFormat):
    name = "cursor"
    priority = 60

    def matches(self, records: list[Record]) -> bool:
        return any(str(r.get("type", "")).startswith("cursor_") for r in records)

    def check(self, record: Record) -> None:
        if record.get("type") == "cursor_available_tools":
            check_tools(record.get("tools"), "tools")
        elif record.get("role") in _ROLES:
            check_blocks((field(record, "message", dict, NULL) or {}).get("content"), "message.content")

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        conversation = Conversation()
        for record in records:
            conversation.record = record
            kind = record.get("type")
            if kind == "cursor_session_meta":
                conversation.metadata.update(
                    session_id=record.get("session_id"), model=record.get("model"), provider=record.get("source")
                )
            elif kind == "cursor_available_tools":
                conversation.tools = list(record.get("tools") or [])
            elif record.get("role") in _ROLES:
                content = (record.get("message") or {}).get("content") or []
                if record["role"] == "assistant":
                    add_assistant_blocks(conversation, content)
                else:
                    add_user_blocks(conversation, content, record["role"])
        return conversation.finish(self.name)


FORMAT = Cursor()
