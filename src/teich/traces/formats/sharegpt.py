"""ShareGPT rows: ``{"conversations": [{"from", "value"}]}`` with ``human``/``gpt``/``system`` turns
and, in tool-use variants, ``function_call`` (JSON ``{"name", "arguments"}``) and ``observation``."""

from __future__ import annotations

import json
from pathlib import Path

from teich.traces.conversation import Conversation, tool_call
from teich.traces.protocol import Converted, Record, TraceFormat

_ROLES = {"human": "user", "user": "user", "system": "system", "gpt": "assistant", "assistant": "assistant"}


class ShareGPT(TraceFormat):
    name = "sharegpt"
    per_row = True
    priority = 90

    def matches(self, records: list[Record]) -> bool:
        return bool(records) and isinstance(records[0].get("conversations"), list)

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        (row,) = records
        conversation = Conversation(keep_result_tail=True)
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
        return conversation.finish(self.name)


FORMAT = ShareGPT()
