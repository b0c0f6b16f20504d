"""Building a normalized conversation out of the events of a native trace.

Every format module feeds its events into a :class:`Conversation`; the rules shared by all formats
live here: fragments of one assistant turn are merged (reasoning, then text, then tool calls),
tool results are paired with their calls by id, trailing unanswered user turns are trimmed, and
tool schemas are inferred from observed calls when a session declared none. What a session's records
hold that cannot be used as it is (a result answering no call, arguments that are not JSON) is noted
against the record being read (:attr:`Conversation.record`).
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, cast

from teich.schema import (
    Content,
    FunctionCall,
    Message,
    Role,
    ToolCall,
    TrainingExample,
    parse_arguments,
    parse_message,
    read_arguments,
    text_of,
)
from teich.traces.protocol import Converted, Record

FRAGMENT_JOINER = "\n\n"

# Text that agent harnesses inject as user-role messages (environment, instructions, reminders).
_HARNESS_CONTEXT = re.compile(
    r"\s*(?:# AGENTS\.md instructions\b.*"
    r"|(?:<(environment_context|user_instructions|permissions instructions|system-reminder|turn_aborted)>"
    r".*?</\1>\s*)+)",
    re.DOTALL,
)


def is_harness_context(text: str) -> bool:
    """Whether a user-role text is context injected by the agent harness rather than typed by a user."""
    return _HARNESS_CONTEXT.fullmatch(text) is not None


@dataclass
class _AssistantTurn:
    reasoning: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    train: bool | None = None

    def message(self) -> Message:
        return Message(
            role="assistant",
            content=FRAGMENT_JOINER.join(self.text) if self.text else None,
            reasoning_content=FRAGMENT_JOINER.join(self.reasoning) if self.reasoning else None,
            tool_calls=self.calls or None,
            train=self.train,
        )


@dataclass
class Conversation:
    """Accumulates messages in order; see the module docstring for the rules it applies."""

    messages: list[Message] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    #: Keep tool results after the last assistant turn (a row dataset's own rows: such a row is
    #: incomplete, see ``drop_incomplete_traces``). Sessions trim them: the model generated nothing after.
    keep_result_tail: bool = False
    #: Keep tool results that answer no call made before them (a row dataset's own rows, as given:
    #: ``prepare_data`` rejects such a row). Sessions leave them out, noted: their call's record is
    #: missing or unusable.
    keep_orphan_results: bool = False
    rows: list[TrainingExample] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    #: The record being read, which notes (:meth:`skip`, :meth:`repair`) are about.
    record: Record | None = None
    skipped: list[tuple[Record | None, str]] = field(default_factory=list)
    repaired: list[tuple[Record | None, str]] = field(default_factory=list)
    _turn: _AssistantTurn | None = None
    _generated_from: int = 0
    _call_names: dict[str, str] = field(default_factory=dict)

    def add(self, role: str, content: Content, **fields: Any) -> None:
        """A non-assistant message (system, developer, user, tool).

        User-role text injected by the harness is typed ``developer``; empty messages are skipped,
        except tool results, which always pair with their call.
        """
        content = normalize_content(content)
        if not content and role != "tool":
            return
        if role == "user" and isinstance(content, str) and is_harness_context(content):
            role = "developer"
        self._close_turn()
        self.messages.append(Message(role=cast(Role, role), content=content or "", **fields))

    def assistant(
        self,
        *,
        text: str | None = None,
        reasoning: str | None = None,
        tool_calls: Sequence[ToolCall] = (),
        train: bool | None = None,
    ) -> None:
        """A fragment of the current assistant turn; consecutive fragments merge into one message
        (a ``train`` flag of any fragment holds for the turn, ``False`` over ``True``)."""
        turn = self._turn = self._turn or _AssistantTurn()
        if train is not None and turn.train is not False:
            turn.train = train
        if reasoning and reasoning.strip():
            turn.reasoning.append(reasoning)
        if text and text.strip():
            turn.text.append(text)
        for call in tool_calls:
            if not call.id:
                call = call.model_copy(update={"id": f"call_{len(self._call_names)}"})
            self._call_names[call.id] = call.function.name
            turn.calls.append(call)

    def retract_text(self, text: str) -> None:
        """Take back the last text fragment of the open assistant turn, when it is ``text``."""
        if self._turn is not None and self._turn.text and self._turn.text[-1] == text:
            self._turn.text.pop()

    def call(self, name: str, arguments: Any, call_id: str | None = None) -> ToolCall:
        """A tool call whose arguments should be a JSON object (or its text); other arguments are kept
        as ``{"input": value}``, noted."""
        parsed, is_object = read_arguments(arguments)
        if not is_object:
            self.repair(f'arguments of tool call {name!r} are not a JSON object; kept as {{"input": ...}}')
        return ToolCall(id=call_id or "", function=FunctionCall(name=name, arguments=parsed))

    def tool_result(
        self, call_id: str, content: Content, name: str | None = None, is_error: bool | None = None
    ) -> None:
        """A tool's result, paired with its call by id; ``is_error`` kept where the harness marked a failure.
        A result that answers no call made before it is left out (see :attr:`keep_orphan_results`)."""
        if call_id not in self._call_names and not self.keep_orphan_results:
            self.leave_out_orphan(call_id)
            return
        name = name or self._call_names.get(call_id)
        self.add("tool", content, tool_call_id=call_id, name=name, is_error=is_error or None)

    def leave_out_orphan(self, call_id: object) -> None:
        """Leave out a tool result that answers no call (its call's record is missing or unusable), noted."""
        self.skip(f"tool result {call_id!r} answers no call before it (left out)")
        self.leave_out("tool result with no call before it")

    def set_system(self, text: str) -> None:
        """The context's system prompt, where a session records it after the first messages."""
        self._close_turn()
        system = Message(role="system", content=text)
        if self.messages and self.messages[0].role == "system":
            self.messages[0] = system
        else:
            self.messages.insert(0, system)
            self._generated_from += bool(self._generated_from)

    def use_model(self, model: str | None, provider: str | None = None) -> None:
        """Note a model (and provider) answering from here on: ``model`` is the last, ``models`` all, in order."""
        if provider:
            self.metadata["provider"] = provider
        if model:
            self.metadata["model"] = model
            models = self.metadata.setdefault("models", [])
            if model not in models:
                models.append(model)

    def skip(self, message: str) -> None:
        """Note that (part of) the record being read could not be used."""
        self.skipped.append((self.record, message))

    def repair(self, message: str, record: Record | None = None) -> None:
        """Note that a record (by default the one being read) was used after a change."""
        self.repaired.append((record if record is not None else self.record, message))

    def leave_out(self, reason: str, count: int = 1) -> None:
        """Count something of the session left out of every row on purpose."""
        if count:
            self.left_out[reason] += count

    def restart(self, trace_type: str, carry: Sequence[Message] = ()) -> None:
        """End the current context (it becomes a row) and begin a new one with ``carry``: what the
        model saw first after a compaction (its system prompt, the summary, any messages kept)."""
        row = self.example(trace_type, keep_result_tail=False)
        if row is not None:
            self.rows.append(row)
        elif self.messages:
            self.leave_out("context with no assistant turn", 1)
        self.messages = list(carry)
        self.metadata["compacted"] = True
        self._generated_from = 0

    def carried_until_here(self) -> None:
        """Mark the messages so far as carried over from the context before (a compaction's kept
        tail): the context becomes a row only once the model generates something after them."""
        self._close_turn()
        self._generated_from = len(self.messages)

    def finish(self, trace_type: str) -> Converted:
        """Every row of the session: the contexts before each compaction, then the last one."""
        row = self.example(trace_type)
        if row is not None:
            self.rows.append(row)
        elif self.rows:
            self.leave_out("context after compaction with no assistant turn", 1)
        for index, row in enumerate(self.rows):
            if len(self.rows) > 1:
                row.metadata["context_index"] = index
            if self.left_out:
                row.metadata["session_left_out"] = dict(self.left_out)
        return Converted(self.rows, self.left_out, self.skipped, self.repaired)

    def example(self, trace_type: str, keep_result_tail: bool | None = None) -> TrainingExample | None:
        """The current context as a row, or ``None`` when it has no assistant turn.

        Messages after the last assistant turn are trimmed (nothing was generated after them),
        tool results too unless ``keep_result_tail`` (default: the conversation's setting).
        """
        self._close_turn()
        messages = self.messages
        last_assistant = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
        if last_assistant is None or last_assistant < self._generated_from:
            return None
        meta = copy.deepcopy(self.metadata)
        if self._generated_from:  # messages carried over from the context before (trained in its row)
            meta["carried_messages"] = self._generated_from
        tail = messages[last_assistant + 1 :]
        keep_results = self.keep_result_tail if keep_result_tail is None else keep_result_tail
        kept_tail = tail if keep_results and all(m.role == "tool" for m in tail) else []
        if len(kept_tail) < len(tail):
            messages = messages[: last_assistant + 1] + kept_tail
            meta["trimmed_trailing_user_turns"] = len(tail) - len(kept_tail)
            self.leave_out("unanswered message at the end", len(tail) - len(kept_tail))
        meta.setdefault("trace_type", trace_type)
        if isinstance(meta.get("timestamp"), (int, float)):
            meta["timestamp"] = _iso_time(meta["timestamp"])
        tools = complete_tool_schemas(self.tools, messages)
        meta.setdefault("tool_schema_source", _schema_source(self.tools, tools))
        if len(tools) > len(self.tools):
            meta.setdefault("inferred_tools", [tool_name(t) for t in tools[len(self.tools) :]])
        system = next((m.content for m in messages if m.role == "system" and isinstance(m.content, str)), None)
        users = [text_of(m.content) for m in messages if m.role == "user"]
        return TrainingExample(
            prompt=users[0] if users else "",
            follow_up_prompts=users[1:],
            messages=messages,
            tools=tools,
            metadata={k: v for k, v in meta.items() if v is not None},
            system=system,
        )

    def _close_turn(self) -> None:
        if self._turn is not None:
            turn, self._turn = self._turn, None
            if turn.reasoning or turn.text or turn.calls:
                self.messages.append(turn.message())


def _iso_time(seconds: float) -> str | float:
    """A Unix time as ISO 8601 text (UTC); a number no date can have is kept as it is."""
    try:
        stamp = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return seconds
    return stamp.isoformat().replace("+00:00", "Z")


def tool_call(name: str, arguments: Any, call_id: str | None = None) -> ToolCall:
    """A tool call with its arguments parsed into an object (see :func:`parse_arguments`).

    A call without an id gets one when it joins a :class:`Conversation`.
    """
    return ToolCall(id=call_id or "", function=FunctionCall(name=name, arguments=parse_arguments(arguments)))


def normalize_content(content: Content) -> Content:
    """Text-only part lists become a string; lists with images keep their parts, normalized."""
    if content is None or isinstance(content, str):
        return content
    parts = [_normalize_part(p) for p in content]
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _normalize_part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text"):
        return {"type": "text", "text": part.get("text") or ""}
    if kind in ("image", "input_image", "image_url"):
        return {"type": "image", "image": _image_source(part)}
    return {"type": "text", "text": json.dumps(part, ensure_ascii=False)}


def _image_source(part: dict[str, Any]) -> str:
    """A URL or data URL for the image parts of the formats Teich reads."""
    source = part.get("source")
    if isinstance(source, dict):  # Anthropic: {"type": "base64", "media_type", "data"} or {"type": "url", "url"}
        if source.get("data"):
            return f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"
        return str(source.get("url", ""))
    if part.get("data"):  # Pi: {"type": "image", "data", "mimeType"}
        return f"data:{part.get('mimeType', 'image/png')};base64,{part['data']}"
    url = part.get("image_url") or part.get("url") or part.get("image") or ""
    return url.get("url", "") if isinstance(url, dict) else url


def complete_tool_schemas(declared: list[dict[str, Any]], messages: list[Message]) -> list[dict[str, Any]]:
    """The declared schemas (never-called tools included), plus a schema inferred from the observed
    calls for every called tool that was not declared, in first-use order."""
    known = {tool_name(t) for t in declared}
    calls: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        for call in message.tool_calls or ():
            if call.function.name not in known:
                calls.setdefault(call.function.name, []).append(call.function.arguments)
    return list(declared) + [_schema_from_calls(name, arguments) for name, arguments in calls.items()]


def _schema_source(declared: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
    if not tools:
        return "none"
    if not declared:
        return "inferred"
    return "declared" if len(tools) == len(declared) else "declared+inferred"


def tool_name(schema: dict[str, Any]) -> str | None:
    """The name in an OpenAI function schema (``{"type": "function", "function": {"name"}}`` or flat)."""
    return (schema.get("function") or schema).get("name")


def _schema_from_calls(name: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    properties: dict[str, dict[str, Any]] = {}
    for arguments in calls:
        for key, value in arguments.items():
            properties.setdefault(key, {"type": _json_type(value)})
    required = [key for key in properties if all(key in arguments for arguments in calls)]
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": "",
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


# Checked in order: bool before int, since bool is a subclass of int.
_JSON_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def _json_type(value: Any) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "null")


def add_openai_message(conversation: Conversation, record: Record) -> None:
    """Feed an OpenAI-style message (a dict, see :func:`~teich.schema.parse_message`) into a conversation."""
    message = parse_message({**record, "tool_calls": None})
    if message.role == "assistant":
        calls = [_openai_call(conversation, call) for call in record.get("tool_calls") or []]
        text = text_of(message.content)
        conversation.assistant(text=text, reasoning=message.reasoning_content, tool_calls=calls, train=message.train)
    elif message.role == "tool":
        conversation.tool_result(message.tool_call_id or "", message.content, message.name, message.is_error)
    else:
        conversation.add(message.role, message.content, name=message.name, train=message.train)


def _openai_call(conversation: Conversation, call: Record) -> ToolCall:
    """An OpenAI tool call (``{"name", "arguments"}`` without the ``function`` wrapper is accepted)."""
    function = call.get("function") or call
    return conversation.call(function["name"], function.get("arguments"), call.get("id"))
