"""Pi coding agent sessions (formats v1 to v3), and OpenClaw sessions, which share the layout.

A header ``{"type": "session", "version", "id", "cwd"}`` is followed by entries. From v2 on they are
linked by ``parentId`` into a tree and the conversation is the branch ending at the newest entry;
v1 entries have no ids and form one line. ``message`` entries carry ``user`` / ``assistant`` /
``toolResult`` messages (content parts ``text``, ``thinking``, ``toolCall``, ``image``), and also
what Pi turns into user messages for the model: ``bashExecution`` (a ``!`` command and its output),
``custom`` (``hookMessage`` in v2). A ``compaction`` entry ends a context: the next one starts with
its summary, then the entries kept from ``firstKeptEntryId`` on. Texts follow Pi's own
``convertToLlm``, so each row holds what the model was sent.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

from teich.traces.branch import active_branch, relink
from teich.traces.checks import ID, NULL, check_call_name, expect, field, number, objects
from teich.traces.conversation import Conversation
from teich.traces.protocol import Converted, Record, TraceFormat

COMPACTION_PREFIX = (
    "The conversation history before this point was compacted into the following summary:\n\n<summary>\n"
)
COMPACTION_SUFFIX = "\n</summary>"
BRANCH_PREFIX = "The following is a summary of a branch that this conversation came back from:\n\n<summary>\n"
BRANCH_SUFFIX = "</summary>"
# Pi's read tool says this when the model cannot see images; the image is then replaced before sending.
NON_VISION_NOTE = "The image will be omitted from this request."
IMAGE_PLACEHOLDERS = MappingProxyType(
    {
        "user": "(image omitted: model does not support images)",
        "toolResult": "(tool image omitted: model does not support images)",
    }
)


_USAGE_KEYS = ("input", "output", "cacheRead", "cacheWrite")


class Pi(TraceFormat):
    name = "pi"
    priority = 30

    def matches(self, records: list[Record]) -> bool:
        header = records[0] if records else {}
        return header.get("type") == "session" and "cwd" in header and not is_openclaw(records)

    def check(self, record: Record) -> None:
        check_entry(record)

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        return convert_session(records, self.name)


def check_entry(entry: Record) -> None:
    """The fields of a Pi-layout entry that conversion reads."""
    field(entry, "id", *ID)
    field(entry, "parentId", *ID)
    kind = entry.get("type")
    if kind == "message":
        _check_message(field(entry, "message", dict, NULL) or {})
    elif kind == "custom_message":
        _check_parts(entry.get("content"), "content")
    elif kind in ("compaction", "branch_summary"):
        field(entry, "summary", str, NULL)


def _check_message(message: Record) -> None:
    _check_parts(message.get("content"), "message.content")
    if message.get("role") == "toolResult":
        field(message, "toolCallId", str, NULL)
        field(message, "toolName", str, NULL)
        field(message, "isError", bool, NULL)


def _check_parts(content: Any, where: str) -> None:
    """Content as :func:`_parts` reads it: text, or a list of parts (``text``, ``thinking``, ``toolCall``, images)."""
    if not isinstance(expect(content, where, str, list, NULL), list):
        return
    for index, part in enumerate(objects(content, where)):
        at = f"{where}[{index}]"
        kind = part.get("type")
        if kind in ("text", "thinking"):
            expect(part.get(kind), f"{at}.{kind}", str, NULL)
        elif kind == "toolCall":
            check_call_name(part, at)
            expect(part.get("id"), f"{at}.id", str, NULL)


def is_openclaw(records: list[Record]) -> bool:
    """OpenClaw writes Pi sessions with its own ``custom`` entries (``openclaw.*``, ``model-snapshot``)."""
    return any(
        r.get("type") == "custom" and str(r.get("customType", "")).startswith(("openclaw", "model-snapshot"))
        for r in records
    )


def convert_session(records: list[Record], name: str) -> Converted:
    """The rows of a Pi-layout session: one per context (compactions start new ones)."""
    conversation = Conversation()
    meta = conversation.metadata
    header = records[0] if records and records[0].get("type") == "session" else {}
    meta.update(session_id=header.get("id"), cwd=header.get("cwd"), format_version=header.get("version", 1))
    meta["timestamp"] = header.get("timestamp")
    entries = [r for r in records if r is not header]
    if not any("id" in e for e in entries):  # v1: one line of entries, ids are their places in the file
        entries = _v1_linked(records, header)
    for entry, reason in relink(entries, "id", "parentId"):
        conversation.repair(reason, entry)
    path = active_branch(entries, "id", "parentId")
    conversation.leave_out("abandoned branch", len([e for e in entries if e.get("id") is not None]) - len(path))
    for index, entry in enumerate(path):
        conversation.record = entry
        kind = entry.get("type")
        if kind == "model_change":
            conversation.use_model(entry.get("modelId"), entry.get("provider"))
        elif kind == "thinking_level_change":
            meta["thinking_level"] = entry.get("thinkingLevel")
        elif kind == "compaction":
            conversation.restart(name)
            conversation.add("developer", COMPACTION_PREFIX + (entry.get("summary") or "") + COMPACTION_SUFFIX)
            for kept in _kept_entries(path[:index], entry):
                _entry(conversation, kept)
            conversation.carried_until_here()
        else:
            _entry(conversation, entry)
    return conversation.finish(name)


def _v1_linked(records: list[Record], header: Record) -> list[Record]:
    """v1 entries chained in file order, each with its place in the file as its id (which is what
    v1's ``firstKeptEntryIndex`` counts, header included)."""
    linked: list[Record] = []
    for index, record in enumerate(records):
        if record is not header:
            entry = {**record, "id": index, "parentId": linked[-1]["id"] if linked else None}
            if "firstKeptEntryIndex" in entry:
                entry["firstKeptEntryId"] = entry.pop("firstKeptEntryIndex")
            linked.append(entry)
    return linked


def _kept_entries(before: list[Record], compaction: Record) -> list[Record]:
    """The entries a compaction kept: from ``firstKeptEntryId`` up to the compaction."""
    first = compaction.get("firstKeptEntryId")
    start = next((i for i, e in enumerate(before) if e.get("id") == first), len(before))
    return before[start:]


def _entry(conversation: Conversation, entry: Record) -> None:
    kind = entry.get("type")
    if kind == "message":
        _message(conversation, entry.get("message") or {})
    elif kind == "custom_message":
        conversation.add("user", _parts(entry.get("content")))
    elif kind == "branch_summary" and entry.get("summary"):
        conversation.add("developer", BRANCH_PREFIX + entry["summary"] + BRANCH_SUFFIX)
    else:  # labels, session info, extensions' own entries: Pi does not send them to the model
        conversation.leave_out(f"pi {kind} entry (not sent to the model)")


def _message(conversation: Conversation, message: Record) -> None:
    role = message.get("role")
    content = message.get("content")
    if role == "assistant":
        conversation.use_model(message.get("model"), message.get("provider"))
        _account(conversation.metadata, message)
        for part in _parts(content):
            kind = part.get("type")
            if kind == "thinking":
                conversation.assistant(reasoning=part.get("thinking"))
            elif kind == "text":
                conversation.assistant(text=part.get("text"))
            elif kind == "toolCall":
                call = conversation.call(part["name"], part.get("arguments"), part.get("id"))
                conversation.assistant(tool_calls=[call])
    elif role == "toolResult":
        content = _as_sent(_parts(content), role)
        conversation.tool_result(
            message.get("toolCallId", ""), content, message.get("toolName"), is_error=message.get("isError")
        )
    elif role in ("user", "custom", "hookMessage"):
        conversation.add("user", _as_sent(_parts(content), "user"))
    elif role == "bashExecution":
        if message.get("excludeFromContext"):
            conversation.leave_out("! command kept out of the context (!!)")
        else:
            conversation.add("user", bash_execution_text(message))
    else:
        conversation.leave_out(f"pi message role {role!r}")


def bash_execution_text(message: Record) -> str:
    """The user message Pi sends the model for a ``!`` shell command and its output."""
    text = f"Ran `{message.get('command', '')}`\n"
    output = message.get("output")
    text += f"```\n{output}\n```" if output else "(no output)"
    exit_code = message.get("exitCode")
    if message.get("cancelled"):
        text += "\n\n(command cancelled)"
    elif exit_code not in (None, 0):
        text += f"\n\nCommand exited with code {exit_code}"
    if message.get("truncated") and message.get("fullOutputPath"):
        text += f"\n\n[Output truncated. Full output: {message['fullOutputPath']}]"
    return text


def _parts(content: Any) -> list[Record]:
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []


def _as_sent(parts: list[Record], role: str) -> list[Record]:
    """Parts as the model got them: where Pi noted that the model cannot see images, each run of
    images became one placeholder text."""
    if not any(p.get("type") == "text" and NON_VISION_NOTE in (p.get("text") or "") for p in parts):
        return parts
    sent: list[Record] = []
    for part in parts:
        if part.get("type") == "image":
            part = {"type": "text", "text": IMAGE_PLACEHOLDERS[role]}
            if sent and sent[-1] == part:
                continue
        sent.append(part)
    return sent


def _account(meta: dict[str, Any], message: Record) -> None:
    """Summed usage and cost from an assistant message (counts that are not numbers count nothing)."""
    usage = _object(message.get("usage"))
    totals = meta.setdefault("usage", dict.fromkeys(_USAGE_KEYS, 0))
    for key in totals:
        totals[key] += number(usage.get(key))
    meta["cost"] = round(meta.get("cost", 0) + number(_object(usage.get("cost")).get("total")), 6)


def _object(value: Any) -> Record:
    return value if isinstance(value, dict) else {}


FORMAT = Pi()
