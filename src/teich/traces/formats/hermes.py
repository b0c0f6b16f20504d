"""Hermes Agent (Nous Research) session exports: one JSON row per session with ``system_prompt``,
``model``, usage columns and ``messages`` (OpenAI-style, ``reasoning`` on assistant turns)."""

from __future__ import annotations

from pathlib import Path

from teich.schema import json_or_value
from teich.traces.checks import NULL, check_content, check_messages, check_tools, expect, field, json_value
from teich.traces.conversation import Conversation, add_openai_message
from teich.traces.protocol import Converted, Record, TraceFormat


class Hermes(TraceFormat):
    name = "hermes"
    per_row = True
    priority = 70

    def matches(self, records: list[Record]) -> bool:
        return (
            bool(records)
            and "system_prompt" in records[0]
            and "messages" in records[0]
            and "model_config" in records[0]
        )

    def check(self, record: Record) -> None:
        check_content(record.get("system_prompt"), "system_prompt")
        if isinstance(field(record, "messages", list, str), list):  # JSON text is checked once parsed
            _check_messages(record["messages"])

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        (row,) = records
        conversation = Conversation(keep_result_tail=True, keep_orphan_results=True)
        conversation.metadata.update(
            session_id=row.get("id"),
            model=row.get("model"),
            provider=row.get("billing_provider"),
            cwd=row.get("cwd"),
            title=row.get("title"),
            timestamp=row.get("started_at"),
            cost=row.get("actual_cost_usd") or row.get("estimated_cost_usd"),
            usage={k: row.get(k) for k in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")},
        )
        tools = json_value(row.get("tools"), "tools")
        check_tools(tools, "tools")
        conversation.tools = list(tools or [])
        conversation.add("system", row.get("system_prompt"))
        messages = row["messages"]
        if isinstance(messages, str):
            messages = expect(json_value(messages, "messages"), "messages", list)
            _check_messages(messages)
        for message in messages:
            if message.get("tool_name") and not message.get("name"):
                message = {**message, "name": message["tool_name"]}
            if message.get("role") == "tool" and _failed(message.get("content")):
                message = {**message, "is_error": True}
            add_openai_message(conversation, message)
        return conversation.finish(self.name)


def _check_messages(messages: list[Record]) -> None:
    """OpenAI-style messages, a tool result's name under ``tool_name``."""
    check_messages(messages)
    for index, message in enumerate(messages):
        expect(message.get("tool_name"), f"messages[{index}].tool_name", str, NULL)


def _failed(content: object) -> bool:
    """Hermes tools report failure inside their JSON result: a non-zero ``exit_code`` or an ``error``."""
    result = json_or_value(content, lenient=True) if isinstance(content, str) and content.startswith("{") else content
    return isinstance(result, dict) and (result.get("exit_code") not in (None, 0) or bool(result.get("error")))


FORMAT = Hermes()
