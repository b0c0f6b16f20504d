"""ShareGPT rows: ``{"conversations": [{"from", "value"}]}`` with ``human``/``gpt``/``system`` turns
and, in tool-use variants, ``function_call`` (JSON ``{"name", "arguments"}``) and ``observation``."""

from __future__ import annotations

import json
from typing import Any

from teich.schema import TrainingExample
from teich.traces.conversation import Conversation, tool_call

NAME = "sharegpt"
PER_ROW = True

_ROLES = {"human": "user", "user": "user", "system": "system", "gpt": "assistant", "assistant": "assistant"}


def matches(records: list[dict[str, Any]]) -> bool:
    return bool(records) and isinstance(records[0].get("conversations"), list)


def convert(records: list[dict[str, Any]]) -> TrainingExample | None:
    (row,) = records
    conversation = Conversation()
    if row.get("tools"):
        tools = row["tools"]
        conversation.tools = json.loads(tools) if isinstance(tools, str) else list(tools)
    conversation.add("system", row.get("system"))
    pending: list[str] = []
    for turn in row["conversations"]:
        speaker, value = turn.get("from"), turn.get("value") or ""
        if speaker == "function_call":
            call = json.loads(value)
            call_id = f"call_{len(pending)}_{len(conversation.messages)}"
            conversation.assistant(tool_calls=[tool_call(call["name"], call.get("arguments"), call_id)])
            pending.append(call_id)
        elif speaker in ("observation", "tool", "function"):
            conversation.tool_result(pending.pop(0) if pending else "", value)
        elif _ROLES.get(speaker) == "assistant":
            conversation.assistant(text=value)
        else:
            conversation.add(_ROLES.get(speaker, "user"), value)
    return conversation.example(NAME)
