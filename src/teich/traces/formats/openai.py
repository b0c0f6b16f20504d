"""OpenAI-style rows: ``{"messages", "tools"?, ...}``, including Teich's own rows (its storage form
from :meth:`TrainingExample.to_record` and what ``teich convert`` writes)."""

from __future__ import annotations

from pathlib import Path

from teich.schema import json_or_value, parse_message
from teich.traces.conversation import Conversation, add_openai_message
from teich.traces.protocol import Converted, Record, TraceFormat


def convert_row(row: Record, name: str) -> Converted:
    """One OpenAI-style row; its ``prompt``, ``system``, follow-ups and category are kept as given."""
    conversation = Conversation(metadata=dict(json_or_value(row.get("metadata")) or {}), keep_result_tail=True)
    conversation.tools = list(json_or_value(row.get("tools")) or [])
    for message in row["messages"]:
        add_openai_message(conversation, parse_message(message))
    converted = conversation.finish(name)
    fields = {key: row[key] for key in ("prompt", "system", "follow_up_prompts", "category") if row.get(key)}
    converted.rows = [example.model_copy(update=fields) for example in converted.rows]
    return converted


class OpenAIRows(TraceFormat):
    name = "openai"
    per_row = True
    priority = 100

    def matches(self, records: list[Record]) -> bool:
        messages = records[0].get("messages") if records else None
        return isinstance(messages, list) and all(isinstance(m, dict) and "role" in m for m in messages)

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        (row,) = records
        return convert_row(row, self.name)


FORMAT = OpenAIRows()
