"""Typed training rows and their Arrow-safe storage form.

A row is OpenAI-style: ``messages`` with roles system/developer/user/assistant/tool, assistant
turns carrying ``reasoning_content`` and ``tool_calls`` whose arguments are JSON objects.

Arrow merges the structs of different rows, so free-form values cannot be stored as structs
without gaining keys they never had. The storage form (:meth:`TrainingExample.to_record`) keeps
the fixed message structure as Arrow structs and stores the free-form parts as JSON text:
tool-call ``arguments`` (as the OpenAI API does), ``tools``, ``metadata`` and multimodal
``content`` (in ``content_parts``). :meth:`TrainingExample.from_record` reads that form back and
also accepts plain OpenAI-style rows.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from datasets import Features, List, Value
from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "developer", "user", "assistant", "tool"]
Content = str | list[dict[str, Any]] | None


class FunctionCall(BaseModel):
    """The function a tool call invokes: its ``name`` and its ``arguments`` as a JSON object."""

    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCall(BaseModel):
    """One tool call of an assistant message, OpenAI-style; its result is a ``tool`` message with this ``id``."""

    model_config = ConfigDict(extra="forbid")
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    """One message of a conversation: a ``role``, ``content`` (text or typed parts), and for assistant
    turns ``reasoning_content`` and ``tool_calls``; tool results carry the ``tool_call_id`` they answer."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    content: Content = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool | None = None  # a tool result the agent's harness marked as a failed call
    train: bool | None = None  # train this message (True) or never (False) whatever the policy (Axolotl's flag)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict without unset fields, the form chat templates expect (``content`` is always there)."""
        message = self.model_dump(exclude_none=True)
        message.setdefault("content", "")
        return message


class TrainingExample(BaseModel):
    """One conversation ready for supervised fine-tuning."""

    model_config = ConfigDict(extra="forbid")
    prompt: str
    messages: list[Message]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    system: str | None = None
    follow_up_prompts: list[str] = Field(default_factory=list)
    category: str | None = None

    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: list[Message]) -> list[Message]:
        if not messages:
            raise ValueError("a training row needs at least one message")
        return messages

    def to_openai(self) -> dict[str, Any]:
        """Standalone JSON row: ``tokenizer.apply_chat_template(row["messages"], tools=row["tools"])``."""
        row: dict[str, Any] = {
            "prompt": self.prompt,
            "messages": [m.to_dict() for m in self.messages],
            "tools": self.tools,
            "metadata": self.metadata,
        }
        row.update(self.model_dump(include={"system", "follow_up_prompts", "category"}, exclude_defaults=True))
        return row

    def to_record(self) -> dict[str, Any]:
        """Arrow-safe storage form matching :data:`FEATURES`."""
        return {
            "prompt": self.prompt,
            "messages": [_message_record(m) for m in self.messages],
            "tools": _dumps(self.tools),
            "metadata": _dumps(self.metadata),
            "system": self.system,
            "follow_up_prompts": self.follow_up_prompts,
            "category": self.category,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrainingExample:
        """Read a row back from its storage form (plain OpenAI-style rows are accepted too)."""
        messages = [parse_message(m) for m in record["messages"]]
        prompt = record.get("prompt")
        return cls(
            prompt=first_user_text(messages) if prompt is None else prompt,
            messages=messages,
            tools=json_or_value(record.get("tools")) or [],
            metadata=json_or_value(record.get("metadata")) or {},
            system=record.get("system"),
            follow_up_prompts=list(record.get("follow_up_prompts") or []),
            category=record.get("category"),
        )


def _features() -> Features:
    """The Arrow schema of the storage form (:meth:`TrainingExample.to_record`)."""
    tool_call = {
        "id": Value("string"),
        "type": Value("string"),
        "function": {"name": Value("string"), "arguments": Value("string")},
    }
    message = {
        "role": Value("string"),
        "content": Value("string"),
        "content_parts": Value("string"),
        "reasoning_content": Value("string"),
        "tool_calls": List(tool_call),
        "tool_call_id": Value("string"),
        "name": Value("string"),
        "is_error": Value("bool"),
        "train": Value("bool"),
    }
    return Features(
        {
            "prompt": Value("string"),
            "messages": List(message),
            "tools": Value("string"),
            "metadata": Value("string"),
            "system": Value("string"),
            "follow_up_prompts": List(Value("string")),
            "category": Value("string"),
        }
    )


FEATURES = _features()


def text_of(content: Content) -> str:
    """The text of a message's content, image parts left out."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p.get("type") == "text")


def first_user_text(messages: list[Message]) -> str:
    return next((text_of(m.content) for m in messages if m.role == "user"), "")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def json_or_value(value: Any, *, lenient: bool = False) -> Any:
    """``value`` decoded when it is JSON text, else as it is (columns that hold either); text that is not
    JSON raises, or with ``lenient`` is kept as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        if lenient:
            return value
        raise


def _message_record(message: Message) -> dict[str, Any]:
    multimodal = isinstance(message.content, list)
    calls = message.tool_calls
    return {
        "role": message.role,
        "content": text_of(message.content) if multimodal else message.content,
        "content_parts": _dumps(message.content) if multimodal else None,
        "reasoning_content": message.reasoning_content,
        "tool_calls": None
        if calls is None
        else [
            {
                "id": c.id,
                "type": c.type,
                "function": {"name": c.function.name, "arguments": _dumps(c.function.arguments)},
            }
            for c in calls
        ],
        "tool_call_id": message.tool_call_id,
        "name": message.name,
        "is_error": message.is_error,
        "train": message.train,
    }


def parse_message(record: dict[str, Any]) -> Message:
    """An OpenAI-style message dict (or its storage form) as a :class:`Message`.

    Accepts ``reasoning`` / ``thinking`` for ``reasoning_content``, tool-call arguments as JSON
    text or objects, and multimodal content stored in ``content_parts``.
    """
    record = {k: v for k, v in record.items() if v is not None}
    parts = record.pop("content_parts", None)
    if parts is not None:
        record["content"] = json_or_value(parts)
    for alias in ("reasoning", "thinking"):
        if alias in record:
            record.setdefault("reasoning_content", record.pop(alias))
    calls = record.get("tool_calls")
    if calls is not None:
        record["tool_calls"] = [parse_tool_call(c) for c in calls]
    known = Message.model_fields.keys()
    return Message(**{k: v for k, v in record.items() if k in known})


def parse_tool_call(call: dict[str, Any]) -> ToolCall:
    """An OpenAI tool call; ``{"name", "arguments"}`` without the ``function`` wrapper is accepted."""
    function = call.get("function") or call
    return ToolCall(
        id=call.get("id") or "",
        function=FunctionCall(name=function["name"], arguments=parse_arguments(function.get("arguments"))),
    )


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as an object: JSON text is parsed, other values become ``{"input": value}``."""
    return read_arguments(arguments)[0]


def read_arguments(arguments: Any) -> tuple[dict[str, Any], bool]:
    """Tool-call arguments as an object (see :func:`parse_arguments`), and whether they were one: an
    object, its JSON text, or nothing."""
    if isinstance(arguments, str) and not arguments.strip():
        return {}, True
    arguments = json_or_value(arguments, lenient=True)
    if arguments is None:
        return {}, True
    return (arguments, True) if isinstance(arguments, dict) else ({"input": arguments}, False)


def drop_nulls(value: Any) -> Any:
    """Recursively remove ``None`` values from mappings (Arrow's fill for absent struct keys)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value
