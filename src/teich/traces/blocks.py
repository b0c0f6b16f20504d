"""Anthropic-style content blocks (``text``, ``thinking``, ``tool_use``, ``tool_result``, ``image``),
shared by Claude Code, Factory Droid and Cursor transcripts."""

from __future__ import annotations

from typing import Any

from teich.traces.conversation import Conversation


def add_assistant_blocks(conversation: Conversation, content: str | list[dict[str, Any]]) -> None:
    """One assistant message's blocks, in their recorded order."""
    if isinstance(content, str):
        conversation.assistant(text=content)
        return
    for block in content:
        kind = block.get("type")
        if kind == "thinking":
            conversation.assistant(reasoning=block.get("thinking") or block.get("text"))
        elif kind == "text":
            conversation.assistant(text=block.get("text"))
        elif kind == "tool_use":
            conversation.assistant(tool_calls=[conversation.call(block["name"], block.get("input"), block.get("id"))])


def add_user_blocks(conversation: Conversation, content: str | list[dict[str, Any]], role: str = "user") -> None:
    """One user message's blocks: tool results become tool messages, the rest a ``role`` message."""
    if isinstance(content, str):
        conversation.add(role, content)
        return
    pending: list[dict[str, Any]] = []
    for block in content:
        if block.get("type") == "tool_result":
            conversation.add(role, pending)
            pending = []
            conversation.tool_result(
                block.get("tool_use_id", ""), block.get("content") or "", is_error=block.get("is_error")
            )
        else:
            pending.append(block)
    conversation.add(role, pending)
