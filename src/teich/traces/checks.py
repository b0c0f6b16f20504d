"""Checking the fields a format reads before it converts a record, so that a field of the wrong type
is reported on one line naming it (``'message.content' is a number, expected text or a list or null``) and
only its record is skipped. Absent keys read as null.
"""

from __future__ import annotations

import json
from typing import Any

from teich.errors import RecordError

NULL = type(None)
ID = (str, int, NULL)
"""An id or a link to one: text or a number (it is looked up), or null."""
ROLES = ("system", "developer", "user", "assistant", "tool")
_TEXT_PARTS = ("text", "input_text", "output_text")
_KINDS = (
    (bool, "true/false"),
    (int, "a number"),
    (float, "a number"),
    (str, "text"),
    (list, "a list"),
    (dict, "an object"),
    (NULL, "null"),
)


def kind(value: Any) -> str:
    """What a JSON value is, in words."""
    return next((name for type_, name in _KINDS if isinstance(value, type_)), type(value).__name__)


def expect(value: Any, where: str, *types: type) -> Any:
    """``value`` when it is one of ``types``, else :class:`RecordError` naming ``where``."""
    if not isinstance(value, types):
        expected = " or ".join(dict.fromkeys(next(n for t, n in _KINDS if t is type_) for type_ in types))
        raise RecordError(f"{where!r} is {kind(value)}, expected {expected}")
    return value


def number(value: Any) -> int | float:
    """A count or an amount: ``value`` when it is a number, else 0 (for usage that only informs)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def field(record: dict[str, Any], path: str, *types: type) -> Any:
    """The value at a dotted ``path`` of ``record`` (each step an object, or absent), checked to be one of ``types``."""
    value: Any = record
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return expect(value, path, *types)


def one_of(value: Any, where: str, options: tuple[str, ...]) -> None:
    """:class:`RecordError` unless ``value`` is one of ``options``."""
    if not isinstance(value, str) or value not in options:
        shown = repr(value) if isinstance(value, str) else kind(value)
        raise RecordError(f"{where!r} is {shown}, expected one of {', '.join(options)}")


def objects(value: Any, where: str) -> list[dict[str, Any]]:
    """A list of objects (null is an empty one), else :class:`RecordError` naming the first item that is not one."""
    listed = expect(value, where, list, NULL) or []
    for index, item in enumerate(listed):
        expect(item, f"{where}[{index}]", dict)
    return listed


def check_content(content: Any, where: str) -> None:
    """Message content: text, null, or a list of text strings and part objects whose text is text."""
    if isinstance(expect(content, where, str, list, NULL), list):
        for index, part in enumerate(content):
            if not isinstance(expect(part, f"{where}[{index}]", str, dict), str):
                _check_part(part, f"{where}[{index}]")


def _check_part(part: dict[str, Any], where: str) -> None:
    if part.get("type") in _TEXT_PARTS:
        expect(part.get("text"), f"{where}.text", str, NULL)


def check_blocks(content: Any, where: str) -> None:
    """Anthropic content: text, null, or a list of blocks (``text``, ``thinking``, ``tool_use``,
    ``tool_result``, images and the like)."""
    if not isinstance(expect(content, where, str, list, NULL), list):
        return
    for index, block in enumerate(objects(content, where)):
        at = f"{where}[{index}]"
        kind_ = block.get("type")
        if kind_ == "thinking":
            expect(block.get("thinking"), f"{at}.thinking", str, NULL)
            expect(block.get("text"), f"{at}.text", str, NULL)
        elif kind_ == "tool_use":
            check_call_name(block, at)
            expect(block.get("id"), f"{at}.id", str, NULL)
        elif kind_ == "tool_result":
            expect(block.get("tool_use_id"), f"{at}.tool_use_id", str, NULL)
            check_content(block.get("content"), f"{at}.content")
            expect(block.get("is_error"), f"{at}.is_error", bool, NULL)
        else:
            _check_part(block, at)


def check_call_name(call: dict[str, Any], where: str, key: str = "name") -> None:
    """A tool call names its tool with text."""
    name = call.get(key)
    if not isinstance(name, str):
        raise RecordError(f"{where!r} is a tool call without a name ({key!r} is {kind(name)})")


def check_tools(tools: Any, where: str) -> None:
    """Tool schemas: a list of objects, each named by text in its ``function`` object or at its top."""
    for index, tool in enumerate(objects(tools, where)):
        at = f"{where}[{index}]"
        function = expect(tool.get("function"), f"{at}.function", dict, NULL) or tool
        expect(function.get("name"), f"{at}.name", str, NULL)


def json_value(value: Any, where: str) -> Any:
    """``value``, parsed when it is JSON text (blank text is null); :class:`RecordError` when that text is not JSON."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise RecordError(f"{where!r} is not valid JSON ({error.msg})") from None
    except RecursionError:
        raise RecordError(f"{where!r} is JSON nested too deeply") from None


def check_message(message: dict[str, Any], where: str) -> None:
    """An OpenAI-style message (or its storage form, see :func:`teich.schema.parse_message`)."""
    one_of(message.get("role"), f"{where}.role", ROLES)
    check_content(message.get("content"), f"{where}.content")
    if message.get("content_parts") is not None:
        parts = json_value(message["content_parts"], f"{where}.content_parts")
        check_content(expect(parts, f"{where}.content_parts", list), f"{where}.content_parts")
    for key in ("reasoning_content", "reasoning", "thinking", "tool_call_id", "name"):
        expect(message.get(key), f"{where}.{key}", str, NULL)
    for key in ("is_error", "train"):
        expect(message.get(key), f"{where}.{key}", bool, NULL)
    for index, call in enumerate(objects(message.get("tool_calls"), f"{where}.tool_calls")):
        at = f"{where}.tool_calls[{index}]"
        check_call_name(expect(call.get("function"), f"{at}.function", dict, NULL) or call, at)
        expect(call.get("id"), f"{at}.id", str, NULL)


def check_messages(messages: Any, where: str = "messages") -> None:
    """A list of OpenAI-style messages."""
    for index, message in enumerate(objects(expect(messages, where, list), where)):
        check_message(message, f"{where}[{index}]")
