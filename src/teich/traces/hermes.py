"""Hermes Agent (Nous Research) session exports: one JSON row per session with ``system_prompt``,
``model``, usage columns and ``messages`` (OpenAI-style, ``reasoning`` on assistant turns)."""

from __future__ import annotations

import json
from typing import Any

from teich.schema import TrainingExample, parse_message
from teich.traces.conversation import Conversation, add_openai_message

NAME = "hermes"
PER_ROW = True


def matches(records: list[dict[str, Any]]) -> bool:
    return bool(records) and "system_prompt" in records[0] and "messages" in records[0] and "model_config" in records[0]


def convert(records: list[dict[str, Any]]) -> TrainingExample | None:
    (row,) = records
    conversation = Conversation()
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
    if row.get("tools"):
        conversation.tools = _json(row["tools"])
    conversation.add("system", row.get("system_prompt"))
    for message in _json(row.get("messages") or []):
        if message.get("tool_name") and not message.get("name"):
            message = {**message, "name": message["tool_name"]}
        add_openai_message(conversation, parse_message(message))
    return conversation.example(NAME)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
