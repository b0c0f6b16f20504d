"""Claude Code transcripts (``~/.claude/projects/<project>/<session>.jsonl``), versions 1.0 to 2.1.

Each line is a record; ``user`` and ``assistant`` records carry an Anthropic ``message`` and are
linked by ``parentUuid`` into a tree (built from the whole file: a parent can be written after its
child). One API response is split over several records (one per content block) sharing
``message.id``; they merge back into one turn. Tool results pair with their calls by id wherever
they sit in the tree (from 2.1, parallel results are sibling records). A ``compact_boundary``
record (``parentUuid`` null, ``logicalParentUuid`` set) ends a context; the next starts with the
summary the model was given. Sub-agents run as sidechains, inside the main file (1.0) or in their
own ``agent-*.jsonl`` files (``<session>/subagents/`` from 2.1, with ``.meta.json`` beside them);
each becomes its own row, linked to the parent's ``Task`` / ``Agent`` call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from teich.schema import text_of
from teich.traces.blocks import add_assistant_blocks
from teich.traces.branch import relink
from teich.traces.checks import NULL, check_blocks, expect, field, number, objects
from teich.traces.conversation import Conversation, normalize_content
from teich.traces.protocol import Converted, Record, TraceFormat
from teich.traces.reader import read_trace_file

SUB_AGENT_TOOLS = ("Task", "Agent")
REMINDER = ("<system-reminder>", "</system-reminder>")
SYNTHETIC_MODEL = "<synthetic>"
_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
# Local commands (``/compact``, ``/model``...) and their output: sent to the model as context, not requests.
LOCAL_COMMAND_TAGS = ("<command-name>", "<command-message>", "<local-command-stdout>", "<local-command-caveat>")


class ClaudeCode(TraceFormat):
    name = "claude_code"
    priority = 40
    sidecars = ("agent-*.meta.json",)

    def matches(self, records: list[Record]) -> bool:
        return any(r.get("type") in ("user", "assistant") and "sessionId" in r and "uuid" in r for r in records)

    def check(self, record: Record) -> None:
        for key in ("uuid", "parentUuid", "logicalParentUuid", "agentId"):
            field(record, key, str, NULL)
        message = field(record, "message", dict, NULL) or {}
        expect(message.get("id"), "message.id", str, NULL)
        check_blocks(message.get("content"), "message.content")
        preserved = field(record, "compactMetadata.preservedMessages", dict, NULL) or {}
        for index, uuid in enumerate(
            expect(preserved.get("uuids"), "compactMetadata.preservedMessages.uuids", list, NULL) or []
        ):
            expect(uuid, f"compactMetadata.preservedMessages.uuids[{index}]", str)
        field(record, "rendered", list, NULL)
        snapshot = field(record, "attachment", dict, NULL) or {}
        if snapshot.get("type") == "prompt_snapshot":
            field(snapshot, "systemPrompt", list, NULL)
            objects(snapshot.get("tools"), "attachment.tools")
        data = field(record, "data", dict, NULL) or {}
        expect(data.get("agentId"), "data.agentId", str, NULL)
        if isinstance(data.get("message"), dict):
            expect(data["message"].get("uuid"), "data.message.uuid", str, NULL)

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        nodes = [r for r in records if r.get("uuid")]
        converted = Converted(repaired=relink(nodes, "uuid", "parentUuid", dangling="anywhere"))
        main = [r for r in nodes if not r.get("isSidechain")]
        for tree in _trees(main):  # a /clear (or a plan run with a fresh context) starts a new tree
            _merge(converted, _convert_thread(tree, {}, self.name))
        if len(converted.rows) > 1:
            for index, row in enumerate(converted.rows):
                row.metadata["context_index"] = index
        parent_calls = _sub_agent_calls(main or _parent_records(path, nodes))
        for thread in _sidechains([r for r in nodes if r.get("isSidechain")]):
            _merge(converted, _convert_thread(thread, _link(thread, parent_calls, path), self.name))
        for thread in _streamed_sub_agents(main, path):
            _merge(converted, _convert_thread(thread, _link(thread, parent_calls, None), self.name))
        return converted


def _merge(into: Converted, part: Converted) -> None:
    into.rows += part.rows
    into.left_out.update(part.left_out)
    into.skipped += part.skipped
    into.repaired += part.repaired


def _convert_thread(nodes: list[Record], link: dict[str, Any], name: str) -> Converted:
    """One conversation thread (the main session or one sub-agent): a row per context."""
    path = _with_whole_responses(_chosen_path(nodes), nodes)
    thread = _Thread(Conversation(), nodes, name)
    thread.conversation.metadata.update(link)
    thread.conversation.leave_out("abandoned branch", _abandoned(nodes, path))
    for record in path:
        thread.record(record)
    return thread.finish()


def _chosen_path(nodes: list[Record]) -> list[Record]:
    """The records from the root to the leaf the session ended on, across compactions.

    The leaf is the newest user or assistant record with no user or assistant record after it in
    the tree: bookkeeping written after the last message (progress notes, turn timings,
    attachments) does not end a session.
    """
    by_id = {r["uuid"]: r for r in nodes}
    parent_of = _parents(nodes, by_id)
    talk = [r for r in nodes if r.get("type") in ("user", "assistant")]
    continued: set[str] = set()
    for record in talk:
        parent = parent_of.get(record["uuid"])
        while parent is not None and parent in by_id and parent not in continued:
            continued.add(parent)
            parent = parent_of.get(parent)
    leaves = [r for r in talk if r["uuid"] not in continued]
    leaf = leaves[-1] if leaves else (nodes[-1] if nodes else None)
    path: list[Record] = []
    seen: set[str] = set()
    while leaf is not None and leaf["uuid"] not in seen:
        seen.add(leaf["uuid"])
        path.append(leaf)
        leaf = by_id.get(parent_of.get(leaf["uuid"]))
    return path[::-1]


def _parents(nodes: list[Record], by_id: dict[str, Record]) -> dict[str, str | None]:
    """Each record's parent. A compaction boundary continues its logical parent; where that record
    was never written, the last message written before the boundary."""
    parents: dict[str, str | None] = {}
    last_talk = None
    for record in nodes:
        parent = _parent(record)
        if parent not in by_id and record.get("subtype") == "compact_boundary":
            parent = last_talk
        parents[record["uuid"]] = parent
        if record.get("type") in ("user", "assistant"):
            last_talk = record["uuid"]
    return parents


def _trees(nodes: list[Record]) -> list[list[Record]]:
    """The records grouped by the root they descend from, in the order the roots were written."""
    by_id = {r["uuid"]: r for r in nodes}
    parent_of = _parents(nodes, by_id)
    root_of: dict[str, str] = {}
    trees: dict[str, list[Record]] = {}
    for record in nodes:
        chain: list[str] = []
        uuid: str = record["uuid"]
        while uuid not in root_of and uuid not in chain and (parent := parent_of.get(uuid)) in by_id:
            chain.append(uuid)
            uuid = cast(str, parent)
        root = root_of.get(uuid, uuid)
        for step in chain:
            root_of[step] = root
        root_of[record["uuid"]] = root
        trees.setdefault(root, []).append(record)
    return list(trees.values())


def _with_whole_responses(path: list[Record], nodes: list[Record]) -> list[Record]:
    """The path with every record of each API response on it: one response is one record per
    content block, chained, and the path can leave that chain early (the results of parallel calls
    hang off different blocks), yet the model generated all of them."""
    blocks: dict[str, list[Record]] = {}
    for record in nodes:
        if record.get("type") == "assistant" and (message_id := _message_id(record)):
            blocks.setdefault(message_id, []).append(record)
    whole: list[Record] = []
    done: set[str] = set()
    for record in path:
        message_id = _message_id(record) if record.get("type") == "assistant" else None
        if message_id is None:
            whole.append(record)
        elif message_id not in done:
            done.add(message_id)
            whole += blocks[message_id]
    return whole


def _message_id(record: Record) -> str | None:
    return (record.get("message") or {}).get("id")


def _parent(record: Record) -> str | None:
    return record.get("parentUuid") or record.get("logicalParentUuid")


def _abandoned(nodes: list[Record], path: list[Record]) -> int:
    """Conversation records left on branches the session did not end on (tool results aside, which
    pair by id wherever they sit)."""
    on_path = {r["uuid"] for r in path}
    return sum(
        1
        for r in nodes
        if r["uuid"] not in on_path and r.get("type") in ("user", "assistant") and not _only_tool_results(r)
    )


def _only_tool_results(record: Record) -> bool:
    content = (record.get("message") or {}).get("content")
    return isinstance(content, list) and bool(content) and all(b.get("type") == "tool_result" for b in content)


class _Thread:
    """Walks one thread's chosen path into a conversation, placing tool results after their calls."""

    def __init__(self, conversation: Conversation, nodes: list[Record], name: str) -> None:
        self.conversation = conversation
        self.name = name
        self.by_id = {r["uuid"]: r for r in nodes}
        self.results = _results_by_call(nodes)
        self.calls = {b.get("id") for r in nodes if r.get("type") == "assistant" for b in _blocks(r)}
        self.waiting: list[str] = []  # calls of the current turn still without a result
        self.placed: set[str] = set()
        self.usage: dict[Any, dict[str, Any]] = {}  # by response id (the record id where it has none)
        self.resume_filler = False
        self.preserved: list[str] = []  # what a compaction kept, to follow its summary

    def record(self, record: Record) -> None:
        self.conversation.record = record
        meta = self.conversation.metadata
        meta.setdefault("timestamp", record.get("timestamp"))
        meta.setdefault("session_id", record.get("sessionId"))
        meta.update(cwd=record.get("cwd") or meta.get("cwd"), git_branch=record.get("gitBranch"))
        if record.get("version"):
            meta["cli_version"] = record["version"]
        kind = record.get("type")
        if kind == "system" and record.get("subtype") == "compact_boundary":
            self._compaction(record)
        elif kind == "assistant":
            self._assistant(record)
        elif kind == "user":
            self._user(record)
        elif kind == "attachment":
            self._attachment(record)
        else:
            self.conversation.leave_out(f"claude code {kind} record (not sent to the model)")

    def finish(self) -> Converted:
        self._place_results()
        meta = self.conversation.metadata
        meta["provider"] = "anthropic"
        meta["usage"] = _sum_usage(self.usage.values())
        return self.conversation.finish(self.name)

    def _compaction(self, boundary: Record) -> None:
        """A new context: the system prompt, then the summary (the next record) and the messages
        the compaction preserved."""
        self._place_results()
        system = [m for m in self.conversation.messages[:1] if m.role == "system"]
        self.conversation.restart(self.name, system)
        preserved = ((boundary.get("compactMetadata") or {}).get("preservedMessages") or {}).get("uuids")
        self.preserved = list(preserved or [])

    def _assistant(self, record: Record) -> None:
        message = record.get("message") or {}
        if record.get("isApiErrorMessage") or message.get("model") == SYNTHETIC_MODEL:
            reason = "resume filler (synthetic)" if self.resume_filler else "API error turn (synthetic)"
            self.conversation.leave_out(reason)
            self.resume_filler = False
            return
        self.conversation.use_model(message.get("model"))
        self.usage[message.get("id", record["uuid"])] = message.get("usage") or {}
        content = message.get("content") or []
        add_assistant_blocks(self.conversation, content)
        if isinstance(content, list):
            self.waiting += [b.get("id", "") for b in content if b.get("type") == "tool_use"]

    def _user(self, record: Record) -> None:
        self._place_results()
        blocks = _blocks(record)
        for block in blocks:
            call_id = block.get("tool_use_id")
            if block.get("type") != "tool_result" or call_id in self.placed:
                continue
            if call_id in self.calls:
                self.conversation.leave_out("tool result with no call on the path")
            else:
                self.conversation.leave_out_orphan(call_id)
        rest = [b for b in blocks if b.get("type") != "tool_result"]
        if not rest:
            return
        text = text_of(normalize_content(rest)).strip()
        self.resume_filler = bool(record.get("isMeta")) and text == "Continue from where you left off."
        harness = record.get("isMeta") or record.get("isCompactSummary") or text.startswith(LOCAL_COMMAND_TAGS)
        self.conversation.add("developer" if harness else "user", rest)
        if record.get("isCompactSummary"):
            self._carry_preserved()

    def _carry_preserved(self) -> None:
        for uuid in self.preserved:
            if uuid in self.by_id:
                self.record(self.by_id[uuid])
        self._place_results()
        self.conversation.carried_until_here()
        self.preserved = []

    def _attachment(self, record: Record) -> None:
        """Context the harness attached: the text the model was given (``rendered``), the system
        prompt and tool schemas it was offered (``prompt_snapshot``), or bookkeeping."""
        attachment = record.get("attachment") or {}
        rendered = [part.get("content") for part in record.get("rendered") or [] if isinstance(part, dict)]
        if attachment.get("type") == "prompt_snapshot":
            self._prompt_snapshot(attachment)
        elif rendered:
            text = "\n".join(part for part in rendered if isinstance(part, str))
            if record.get("renderedRole") == "system":  # sent as a system message, without the reminder tags
                text = _unwrapped_reminder(text)
            self.conversation.add("developer", text)
        else:
            self.conversation.leave_out("claude code attachment with nothing rendered for the model")

    def _prompt_snapshot(self, snapshot: Record) -> None:
        parts = [snapshot.get("cliPrefix"), *(snapshot.get("systemPrompt") or [])]
        system = "\n".join(part for part in parts if isinstance(part, str) and part)
        if system:
            self.conversation.set_system(system)
        if snapshot.get("tools"):
            self.conversation.tools = [_openai_tool(tool) for tool in snapshot["tools"]]

    def _place_results(self) -> None:
        """The results of the turn's calls, in the order they were recorded (parallel calls finish
        in any order), wherever they sit in the tree."""
        known = sorted((c for c in self.waiting if c in self.results), key=lambda c: self.results[c][0])
        for call_id in known:
            self.placed.add(call_id)
            block = self.results[call_id][1]
            self.conversation.tool_result(call_id, block.get("content") or "", is_error=block.get("is_error"))
        self.conversation.leave_out("tool call with no recorded result", len(self.waiting) - len(known))
        self.waiting = []


def _unwrapped_reminder(text: str) -> str:
    inner = text.strip()
    if inner.startswith(REMINDER[0]) and inner.endswith(REMINDER[1]):
        return inner[len(REMINDER[0]) : -len(REMINDER[1])].strip("\n")
    return text


def _blocks(record: Record) -> list[Record]:
    content = (record.get("message") or {}).get("content") or []
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _openai_tool(tool: Record) -> Record:
    """An Anthropic tool definition in the OpenAI function form."""
    return {
        "type": "function",
        "function": {
            "name": tool.get("name", ""),
            "description": tool.get("description", ""),
            "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        },
    }


def _results_by_call(nodes: list[Record]) -> dict[str, tuple[int, Record]]:
    """Every ``tool_result`` block of a thread, by the id of the call it answers, with its place in
    the file (the first one recorded)."""
    results: dict[str, tuple[int, Record]] = {}
    for index, record in enumerate(nodes):
        content = (record.get("message") or {}).get("content") if record.get("type") == "user" else None
        for block in content if isinstance(content, list) else ():
            if block.get("type") == "tool_result":
                results.setdefault(block.get("tool_use_id", ""), (index, block))
    return results


def _sidechains(nodes: list[Record]) -> list[list[Record]]:
    """Sidechain records grouped by sub-agent: by ``agentId`` where recorded, else by root."""
    by_id = {r["uuid"]: r for r in nodes}
    groups: dict[str, list[Record]] = {}
    for record in nodes:
        groups.setdefault(record.get("agentId") or _root(record, by_id), []).append(record)
    return list(groups.values())


def _root(record: Record, by_id: dict[str, Record]) -> str:
    seen = set()
    while (parent := _parent(record)) is not None and parent in by_id and record["uuid"] not in seen:
        seen.add(record["uuid"])
        record = by_id[parent]
    return str(record["uuid"])


def _streamed_sub_agents(main: list[Record], path: Path | None) -> list[list[Record]]:
    """Sub-agent runs that 2.1 streams into the main file as ``agent_progress`` records, as
    sidechain threads; a run whose own ``agent-*.jsonl`` file sits beside the session is read there."""
    runs: dict[str, list[Record]] = {}
    for record in main:
        data = record.get("data") or {}
        message, agent_id = data.get("message"), data.get("agentId")
        if data.get("type") != "agent_progress" or not isinstance(message, dict) or not agent_id:
            continue
        run = runs.setdefault(agent_id, [])
        uuid = message.get("uuid") or record["uuid"]
        if any(r["uuid"] == uuid for r in run):
            continue
        parent = run[-1]["uuid"] if run else None
        session = record.get("sessionId")
        run.append({**message, "uuid": uuid, "parentUuid": parent, "sessionId": session, "agentId": agent_id})
    return [run for agent_id, run in runs.items() if not _has_own_file(path, run[0]["sessionId"], agent_id)]


def _has_own_file(path: Path | None, session: str | None, agent_id: str) -> bool:
    if path is None:
        return False
    name = f"agent-{agent_id}.jsonl"
    return (path.parent / str(session) / "subagents" / name).is_file() or (path.parent / name).is_file()


def _parent_records(path: Path | None, nodes: list[Record]) -> list[Record]:
    """For a sub-agent file, the main records of its parent session: ``<session>.jsonl`` beside the
    ``<session>/subagents/`` folder (2.1), or ``<sessionId>.jsonl`` beside ``agent-*.jsonl``."""
    if path is None or not nodes:
        return []
    if path.parent.name == "subagents":
        parent = path.parent.parent.with_suffix(".jsonl")
    else:
        parent = path.parent / f"{nodes[0].get('sessionId')}.jsonl"
    if parent == path or not parent.is_file():
        return []
    return [r for r in read_trace_file(parent).records if not r.get("isSidechain")]


def _sub_agent_calls(records: list[Record]) -> list[tuple[str, dict[str, Any], str | None]]:
    """The parent's sub-agent calls: (call id, input, the agent id its result names)."""
    agent_of_result: dict[str, str] = {}
    for record in records:
        result = record.get("toolUseResult")
        content = (record.get("message") or {}).get("content")
        if isinstance(result, dict) and result.get("agentId") and isinstance(content, list):
            for block in content:
                if block.get("type") == "tool_result":
                    agent_of_result[block.get("tool_use_id", "")] = result["agentId"]
    calls = []
    for record in records:
        content = (record.get("message") or {}).get("content") if record.get("type") == "assistant" else None
        for block in content if isinstance(content, list) else ():
            if block.get("type") == "tool_use" and block.get("name") in SUB_AGENT_TOOLS:
                call_id = block.get("id", "")
                arguments = block.get("input") if isinstance(block.get("input"), dict) else {}
                calls.append((call_id, arguments, agent_of_result.get(call_id)))
    return calls


def _link(
    thread: list[Record], calls: list[tuple[str, dict[str, Any], str | None]], path: Path | None
) -> dict[str, Any]:
    """Metadata linking a sub-agent's row to its parent session and the call that started it."""
    first = thread[0]
    agent_id = first.get("agentId") or first["uuid"]
    task = _first_user_text(thread)
    link: dict[str, Any] = {
        "session_id": f"{first.get('sessionId')}/agent-{agent_id}",
        "parent_session_id": first.get("sessionId"),
        "agent_id": agent_id,
        "sub_agent": True,
    }
    for call_id, arguments, result_agent in calls:
        if result_agent == agent_id or (task and str(arguments.get("prompt") or "").strip() == task.strip()):
            link["parent_tool_call_id"] = call_id
            link["sub_agent_type"] = arguments.get("subagent_type")
            break
    link.update(_meta_sidecar(path))
    return link


def _first_user_text(thread: list[Record]) -> str:
    for record in thread:
        if record.get("type") == "user":
            content = (record.get("message") or {}).get("content")
            return text_of(normalize_content(content if isinstance(content, (str, list)) else None))
    return ""


def _meta_sidecar(path: Path | None) -> dict[str, Any]:
    """What ``agent-*.meta.json`` beside a sub-agent file says (its agent type, description)."""
    sidecar = path.with_suffix(".meta.json") if path else None
    if sidecar is None or not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return {"sub_agent_meta": data} if isinstance(data, dict) else {}


def _sum_usage(usages: Any) -> dict[str, int | float]:
    """Token counts summed over the responses (counts that are not numbers count nothing)."""
    usages = [u for u in usages if isinstance(u, dict)]
    return {key: sum(number(u.get(key)) for u in usages) for key in _USAGE_KEYS}


FORMAT = ClaudeCode()
