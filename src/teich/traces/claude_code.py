"""Claude Code transcripts (``~/.claude/projects/<project>/<session>.jsonl``).

Each line is a record; ``user`` and ``assistant`` records carry an Anthropic ``message`` and are
linked by ``parentUuid``. One API response is split over several records (one per content block)
sharing ``message.id``; they merge back into one turn. Sidechain records (sub-agents) are left out.
"""

from __future__ import annotations

from typing import Any

from teich.schema import TrainingExample
from teich.traces.blocks import add_assistant_blocks, add_user_blocks
from teich.traces.branch import active_branch
from teich.traces.conversation import Conversation

NAME = "claude_code"
PER_ROW = False


def matches(records: list[dict[str, Any]]) -> bool:
    return any(r.get("type") in ("user", "assistant") and "sessionId" in r and "uuid" in r for r in records)


def convert(records: list[dict[str, Any]]) -> TrainingExample | None:
    conversation = Conversation()
    meta = conversation.metadata
    main = [r for r in records if not r.get("isSidechain")]
    if len(main) < len(records):
        meta["skipped_sidechain_records"] = len(records) - len(main)
    usage: dict[str, dict[str, Any]] = {}
    for record in active_branch(main, "uuid", "parentUuid"):
        if record.get("type") not in ("user", "assistant"):
            continue
        message = record.get("message") or {}
        meta.setdefault("timestamp", record.get("timestamp"))
        meta.update(session_id=record.get("sessionId"), cwd=record.get("cwd"), cli_version=record.get("version"))
        meta["git_branch"] = record.get("gitBranch")
        if record["type"] == "assistant":
            meta["model"] = message.get("model", meta.get("model"))
            usage[message.get("id", record["uuid"])] = message.get("usage") or {}
            add_assistant_blocks(conversation, message.get("content") or [])
        else:
            role = "developer" if record.get("isMeta") else "user"
            add_user_blocks(conversation, message.get("content") or [], role)
    meta["provider"] = "anthropic"
    meta["usage"] = _sum_usage(usage.values())
    return conversation.example(NAME)


def _sum_usage(usages: Any) -> dict[str, int]:
    keys = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return {key: sum(u.get(key) or 0 for u in usages) for key in keys}
