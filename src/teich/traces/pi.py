"""Pi coding agent sessions (format v3), and OpenClaw sessions, which share the layout.

A header ``{"type": "session", "version": 3, "id", "cwd"}`` is followed by entries linked by
``parentId`` into a tree; the conversation is the branch ending at the newest entry. ``message``
entries carry ``user`` / ``assistant`` / ``toolResult`` messages whose content parts are ``text``,
``thinking``, ``toolCall`` and ``image``.
"""

from __future__ import annotations

from typing import Any

from teich.schema import TrainingExample
from teich.traces.branch import active_branch
from teich.traces.conversation import Conversation, tool_call

NAME = "pi"
PER_ROW = False


def matches(records: list[dict[str, Any]]) -> bool:
    header = records[0] if records else {}
    return header.get("type") == "session" and "version" in header and not is_openclaw(records)


def is_openclaw(records: list[dict[str, Any]]) -> bool:
    """OpenClaw writes Pi sessions with its own ``custom`` entries (``openclaw.*``, ``model-snapshot``)."""
    return any(
        r.get("type") == "custom" and str(r.get("customType", "")).startswith(("openclaw", "model-snapshot"))
        for r in records
    )


def convert(records: list[dict[str, Any]], name: str = NAME) -> TrainingExample | None:
    conversation = Conversation()
    meta = conversation.metadata
    header = records[0] if records and records[0].get("type") == "session" else {}
    meta.update(session_id=header.get("id"), cwd=header.get("cwd"), format_version=header.get("version"))
    meta["timestamp"] = header.get("timestamp")
    for entry in active_branch(records[1:] if header else records, "id", "parentId"):
        kind = entry.get("type")
        if kind == "model_change":
            meta.update(provider=entry.get("provider"), model=entry.get("modelId"))
        elif kind == "thinking_level_change":
            meta["thinking_level"] = entry.get("thinkingLevel")
        elif kind == "compaction" and entry.get("summary"):
            conversation.add("developer", entry["summary"])
        elif kind == "message":
            _message(conversation, entry.get("message") or {})
    return conversation.example(name)


def _message(conversation: Conversation, message: dict[str, Any]) -> None:
    role = message.get("role")
    content = message.get("content")
    if role == "assistant":
        _account(conversation.metadata, message)
        for part in content if isinstance(content, list) else [{"type": "text", "text": content}]:
            kind = part.get("type")
            if kind == "thinking":
                conversation.assistant(reasoning=part.get("thinking"))
            elif kind == "text":
                conversation.assistant(text=part.get("text"))
            elif kind == "toolCall":
                conversation.assistant(tool_calls=[tool_call(part["name"], part.get("arguments"), part.get("id"))])
    elif role == "toolResult":
        conversation.tool_result(message.get("toolCallId", ""), content, message.get("toolName"))
    elif role == "user":
        conversation.add("user", content)
    else:
        skipped = conversation.metadata.setdefault("skipped_items", {})
        skipped[role] = skipped.get(role, 0) + 1


def _account(meta: dict[str, Any], message: dict[str, Any]) -> None:
    """Model, provider and summed usage / cost from an assistant message."""
    meta["model"] = message.get("model") or meta.get("model")
    meta["provider"] = message.get("provider") or meta.get("provider")
    usage = message.get("usage") or {}
    totals = meta.setdefault("usage", {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0})
    for key in totals:
        totals[key] += usage.get(key) or 0
    cost = (usage.get("cost") or {}).get("total") or 0
    meta["cost"] = round(meta.get("cost", 0) + cost, 6)
