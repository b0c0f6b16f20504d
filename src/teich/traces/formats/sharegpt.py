"""ShareGPT rows: ``{"conversations": [{"from", "value"}]}`` with ``human``/``gpt``/``system`` turns
and, in tool-use variants, ``function_call`` (JSON ``{"name", "arguments"}``) and ``observation``."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from teich.errors import RecordError
from teich.traces.checks import NULL, check_call_name, check_content, check_tools, expect, field, json_value, objects
from teich.traces.conversation import Conversation
from teich.traces.protocol import Converted, Record, TraceFormat

_ROLES = MappingProxyType(
    {"human": "user", "user": "user", "system": "system", "gpt": "assistant", "assistant": "assistant"}
)


class ShareGPT(TraceFormat):
    name = "sharegpt"
    per_row = True
    priority = 90

    def matches(self, records: list[Record]) -> bool:
        return bool(records) and isinstance(records[0].get("conversations"), list)

    def check(self, record: Record) -> None:
        check_content(record.get("system"), "system")
        for index, turn in enumerate(objects(field(record, "conversations", list), "conversations")):
            expect(turn.get("from"), f"conversations[{index}].from", str, NULL)
            expect(turn.get("value"), f"conversations[{index}].value", str, NULL)

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        (row,) = records
        conversation = Conversation(keep_result_tail=True, keep_orphan_results=True)
        tools = json_value(row.get("tools"), "tools")
        check_tools(tools, "tools")
        conversation.tools = list(tools or [])
        conversation.add("system", row.get("system"))
        pending: list[str] = []
        for index, turn in enumerate(row["conversations"]):
            speaker, value = turn.get("from"), turn.get("value") or ""
            if speaker == "function_call":
                call = _function_call(value, f"conversations[{index}].value")
                call_id = f"call_{len(pending)}_{len(conversation.messages)}"
                conversation.assistant(tool_calls=[conversation.call(call["name"], call.get("arguments"), call_id)])
                pending.append(call_id)
            elif speaker in ("observation", "tool", "function"):
                conversation.tool_result(pending.pop(0) if pending else "", value)
            elif _ROLES.get(speaker) == "assistant":
                conversation.assistant(text=value)
            else:
                conversation.add(_ROLES.get(speaker, "user"), value)
        return conversation.finish(self.name)


def _function_call(value: str, where: str) -> Record:
    """A ``function_call`` turn's value: JSON ``{"name", "arguments"}``."""
    call = json_value(value, where)
    if not isinstance(call, dict):
        raise RecordError(f"{where!r} is not a JSON function call object")
    check_call_name(call, where)
    return call


FORMAT = ShareGPT()
