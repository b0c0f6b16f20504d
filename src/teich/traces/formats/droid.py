"""Factory Droid sessions (``~/.factory/sessions/*.jsonl``).

A ``session_start`` header (id, title, cwd) is followed by ``message`` records holding Anthropic
style content blocks, linked by ``parentId``. Messages whose id starts with ``context-`` are
context the CLI injects (tool lists, environment), typed ``developer``; messages marked
``"visibility": "user_only"`` were shown to the user but never sent to the model and are left out.
"""

from __future__ import annotations

from pathlib import Path

from teich.traces.blocks import add_assistant_blocks, add_user_blocks
from teich.traces.branch import active_branch, relink
from teich.traces.checks import ID, NULL, check_blocks, field
from teich.traces.conversation import Conversation
from teich.traces.protocol import Converted, Record, TraceFormat


class Droid(TraceFormat):
    name = "droid"
    priority = 50

    def matches(self, records: list[Record]) -> bool:
        return bool(records) and records[0].get("type") == "session_start"

    def check(self, record: Record) -> None:
        if record.get("type") == "message":
            field(record, "id", *ID)
            field(record, "parentId", *ID)
            check_blocks((field(record, "message", dict, NULL) or {}).get("content"), "message.content")

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        conversation = Conversation()
        header = records[0]
        conversation.metadata.update(
            session_id=header.get("id"),
            cwd=header.get("cwd"),
            title=header.get("sessionTitle") or header.get("title"),
        )
        messages = [r for r in records if r.get("type") == "message"]
        for record, reason in relink(messages, "id", "parentId", absent=False):
            conversation.repair(reason, record)
        branch = active_branch(messages, "id", "parentId")
        conversation.leave_out("abandoned branch", len(messages) - len(branch))
        visible = [r for r in branch if (r.get("message") or {}).get("visibility") != "user_only"]
        conversation.leave_out("shown to the user only, never sent to the model", len(branch) - len(visible))
        for record in visible:
            conversation.record = record
            conversation.metadata.setdefault("timestamp", record.get("timestamp"))
            message = record.get("message") or {}
            if message.get("role") == "assistant":
                add_assistant_blocks(conversation, message.get("content") or [])
            else:
                role = "developer" if str(record.get("id", "")).startswith("context-") else "user"
                add_user_blocks(conversation, message.get("content") or [], role)
        return conversation.finish(self.name)


FORMAT = Droid()
