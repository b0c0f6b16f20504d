"""Cursor agent transcripts: ``cursor_session_meta`` and ``cursor_available_tools`` records, then
``{"role", "message": {"content": [...]}}`` records with Anthropic style blocks."""

from __future__ import annotations

from typing import Any

from teich.schema import TrainingExample
from teich.traces.blocks import add_assistant_blocks, add_user_blocks
from teich.traces.conversation import Conversation

NAME = "cursor"
PER_ROW = False


def matches(records: list[dict[str, Any]]) -> bool:
    return any(str(r.get("type", "")).startswith("cursor_") for r in records)


def convert(records: list[dict[str, Any]]) -> TrainingExample | None:
    conversation = Conversation()
    for record in records:
        kind = record.get("type")
        if kind == "cursor_session_meta":
            conversation.metadata.update(
                session_id=record.get("session_id"), model=record.get("model"), provider=record.get("source")
            )
        elif kind == "cursor_available_tools":
            conversation.tools = list(record.get("tools") or [])
        elif record.get("role") in ("user", "assistant", "system"):
            content = (record.get("message") or {}).get("content") or []
            if record["role"] == "assistant":
                add_assistant_blocks(conversation, content)
            else:
                add_user_blocks(conversation, content, record["role"])
    return conversation.example(NAME)
