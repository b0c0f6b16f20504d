"""OpenAI-style rows: ``{"messages", "tools"?, ...}``, including Teich's own rows (its storage form
from :meth:`TrainingExample.to_record` and what ``teich convert`` writes)."""

from __future__ import annotations

from pathlib import Path

from teich.traces.checks import NULL, check_messages, check_tools, expect, field, json_value
from teich.traces.conversation import Conversation, add_openai_message
from teich.traces.protocol import Converted, Record, TraceFormat


def check_row(row: Record) -> None:
    """The fields of an OpenAI-style row that :func:`convert_row` reads as they are (not JSON text)."""
    check_messages(row.get("messages"))
    for key in ("prompt", "system", "category"):
        field(row, key, str, NULL)
    for index, prompt in enumerate(field(row, "follow_up_prompts", list, NULL) or []):
        expect(prompt, f"follow_up_prompts[{index}]", str)


def convert_row(row: Record, name: str) -> Converted:
    """One OpenAI-style row; its ``prompt``, ``system``, follow-ups and category are kept as given."""
    metadata = expect(json_value(row.get("metadata"), "metadata"), "metadata", dict, NULL)
    tools = json_value(row.get("tools"), "tools")
    check_tools(tools, "tools")
    conversation = Conversation(metadata=dict(metadata or {}), keep_result_tail=True, keep_orphan_results=True)
    conversation.tools = list(tools or [])
    for message in row["messages"]:
        add_openai_message(conversation, message)
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

    def check(self, record: Record) -> None:
        check_row(record)

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        (row,) = records
        return convert_row(row, self.name)


FORMAT = OpenAIRows()
