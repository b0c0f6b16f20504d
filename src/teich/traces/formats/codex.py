"""OpenAI Codex rollouts (``~/.codex/sessions/**/rollout-*.jsonl``), CLI and Desktop.

Lines are ``{"timestamp", "type", "payload"}``: ``session_meta`` (id, cwd, cli_version,
base_instructions), ``turn_context`` (model, effort), ``response_item`` (what the model saw and
said: messages, reasoning, tool calls and their outputs, web searches), ``compacted`` (a summary
that replaced the history) and ``event_msg`` (UI events and token counts). Rollouts from mid-2025
have no ``payload`` wrapper: a first line ``{"id", "timestamp", "instructions"}``, then the
response items themselves and ``{"record_type": "state"}`` lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from teich.schema import Message
from teich.traces.checks import NULL, ROLES, check_content, check_tools, expect, field, objects, one_of
from teich.traces.conversation import Conversation, tool_call
from teich.traces.protocol import Converted, Record, TraceFormat

# What Codex sends the model as the output of a call that never finished (a turn interrupted).
ABORTED_OUTPUT = "aborted"
_CALLS = ("function_call", "custom_tool_call", "local_shell_call")
_OUTPUTS = ("function_call_output", "custom_tool_call_output", "local_shell_call_output")
_ITEMS = ("message", "reasoning", "web_search_call", *_CALLS, *_OUTPUTS)


class Codex(TraceFormat):
    name = "codex"
    priority = 10

    def matches(self, records: list[Record]) -> bool:
        return any(
            r.get("type") in ("session_meta", "response_item", "turn_context") and "payload" in r for r in records
        ) or _is_legacy(records)

    def check(self, record: Record) -> None:
        if "payload" not in record:  # a mid-2025 rollout: its header, then bare items
            check_content(record.get("instructions"), "instructions")
            _check_item(record, "")
            return
        payload = field(record, "payload", dict, NULL) or {}
        kind = record.get("type")
        if kind == "session_meta":
            instructions = payload.get("base_instructions")
            text = instructions.get("text") if isinstance(instructions, dict) else instructions
            check_content(text, "payload.base_instructions")
            check_content(payload.get("instructions"), "payload.instructions")
            check_tools(payload.get("dynamic_tools"), "payload.dynamic_tools")
        elif kind == "response_item":
            _check_item(payload, "payload.")
        elif kind == "compacted":
            expect(payload.get("message"), "payload.message", str, NULL)
            replacement = payload.get("replacement_history")
            for index, item in enumerate(objects(replacement, "payload.replacement_history") if replacement else ()):
                _check_item(item, f"payload.replacement_history[{index}].")
        elif kind == "event_msg" and payload.get("type") == "token_count":
            expect(payload.get("info"), "payload.info", dict, NULL)

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        if _is_legacy(records):
            records = _from_legacy(records)
        session = _Session(Conversation())
        for record in records:
            session.conversation.record = record
            session.record(record)
        return session.finish(self.name)


def _check_item(item: Record, prefix: str) -> None:
    """The fields of a response item (``prefix`` says where it sits in its record) that conversion reads."""
    kind = item.get("type")
    if kind == "message" and item.get("role") == "assistant":
        _check_parts(item.get("content"), f"{prefix}content")
    elif kind == "message":
        one_of(item.get("role", "user"), f"{prefix}role", ROLES)
        check_content(item.get("content"), f"{prefix}content")
    elif kind == "reasoning":
        _check_parts(item.get("content") or [], f"{prefix}content")
        _check_parts(item.get("summary") or [], f"{prefix}summary")
    elif kind in _CALLS:
        expect(item.get("name", ""), f"{prefix}name", str)
        expect(item.get("call_id"), f"{prefix}call_id", str, NULL)
    elif kind in _OUTPUTS:
        expect(item.get("call_id"), f"{prefix}call_id", str, NULL)
        output = item.get("output")
        check_content(output.get("content") if isinstance(output, dict) else output, f"{prefix}output")
    elif kind == "web_search_call":
        expect(item.get("id"), f"{prefix}id", str, NULL)


def _check_parts(content: Any, where: str) -> None:
    """Text, or a list of parts whose ``text`` is text."""
    for index, part in enumerate(objects(content, where) if not isinstance(content, str) else ()):
        expect(part.get("text", ""), f"{where}[{index}].text", str)


def _is_legacy(records: list[Record]) -> bool:
    """A mid-2025 rollout: a header with ``instructions`` and no wrapper, then bare response items."""
    header = records[0] if records else {}
    return (
        "id" in header
        and "timestamp" in header
        and "type" not in header
        and any(r.get("type") in _ITEMS for r in records[1:])
    )


def _from_legacy(records: list[Record]) -> list[Record]:
    header, *items = records
    meta = {**header, "base_instructions": header.get("instructions")}
    wrapped = [{"timestamp": header.get("timestamp"), "type": "session_meta", "payload": meta}]
    wrapped += [{"type": "response_item", "payload": item} for item in items if item.get("type") in _ITEMS]
    return wrapped


class _Session:
    """The conversation of one rollout, with the calls still waiting for an output."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.meta = conversation.metadata
        self.pending: list[str] = []
        self.last_answer: str | None = None  # the text of the item just read, when it was an answer
        self.initial_context: list[Message] = []

    def record(self, record: Record) -> None:
        payload = record.get("payload") or {}
        kind = record.get("type")
        self.meta.setdefault("timestamp", record.get("timestamp"))
        if kind == "session_meta":
            self._session_meta(payload)
        elif kind == "turn_context":
            self.conversation.use_model(payload.get("model"))
            self.meta["reasoning_effort"] = payload.get("effort", self.meta.get("reasoning_effort"))
        elif kind == "response_item":
            self._item(payload)
        elif kind == "compacted":
            self._compacted(payload)
        elif kind == "event_msg" and payload.get("type") == "token_count" and payload.get("info"):
            self.meta["usage"] = payload["info"].get("total_token_usage")

    def finish(self, name: str) -> Converted:
        self._abort_pending()
        return self.conversation.finish(name)

    def _session_meta(self, payload: Record) -> None:
        if self.meta.get("session_id"):  # a resumed or forked session repeats its header
            return
        self.meta.update(
            session_id=payload.get("id"),
            cwd=payload.get("cwd"),
            cli_version=payload.get("cli_version"),
            provider=payload.get("model_provider"),
            originator=payload.get("originator"),
        )
        instructions = payload.get("base_instructions")
        text = instructions.get("text") if isinstance(instructions, dict) else instructions
        self.conversation.add("system", text or payload.get("instructions"))
        if payload.get("dynamic_tools"):
            self.conversation.tools = list(payload["dynamic_tools"])

    def _item(self, item: Record) -> None:
        kind = item.get("type")
        conversation = self.conversation
        self.last_answer = _text(item.get("content")) if kind == "message" and item.get("role") == "assistant" else None
        if kind in _OUTPUTS:
            call_id = item.get("call_id", "")
            if call_id in self.pending:
                self.pending.remove(call_id)
            output, failed = _output(item.get("output"))
            conversation.tool_result(call_id, output, is_error=failed)
            return
        if kind == "message" and item.get("role") != "assistant":
            self._abort_pending()
            count = len(conversation.messages)
            conversation.add(item.get("role", "user"), item.get("content"))
            if not any(m.role == "user" for m in conversation.messages[:count]):  # still the harness's context
                self.initial_context += [m for m in conversation.messages[count:] if m.role != "user"]
        elif kind == "message":
            conversation.assistant(text=_text(item.get("content")))
        elif kind == "reasoning":
            conversation.assistant(reasoning=_reasoning(item))
        elif kind in _CALLS:
            self._call(item)
        elif kind == "web_search_call":
            # A search the model ran on the provider's side: the call is what the model saw again.
            call = tool_call("web_search", item.get("action") or {}, item.get("id"))
            conversation.assistant(tool_calls=[call])
        else:
            conversation.leave_out(f"codex item {kind!r}")

    def _call(self, item: Record) -> None:
        kind = item.get("type")
        if kind == "local_shell_call":
            name, arguments = "local_shell", item.get("action")
        else:
            name = item.get("name", "")
            arguments = item.get("arguments") if kind == "function_call" else item.get("input")
        if kind == "custom_tool_call":  # free-form input (a patch, a script), kept as {"input": text}
            call = tool_call(name, arguments, item.get("call_id"))
        else:
            call = self.conversation.call(name, arguments, item.get("call_id"))
        self.conversation.assistant(tool_calls=[call])
        self.pending.append(call.id)

    def _abort_pending(self) -> None:
        """Calls left without an output get the output Codex itself sends the model for them."""
        for call_id in self.pending:
            self.conversation.tool_result(call_id, ABORTED_OUTPUT)
            self.conversation.leave_out("interrupted tool call (given Codex's 'aborted' output)")
        self.pending = []

    def _compacted(self, payload: Record) -> None:
        """A compaction: the next context is the history Codex replaced it with, when recorded;
        otherwise the system prompt, the initial context and the summary. The answer written just
        before the record is the summary, generated for the compaction request, not the user."""
        answer = self.last_answer or ""
        summary = answer.strip()
        if summary and (payload.get("message") or "").endswith("\n" + summary):  # the summary closes the message
            self.conversation.retract_text(answer)
            self.conversation.leave_out("compaction summary (answered the compaction request)")
        self._abort_pending()
        system = [m for m in self.conversation.messages[:1] if m.role == "system"]
        self.conversation.restart(Codex.name, system)
        replacement = payload.get("replacement_history")
        if isinstance(replacement, list):
            for item in replacement:
                self._item(item)
            self.conversation.carried_until_here()
            return
        for message in self.initial_context:
            self.conversation.messages.append(message)
        self.conversation.add("user", payload.get("message") or "")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [])


def _reasoning(item: Record) -> str:
    """Readable reasoning: the raw reasoning text when recorded, else the summaries."""
    content = item.get("content") or []
    raw = [part.get("text", "") for part in content if part.get("type") in ("reasoning_text", "text")]
    summary = [part.get("text", "") for part in item.get("summary") or []]
    return "\n\n".join(raw or summary)


def _output(output: Any) -> tuple[Any, bool]:
    """A tool output (text, a list of content items, or ``{"content", "success"}``) and whether it failed."""
    if isinstance(output, dict):
        content = output.get("content") if "content" in output else str(output)
        return content, output.get("success") is False
    return output, False


FORMAT = Codex()
