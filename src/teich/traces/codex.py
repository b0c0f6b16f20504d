"""OpenAI Codex CLI rollouts (``~/.codex/sessions/**/rollout-*.jsonl``).

Lines are ``{"timestamp", "type", "payload"}``: ``session_meta`` (id, cwd, cli_version,
base_instructions), ``turn_context`` (model, effort), ``response_item`` (what the model saw and
said: messages, reasoning, function/custom tool calls and their outputs) and ``event_msg`` (UI
events, duplicates of the response items, and token counts).
"""

from __future__ import annotations

from typing import Any

from teich.schema import TrainingExample
from teich.traces.conversation import Conversation, tool_call

NAME = "codex"
PER_ROW = False


def matches(records: list[dict[str, Any]]) -> bool:
    return any(r.get("type") in ("session_meta", "response_item", "turn_context") and "payload" in r for r in records)


def convert(records: list[dict[str, Any]]) -> TrainingExample | None:
    conversation = Conversation()
    meta = conversation.metadata
    for record in records:
        payload = record.get("payload") or {}
        kind = record.get("type")
        meta.setdefault("timestamp", record.get("timestamp"))
        if kind == "session_meta":
            _session_meta(conversation, payload)
        elif kind == "turn_context":
            meta["model"] = payload.get("model", meta.get("model"))
            meta["reasoning_effort"] = payload.get("effort", meta.get("reasoning_effort"))
        elif kind == "response_item":
            _response_item(conversation, payload)
        elif kind == "event_msg" and payload.get("type") == "token_count" and payload.get("info"):
            meta["usage"] = payload["info"].get("total_token_usage")
    return conversation.example(NAME)


def _session_meta(conversation: Conversation, payload: dict[str, Any]) -> None:
    conversation.metadata.update(
        session_id=payload.get("id"),
        cwd=payload.get("cwd"),
        cli_version=payload.get("cli_version"),
        provider=payload.get("model_provider"),
        originator=payload.get("originator"),
    )
    instructions = payload.get("base_instructions")
    text = instructions.get("text") if isinstance(instructions, dict) else instructions or payload.get("instructions")
    conversation.add("system", text)
    if payload.get("dynamic_tools"):
        conversation.tools = list(payload["dynamic_tools"])


def _response_item(conversation: Conversation, item: dict[str, Any]) -> None:
    kind = item.get("type")
    if kind == "message":
        if item.get("role") == "assistant":
            conversation.assistant(text=_text(item.get("content")))
        else:
            conversation.add(item.get("role", "user"), item.get("content"))
    elif kind == "reasoning":
        conversation.assistant(reasoning=_reasoning(item))
    elif kind in ("function_call", "custom_tool_call"):
        arguments = item.get("arguments") if kind == "function_call" else item.get("input")
        conversation.assistant(tool_calls=[tool_call(item.get("name", ""), arguments, item.get("call_id"))])
    elif kind == "local_shell_call":
        conversation.assistant(tool_calls=[tool_call("local_shell", item.get("action"), item.get("call_id"))])
    elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
        conversation.tool_result(item.get("call_id", ""), _output(item.get("output")))
    else:
        skipped = conversation.metadata.setdefault("skipped_items", {})
        skipped[kind] = skipped.get(kind, 0) + 1


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [])


def _reasoning(item: dict[str, Any]) -> str:
    """Readable reasoning: the raw reasoning text when recorded, else the summaries."""
    content = item.get("content") or []
    raw = [part.get("text", "") for part in content if part.get("type") in ("reasoning_text", "text")]
    summary = [part.get("text", "") for part in item.get("summary") or []]
    return "\n\n".join(raw or summary)


def _output(output: Any) -> Any:
    """A tool output: text, a list of content items, or ``{"content": ..., "success": ...}``."""
    if isinstance(output, dict):
        return output.get("content") if "content" in output else str(output)
    return output
