"""OpenAI-style rows: ``{"messages", "tools"?, ...}``, including Teich's own rows (its storage form
from :meth:`TrainingExample.to_record` and what ``teich convert`` writes)."""

from __future__ import annotations

import json
from typing import Any

from teich.schema import TrainingExample, parse_message
from teich.traces.conversation import Conversation, add_openai_message

NAME = "openai"
PER_ROW = True


def matches(records: list[dict[str, Any]]) -> bool:
    return bool(records) and isinstance(records[0].get("messages"), list)


def convert(records: list[dict[str, Any]], name: str = NAME) -> TrainingExample | None:
    (row,) = records
    conversation = Conversation(metadata=dict(_json(row.get("metadata")) or {}))
    conversation.tools = list(_json(row.get("tools")) or [])
    for message in row["messages"]:
        add_openai_message(conversation, parse_message(message))
    example = conversation.example(name)
    if example is None:
        return None
    fields = {key: row[key] for key in ("prompt", "system", "follow_up_prompts", "category") if row.get(key)}
    return example.model_copy(update=fields)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
